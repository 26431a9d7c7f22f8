"""The two-factor pages in a real browser (Debian's Chromium) against ``userhub serve``
(production mode, SQLite), with the site's Content-Security-Policy enforced: an authenticator
app set up from the account page, its QR code drawn (an image the policy allows), its key read
from the page and the first code typed (computed here, as a phone would), the recovery codes
shown once; in English and in Chinese. Each page is photographed and checked with axe-core
(``browser_support.check_page``)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pyotp
import pytest
from playwright.sync_api import Browser, Page, expect

from tests import browser_support
from tests.browser_support import DESKTOP, LANGUAGES, check_page, log_in, offline_page, register
from tests.helpers import PASSWORD
from tests.live_server import running_server

browser = browser_support.browser  # the shared fixture: Debian's Chromium
pytestmark = pytest.mark.browser  # make test-quick leaves them out

NAMES = itertools.count(1)
CHINESE = {
    "Two-factor authentication": "两步验证",
    "Set up an authenticator app": "设置身份验证器应用",
    "Or type this key into the app": "或者在应用中输入这个密钥",
    "Code from the app": "应用显示的验证码",
    "Confirm the app": "确认应用",
    "Your recovery codes": "你的恢复码",
    "I have saved them": "我已保存好",
    "in use": "已启用",
}


def text(language: str, english: str) -> str:
    return CHINESE[english] if language == "zh-CN" else english


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    workdir = tmp_path_factory.mktemp("two-factor")
    with running_server(
        "production",
        f"sqlite:///{workdir / 'two-factor.sqlite3'}",
        workdir,
        env={"USERHUB_RATELIMIT_ENABLED": "false"},
    ) as server:
        yield server.base


def account(base_url: str, language: str) -> str:
    """A new account, made through the API; a Chinese name for a Chinese reader."""
    number = next(NAMES)
    return register(base_url, f"两步{number}" if language == "zh-CN" else f"two{number}")


def set_up(page: Page, base_url: str, language: str) -> list[str]:
    """From the account page to the recovery codes; the codes shown."""
    main = page.get_by_role("main")
    page.goto(base_url + "/account")
    main.get_by_role("link", name=text(language, "Two-factor authentication")).click()
    main.get_by_role("button", name=text(language, "Set up an authenticator app")).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(
        text(language, "Set up an authenticator app")
    )
    qr = main.get_by_role("img")
    expect(qr).to_be_visible()
    assert qr.get_attribute("alt")
    assert qr.evaluate("image => image.complete && image.naturalWidth > 0"), "the QR code drew"
    key = main.get_by_label(text(language, "Or type this key into the app")).input_value()
    code = pyotp.TOTP(key.replace(" ", "")).now()
    main.get_by_label(text(language, "Code from the app"), exact=True).fill(code)
    main.get_by_role("button", name=text(language, "Confirm the app")).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(text(language, "Your recovery codes"))
    codes = main.locator("ol.codes code").all_inner_texts()
    assert len(codes) == 10
    return codes


@pytest.mark.parametrize("language", LANGUAGES)
def test_an_authenticator_app_is_set_up_in_the_browser(
    browser: Browser, base_url: str, language: str
) -> None:
    username = register(
        base_url, f"两步{next(NAMES)}" if language == "zh-CN" else f"tf{next(NAMES)}"
    )
    with offline_page(browser, base_url, locale=language, viewport=DESKTOP) as opened:
        page = opened.page
        log_in(page, base_url, language, username, PASSWORD)
        codes = set_up(page, base_url, language)
        page.get_by_role("main").get_by_role(
            "link", name=text(language, "I have saved them")
        ).click()
        expect(page.locator("#totp-status")).to_have_text(text(language, "in use"))
        expect(page.locator("#recovery-codes-left")).to_have_text("10")
        assert not any(code in page.content() for code in codes)
        assert opened.blocked == [], "the policy refused nothing (the QR code is allowed)"


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_two_factor_page_passes_axe(browser: Browser, base_url: str, language: str) -> None:
    username = register(
        base_url, f"两步{next(NAMES)}" if language == "zh-CN" else f"tf{next(NAMES)}"
    )
    options = {"locale": language, "viewport": DESKTOP, "bypass_csp": True}
    with offline_page(browser, base_url, **options) as opened:
        page = opened.page
        main = page.get_by_role("main")
        log_in(page, base_url, language, username, PASSWORD)
        page.goto(base_url + "/account/two-factor")
        check_page(opened, "two-factor-off", language)
        main.get_by_role("button", name=text(language, "Set up an authenticator app")).click()
        check_page(opened, "two-factor-setup", language)
        main.get_by_label(text(language, "Code from the app"), exact=True).fill("000000x")
        main.get_by_role("button", name=text(language, "Confirm the app")).click()
        check_page(opened, "two-factor-setup-wrong-code", language)
        set_up(page, base_url, language)
        check_page(opened, "two-factor-recovery-codes", language)
        page.goto(base_url + "/account/two-factor")
        check_page(opened, "two-factor-on", language)
