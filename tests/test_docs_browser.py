"""``/docs`` in a real browser with the network cut off: it renders from userhub's own files,
and "Try it out" reaches the local server (which the web version of Postman cannot).

Debian's Chromium (``/usr/bin/chromium``; ``.ci/run`` installs it) driven by Playwright. Every
request that is not for the server under test is aborted and recorded, so a CDN link would fail
the test rather than quietly load. Screenshots go to ``test-artifacts/`` (git-ignored).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Page, Route, expect, sync_playwright

from tests.live_server import live_server

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    workdir = tmp_path_factory.mktemp("docs")
    with live_server("production", f"sqlite:///{workdir / 'docs.sqlite3'}", workdir) as base:
        yield base


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture
def offline_page(browser: Browser, base_url: str) -> Iterator[tuple[Page, list[str]]]:
    """A page that can reach only the server under test; the list collects what was blocked,
    and what the Content-Security-Policy refused (Chromium reports it on the console)."""
    context = browser.new_context()
    blocked: list[str] = []
    local = urlsplit(base_url).netloc

    def only_local(route: Route) -> None:
        if urlsplit(route.request.url).netloc == local:
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort("internetdisconnected")

    context.route("**/*", only_local)
    page = context.new_page()
    page.on(
        "console",
        lambda message: (
            blocked.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    yield page, blocked
    context.close()


def screenshot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_docs_render_offline_with_every_operation(
    offline_page: tuple[Page, list[str]], base_url: str
) -> None:
    page, blocked = offline_page
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))

    page.goto(base_url + "/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("userhub")
    for path in ("/api/v1/users", "/api/v1/tokens", "/api/v1/health", "/save_data_to_mysql"):
        expect(page.locator(f'.opblock-summary-path[data-path="{path}"]').first).to_be_visible()
    screenshot(page, "docs")

    assert blocked == []
    assert errors == []


def test_try_it_out_on_response_json_gets_200_from_the_local_server(
    offline_page: tuple[Page, list[str]], base_url: str
) -> None:
    page, blocked = offline_page
    page.goto(base_url + "/docs")
    operation = page.locator(".opblock-get").filter(
        has=page.locator('.opblock-summary-path[data-path="/response_json"]')
    )
    operation.locator(".opblock-summary").click()
    operation.get_by_role("button", name="Try it out").click()
    operation.get_by_role("button", name="Execute").click()

    status = operation.locator(".live-responses-table .response .response-col_status").first
    expect(status).to_have_text("200")
    expect(
        operation.locator(".live-responses-table .response .response-col_description")
    ).to_contain_text("Zhang San")
    screenshot(page, "docs-try-it-out")
    assert blocked == []


@pytest.mark.parametrize("path", ["/", "/login", "/register"])
def test_pages_work_under_the_content_security_policy(
    offline_page: tuple[Page, list[str]], base_url: str, path: str
) -> None:
    """The strict policy (no inline script or style) refuses nothing the pages use."""
    page, blocked = offline_page
    response = page.goto(base_url + path)
    assert response is not None and response.ok
    assert "script-src 'self'" in response.headers["content-security-policy"]
    if path == "/":
        image = page.locator("img").first
        expect(image).to_be_visible()
        assert image.evaluate("img => img.complete && img.naturalWidth > 0")
    assert blocked == []
