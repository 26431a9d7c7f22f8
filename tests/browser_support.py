"""What the real-browser tests share: Debian's Chromium, an offline page, screenshots, axe-core.

Playwright drives ``/usr/bin/chromium`` (the Debian package ``.ci/run`` installs); no browser is
ever downloaded. A test module takes the ``browser`` fixture with
``browser = browser_support.browser``. Every page can reach only the server under test: any
other request is aborted and recorded, so a CDN link fails a test rather than quietly loading.
Screenshots go to ``test-artifacts/`` (git-ignored). axe-core comes from npm, pinned by
``tests/browser/package-lock.json``: ``npm ci --prefix tests/browser`` (``make test`` runs it).
Also shared: what a Chinese reader sees for each English text (``text``), logging in through the
form, an account made through the API, and ``check_page``, which photographs a page and runs axe
on it at both sizes.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from playwright.sync_api import Browser, BrowserContext, Page, Route, ViewportSize, sync_playwright

from tests.helpers import PASSWORD

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


# What a Chinese reader sees instead of each English text (from the catalogue, written out here
# so that a missing or wrong translation fails the test).
CHINESE = {
    "Login Page": "登录页面",
    "Login Form": "登录表单",
    "Create an account": "注册账户",
    "Username": "用户名",
    "Password": "密码",
    "Confirm password": "确认密码",
    "Log in": "登录",
    "Register": "注册",
    "Home": "首页",
    "Account": "账户",
    "Log out": "退出登录",
    "Your account": "我的账户",
    "Change password": "修改密码",
    "Page not found": "页面不存在",
    "Problem types": "问题类型",
    "Invalid username or password.": "用户名或密码错误。",
    "Password must be at least 8 characters.": "密码至少 8 个字符。",
    'Username must not contain ":".': "用户名不能包含 “:”。",
    "Add an e-mail address": "添加电子邮件地址",
    "Forgot your password?": "忘记密码了？",
    "E-mail address or username": "电子邮件地址或用户名",
    "Send me a link": "给我发送链接",
    "Check your mail": "请查收邮件",
    "This link cannot be used": "这个链接无法使用",
    "Reset your password": "重置你的密码",
    "Your password was changed": "你的密码已被修改",
    "Choose a new password": "设置新密码",
    "New password": "新密码",
    "Confirm new password": "确认新密码",
    "Set the new password": "保存新密码",
    "Your password is changed. Log in with the new one.": "密码已修改。请用新密码登录。",
    "Confirm your e-mail address": "确认你的电子邮件地址",
    "Confirm my address": "确认我的地址",
    "Your e-mail address is confirmed.": "你的电子邮件地址已确认。",
    "E-mail address (optional)": "电子邮件地址（选填）",
    "Confirm your e-mail address first: follow the link we mailed you, or ask for a new one.": (
        "请先确认你的电子邮件地址：打开我们发给你的链接，或者申请一个新链接。"
    ),
    "Send a new link": "发送新链接",
    "Confirm your new e-mail address": "确认你的新电子邮件地址",
    "This was not me": "这不是我",
    "End the session": "结束会话",
    "Unlock your account": "解锁你的账户",
    "Change e-mail address": "修改电子邮件地址",
    "New e-mail address": "新电子邮件地址",
    "Your sessions": "你的会话",
    "This device": "本设备",
    "End": "结束",
    "The session was ended: that browser is logged out.": "会话已结束：那个浏览器已退出登录。",
    "Account activity": "账户动态",
    "Logged in": "已登录",
    "Failed log-in: wrong password": "登录失败：密码错误",
    "API keys": "API 密钥",
    "Name": "名称",
    "Make the key": "创建密钥",
    "Your new API key": "你的新 API 密钥",
    "Give the key a name, e.g. the script or service that will use it.": (
        "请给密钥起个名字，例如将使用它的脚本或服务。"
    ),
}


def text(language: str, english: str) -> str:
    return CHINESE[english] if language == "zh-CN" else english


def register(base_url: str, username: str, password: str = PASSWORD, **fields: str) -> str:
    """An account made through the API (not what the browser tests look at); ``fields`` such
    as ``email``."""
    response = requests.post(
        base_url + "/api/v1/users",
        json={"username": username, "password": password, **fields},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    return username


def log_in(page: Page, base_url: str, language: str, username: str, password: str) -> None:
    page.goto(base_url + "/login")
    page.get_by_label(text(language, "Username"), exact=True).fill(username)
    page.get_by_label(text(language, "Password"), exact=True).fill(password)
    page.get_by_role("main").get_by_role(
        "button", name=text(language, "Log in"), exact=True
    ).click()


def path_of(base_url: str, path: str) -> re.Pattern[str]:
    """The page's URL is ``path`` (any query string)."""
    return re.compile(re.escape(base_url + path) + r"(\?.*)?$")


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
