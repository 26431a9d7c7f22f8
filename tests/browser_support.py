"""What the real-browser tests share: Debian's Chromium, an offline page, screenshots, axe-core.

Playwright drives ``/usr/bin/chromium`` (the Debian package ``.ci/run`` installs); no browser is
ever downloaded. A test module takes the ``browser`` fixture with
``browser = browser_support.browser``. Every page can reach only the server under test: any
other request is aborted and recorded, so a CDN link fails a test rather than quietly loading.
Screenshots go to ``test-artifacts/`` (git-ignored). axe-core comes from npm, pinned by
``tests/browser/package-lock.json``: ``npm ci --prefix tests/browser`` (``make test`` runs it).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Route, ViewportSize, sync_playwright

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
AXE_PROJECT = Path(__file__).resolve().parent / "browser"
AXE_SCRIPT = AXE_PROJECT / "node_modules" / "axe-core" / "axe.min.js"
BLOCKING_IMPACTS = ("serious", "critical")
DESKTOP: ViewportSize = {"width": 1280, "height": 800}
PHONE: ViewportSize = {"width": 390, "height": 844}
VIEWPORTS = {"desktop": DESKTOP, "phone": PHONE}
LANGUAGES = ("en", "zh-CN")


class AxeViolations(AssertionError):
    """axe-core found violations that must not remain (impact serious or critical)."""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@dataclass
class OfflinePage:
    """A page that can reach only the server under test. ``blocked`` collects what it tried
    to fetch elsewhere, and what the Content-Security-Policy refused (Chromium reports it on
    the console)."""

    page: Page
    context: BrowserContext
    blocked: list[str] = field(default_factory=list)


@contextlib.contextmanager
def offline_page(browser: Browser, base_url: str, **context_options: Any) -> Iterator[OfflinePage]:
    """A fresh context (its own cookies) and page; ``context_options`` go to
    ``browser.new_context`` (``locale``, ``viewport``, ``bypass_csp``...)."""
    context = browser.new_context(**context_options)
    local = urlsplit(base_url).netloc
    opened = OfflinePage(page=context.new_page(), context=context)

    def only_local(route: Route) -> None:
        if urlsplit(route.request.url).netloc == local:
            route.continue_()
        else:
            opened.blocked.append(route.request.url)
            route.abort("internetdisconnected")

    context.route("**/*", only_local)
    opened.page.on(
        "console",
        lambda message: (
            opened.blocked.append(message.text)
            if "Content Security Policy" in message.text
            else None
        ),
    )
    try:
        yield opened
    finally:
        context.close()


def screenshot(page: Page, name: str) -> Path:
    """The whole page, as ``test-artifacts/<name>.png``."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def axe_violations(page: Page) -> list[dict[str, Any]]:
    """Run axe-core (its default rules) on the page as it is now; every violation found.

    The page's context must be created with ``bypass_csp=True``: the site's policy forbids the
    injected script."""
    if not AXE_SCRIPT.is_file():
        pytest.fail(
            f"axe-core is not installed ({AXE_SCRIPT} is missing): run "
            "`npm ci --prefix tests/browser` (make test does it for you)",
            pytrace=False,
        )
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.add_script_tag(path=str(AXE_SCRIPT))
    result: dict[str, Any] = page.evaluate("async () => await window.axe.run(document)")
    return list(result["violations"])


def blocking(violations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [v for v in violations if v.get("impact") in BLOCKING_IMPACTS]


def describe(violations: list[dict[str, Any]]) -> str:
    """Each violation's id, impact, help text and the elements it found (CSS selectors)."""
    lines = []
    for violation in violations:
        targets = [json.dumps(node["target"], ensure_ascii=False) for node in violation["nodes"]]
        lines.append(
            f"- {violation['id']} ({violation['impact']}): {violation['help']} "
            f"[{violation['helpUrl']}]\n    on: {', '.join(targets)}"
        )
    return "\n".join(lines)


# Our boxes, none of which may be wider than its content area (text spilling out of it).
BOXES = "header.site, main, footer.site, .panel, .hero, .card, .flash, .alert, .notice, dl.facts"
SPILLS = """boxes => {
    const spills = [];
    const page = document.documentElement;
    if (page.scrollWidth > page.clientWidth) {
        spills.push(`the page is ${page.scrollWidth}px wide in ${page.clientWidth}px`);
    }
    for (const box of document.querySelectorAll(boxes)) {
        if (box.scrollWidth > box.clientWidth) {
            const name = box.tagName.toLowerCase() + (box.className ? "." + box.className : "");
            spills.push(`${name}: ${box.scrollWidth}px of content in ${box.clientWidth}px`);
        }
    }
    return spills;
}"""


def check_page(opened: OfflinePage, name: str, language: str, *, ours: bool = True) -> None:
    """The page as it is now, on a desktop and on a phone: a full-page screenshot
    (``test-artifacts/pages/<language>-<viewport>-<name>.png``, its axe report beside it), no
    serious or critical axe violation, and on our own pages (``ours``) no text spilling out of
    its box or off the screen; and nothing fetched from elsewhere. The page's context must be
    made with ``bypass_csp=True`` (axe is injected)."""
    page = opened.page
    spills: list[str] = []
    found: list[str] = []
    for viewport, size in VIEWPORTS.items():
        page.set_viewport_size(size)
        stem = f"pages/{language}-{viewport}-{name}"
        screenshot(page, stem)
        if ours:
            spills += [f"{viewport}: {spill}" for spill in page.evaluate(SPILLS, BOXES)]
        violations = axe_violations(page)
        (ARTIFACTS / f"{stem}.axe.json").write_text(
            json.dumps(violations, ensure_ascii=False, indent=1), encoding="utf-8"
        )
        if serious := blocking(violations):
            found.append(f"{viewport} ({size['width']}px):\n{describe(serious)}")
    assert not spills, f"{name} in {language}:\n" + "\n".join(spills)
    assert opened.blocked == []
    if found:
        raise AxeViolations(f"{name} in {language}:\n" + "\n".join(found))
