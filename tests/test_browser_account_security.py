"""The account's security pages in a real browser (Debian's Chromium), against ``userhub serve``
(production mode, SQLite): two browsers (two contexts, two cookie jars) log in to one account;
in one, the sessions page ends the other, whose reload lands on the log-in form and whose API
calls are refused; the activity page shows the log-ins and the failed one. In English and in
Chinese, with the site's Content-Security-Policy enforced.

The sessions, activity and API key pages are photographed and checked with axe-core in both
languages (``browser_support.check_page``)."""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from tests import browser_support
from tests.browser_support import (
    DESKTOP,
    LANGUAGES,
    check_page,
    log_in,
    offline_page,
    path_of,
    register,
    text,
)
from tests.helpers import PASSWORD
from tests.live_server import running_server

browser = browser_support.browser  # the shared fixture: Debian's Chromium
pytestmark = pytest.mark.browser  # make test-quick leaves them out

NAMES = itertools.count(1)


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    workdir = tmp_path_factory.mktemp("account-security")
    with running_server(
        "production",  # cookies are not Secure here (plain http on 127.0.0.1): live_server.py
        f"sqlite:///{workdir / 'security.sqlite3'}",
        workdir,
        env={"USERHUB_RATELIMIT_ENABLED": "false"},
    ) as server:
        yield server.base


def account(base_url: str, language: str) -> str:
    """A new account, made through the API; a Chinese name for a Chinese reader."""
    number = next(NAMES)
    return register(base_url, f"会话{number}" if language == "zh-CN" else f"device{number}")


def heading(page: Page) -> Locator:
    return page.get_by_role("heading", level=1)


def open_from_account(page: Page, base_url: str, language: str, link: str) -> None:
    """Follow one of the account page's security links."""
    page.goto(base_url + "/account")
    page.get_by_role("main").get_by_role("link", name=text(language, link)).click()
    expect(heading(page)).to_have_text(text(language, link))


@pytest.mark.parametrize("language", LANGUAGES)
def test_one_browser_ends_the_others_session(
    browser: Browser, base_url: str, language: str
) -> None:
    username = account(base_url, language)
    options = {"locale": language, "viewport": DESKTOP}
    with (
        offline_page(browser, base_url, **options) as here,
        offline_page(browser, base_url, **options) as there,
    ):
        log_in(there.page, base_url, language, username, "not the password")
        expect(there.page.get_by_role("alert")).to_be_visible()
        log_in(there.page, base_url, language, username, PASSWORD)
        expect(there.page).to_have_url(path_of(base_url, "/success"))
        log_in(here.page, base_url, language, username, PASSWORD)
        expect(here.page).to_have_url(path_of(base_url, "/success"))

        page = here.page
        open_from_account(page, base_url, language, "Your sessions")
        sessions = page.get_by_role("main").get_by_role("listitem")
        expect(sessions).to_have_count(2)
        expect(sessions.filter(has_text=text(language, "This device"))).to_have_count(1)
        other = sessions.filter(has_not_text=text(language, "This device"))
        other.get_by_role("button", name=text(language, "End"), exact=True).click()

        expect(page).to_have_url(base_url + "/account/sessions")
        expect(page.get_by_role("status")).to_have_text(
            text(language, "The session was ended: that browser is logged out.")
        )
        expect(sessions).to_have_count(1)
        there.page.reload()
        expect(there.page).to_have_url(path_of(base_url, "/login"))
        assert there.page.request.get(base_url + "/api/v1/users/me").status == 401
        assert page.request.get(base_url + "/api/v1/users/me").status == 200

        open_from_account(page, base_url, language, "Account activity")
        events = page.get_by_role("main").get_by_role("listitem")
        expect(events.filter(has_text=text(language, "Logged in"))).to_have_count(2)
        expect(
            events.filter(has_text=text(language, "Failed log-in: wrong password"))
        ).to_have_count(1)
        assert here.blocked == [] and there.blocked == []


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_new_api_key_is_shown_once(browser: Browser, base_url: str, language: str) -> None:
    username = account(base_url, language)
    with offline_page(browser, base_url, locale=language, viewport=DESKTOP) as opened:
        page = opened.page
        log_in(page, base_url, language, username, PASSWORD)
        open_from_account(page, base_url, language, "API keys")
        page.get_by_label(text(language, "Name"), exact=True).fill("<b>backup</b>")
        page.get_by_role("main").get_by_role("button", name=text(language, "Make the key")).click()
        expect(heading(page)).to_have_text(text(language, "Your new API key"))
        secret = page.get_by_role("textbox").input_value()
        assert secret.startswith("uh_")
        answer = page.request.get(
            base_url + "/api/v1/users/me", headers={"Authorization": f"Bearer {secret}"}
        )
        assert answer.status == 200 and answer.json()["username"] == username

        page.go_back()  # the form again, not the key
        page.goto(base_url + "/account/api-keys")
        main = page.get_by_role("main")
        expect(main.get_by_role("heading", name="<b>backup</b>")).to_be_visible()
        assert secret not in page.content()
        assert opened.blocked == []


# --- Every page, photographed and checked by axe -----------------------------------------------


def show_sessions(page: Page, base_url: str, language: str, other: Page) -> None:
    """Two sessions: this one, and the other context's."""
    username = account(base_url, language)
    log_in(other, base_url, language, username, PASSWORD)
    log_in(page, base_url, language, username, PASSWORD)
    open_from_account(page, base_url, language, "Your sessions")
    expect(page.get_by_role("main").get_by_role("listitem")).to_have_count(2)


def show_activity(page: Page, base_url: str, language: str, other: Page) -> None:
    username = account(base_url, language)
    log_in(other, base_url, language, username, "not the password")
    log_in(page, base_url, language, username, PASSWORD)
    open_from_account(page, base_url, language, "Account activity")
    expect(page.get_by_role("main").get_by_role("listitem")).to_have_count(3)


def make_key(page: Page, base_url: str, language: str, name: str) -> None:
    page.get_by_label(text(language, "Name"), exact=True).fill(name)
    page.get_by_role("main").get_by_role("button", name=text(language, "Make the key")).click()


def show_new_key(page: Page, base_url: str, language: str, other: Page) -> None:
    log_in(page, base_url, language, account(base_url, language), PASSWORD)
    open_from_account(page, base_url, language, "API keys")
    make_key(page, base_url, language, "备份脚本" if language == "zh-CN" else "backup script")
    expect(heading(page)).to_have_text(text(language, "Your new API key"))


def show_keys(page: Page, base_url: str, language: str, other: Page) -> None:
    show_new_key(page, base_url, language, other)
    page.goto(base_url + "/account/api-keys")
    expect(page.get_by_role("main").get_by_role("listitem")).to_have_count(1)


def show_key_errors(page: Page, base_url: str, language: str, other: Page) -> None:
    log_in(page, base_url, language, account(base_url, language), PASSWORD)
    open_from_account(page, base_url, language, "API keys")
    name = page.get_by_label(text(language, "Name"), exact=True)
    name.evaluate("field => field.removeAttribute('required')")  # as a browser without checks
    make_key(page, base_url, language, " ")
    expect(name).to_have_accessible_description(
        re.compile(
            re.escape(
                text(language, "Give the key a name, e.g. the script or service that will use it.")
            )
        )
    )


ShowPage = Callable[[Page, str, str, Page], None]
PAGES: dict[str, ShowPage] = {
    "account-sessions": show_sessions,
    "account-activity": show_activity,
    "account-api-keys": show_keys,
    "account-api-key-created": show_new_key,
    "account-api-key-errors": show_key_errors,
}


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("name", PAGES)
def test_every_security_page_is_photographed_and_passes_axe(
    browser: Browser, base_url: str, name: str, language: str
) -> None:
    # bypass_csp: the site's policy rightly refuses the injected axe script.
    options = {"locale": language, "viewport": DESKTOP, "bypass_csp": True}
    with (
        offline_page(browser, base_url, **options) as opened,
        offline_page(browser, base_url, **options) as other,
    ):
        PAGES[name](opened.page, base_url, language, other.page)
        expect(opened.page.locator("html")).to_have_attribute("lang", language)
        check_page(opened, name, language)
