"""The admin pages in a real browser (Debian's Chromium), against ``userhub serve`` (production
mode, SQLite), with the site's Content-Security-Policy enforced, in English and in Chinese:

* an administrator (made by ``flask create-admin``) finds a user with the search box, opens
  them and deactivates them, and that user's browser, logged in before, is logged out on its
  next request;
* a support user sees the list and the user's page, and every button there answers 403;
* axe-core finds nothing serious on ``/admin`` with results, nor on a user's page with
  sessions, keys and events (``browser_support.check_page``, desktop and phone).

With ``USERHUB_SCREENSHOTS=<folder>``, full-page screenshots of ``/admin`` (after a search)
and of a user's page are also saved there, in both languages."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
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
)
from tests.helpers import PASSWORD
from tests.live_server import create_admin, running_server

browser = browser_support.browser  # the shared fixture: Debian's Chromium
pytestmark = pytest.mark.browser  # make test-quick leaves them out

CHIEF = "chief"
# Read as the module loads: every test's environment is cleared of USERHUB_* variables.
SCREENSHOTS = os.environ.get("USERHUB_SCREENSHOTS", "")
NAMES = itertools.count(1)
# What a Chinese reader sees instead of each English text (from the catalogue, written out here
# so that a missing or wrong translation fails the test).
CHINESE = {
    "Admin": "管理",
    "Users": "用户",
    "Username or e-mail address": "用户名或电子邮件地址",
    "Search": "搜索",
    "Deactivate the account": "停用账户",
    "Deactivated": "已停用",
    "Give the support role": "授予客服角色",
    "Forbidden": "禁止访问",
    "Yes, delete %(name)s": "是的，删除 %(name)s",
}


def text(language: str, english: str) -> str:
    return CHINESE[english] if language == "zh-CN" else english


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    workdir = tmp_path_factory.mktemp("admin")
    database_url = f"sqlite:///{workdir / 'admin.sqlite3'}"
    with running_server(
        "production", database_url, workdir, env={"USERHUB_RATELIMIT_ENABLED": "false"}
    ) as server:
        create_admin(database_url, workdir, CHIEF, PASSWORD)
        yield server.base


def account(base_url: str, language: str, stem: str) -> str:
    """A new account with an address, made through the API; a Chinese name for a Chinese
    reader."""
    number = next(NAMES)
    name = f"{'用户' if language == 'zh-CN' else stem}{number}"
    return register(base_url, name, email=f"{stem}{number}@example.com")


def with_keys(base_url: str, username: str) -> None:
    """A log-in token and an API key for ``username``, through the API."""
    answer = requests.post(
        base_url + "/api/v1/tokens", json={"username": username, "password": PASSWORD}, timeout=30
    )
    assert answer.status_code == 201, answer.text
    key = requests.post(
        base_url + "/api/v1/users/me/api-keys",
        json={"name": "nightly backup", "scopes": ["read"]},
        headers={"Authorization": f"Bearer {answer.json()['token']}"},
        timeout=30,
    )
    assert key.status_code == 201, key.text


def main(page: Page) -> Locator:
    return page.get_by_role("main")


def find(page: Page, base_url: str, language: str, username: str) -> None:
    """From anywhere: the navigation's Admin link, the search box, the user's page."""
    page.goto(base_url + "/account")
    page.get_by_role("navigation").get_by_role("link", name=text(language, "Admin")).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(text(language, "Users"))
    page.get_by_label(text(language, "Username or e-mail address")).fill(username)
    main(page).get_by_role("button", name=text(language, "Search")).click()
    expect(main(page).get_by_role("row")).to_have_count(2)  # the header and the one found
    main(page).get_by_role("link", name=username, exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(username)


def grant_support(page: Page, base_url: str, language: str, username: str) -> None:
    """The administrator (logged in on ``page``) gives ``username`` the support role."""
    find(page, base_url, language, username)
    main(page).get_by_role("button", name=text(language, "Give the support role")).click()
    expect(page.get_by_role("status")).to_be_visible()


@pytest.mark.parametrize("language", LANGUAGES)
def test_an_admin_deactivates_a_user_whose_browser_is_logged_out(
    browser: Browser, base_url: str, language: str
) -> None:
    username = account(base_url, language, "target")
    options = {"locale": language, "viewport": DESKTOP}
    with (
        offline_page(browser, base_url, **options) as admin,
        offline_page(browser, base_url, **options) as owner,
    ):
        log_in(owner.page, base_url, language, username, PASSWORD)
        expect(owner.page).to_have_url(path_of(base_url, "/success"))
        log_in(admin.page, base_url, language, CHIEF, PASSWORD)

        page = admin.page
        find(page, base_url, language, username)
        main(page).get_by_role("button", name=text(language, "Deactivate the account")).click()
        expect(page.get_by_role("status")).to_contain_text(username)
        expect(page.locator("#profile")).to_contain_text(text(language, "Deactivated"))

        owner.page.goto(base_url + "/account")
        expect(owner.page).to_have_url(path_of(base_url, "/login"))
        assert owner.page.request.get(base_url + "/api/v1/users/me").status == 401
        assert admin.blocked == [] and owner.blocked == []


@pytest.mark.parametrize("language", LANGUAGES)
def test_support_sees_the_pages_and_every_button_answers_403(
    browser: Browser, base_url: str, language: str
) -> None:
    helper = account(base_url, language, "helper")
    username = account(base_url, language, "helped")
    with_keys(base_url, username)
    options = {"locale": language, "viewport": DESKTOP}
    with (
        offline_page(browser, base_url, **options) as admin,
        offline_page(browser, base_url, **options) as support,
        offline_page(browser, base_url, **options) as owner,
    ):
        log_in(owner.page, base_url, language, username, PASSWORD)
        log_in(admin.page, base_url, language, CHIEF, PASSWORD)
        grant_support(admin.page, base_url, language, helper)
        log_in(support.page, base_url, language, helper, PASSWORD)

        page = support.page
        find(page, base_url, language, username)
        user_page = page.url
        buttons = main(page).locator("form[method=post] button")
        count = buttons.count()
        assert count >= 8  # deactivate, two roles, reset link, a session, all, 2 revokes, delete
        for number in range(count):
            page.goto(user_page)
            confirm = text(language, "Yes, delete %(name)s") % {"name": username}
            main(page).get_by_label(confirm).check()  # the delete form's box (harmless else)
            with page.expect_response(lambda answer: answer.request.method == "POST") as sent:
                buttons.nth(number).click()
            assert sent.value.status == 403, (number, sent.value.url)
            expect(page.get_by_role("heading", level=1)).to_have_text(text(language, "Forbidden"))
        page.goto(user_page)
        expect(page.locator("#profile")).not_to_contain_text(text(language, "Deactivated"))
        owner.page.goto(base_url + "/account")
        expect(owner.page).to_have_url(base_url + "/account")
        assert admin.blocked == [] and support.blocked == [] and owner.blocked == []


def save_screenshot(page: Page, name: str) -> None:
    """A full-page screenshot in the folder ``USERHUB_SCREENSHOTS`` names, if it names one."""
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        page.set_viewport_size(DESKTOP)
        page.screenshot(path=str(Path(SCREENSHOTS) / f"{name}.png"), full_page=True)


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_admin_pages_are_photographed_and_pass_axe(
    browser: Browser, base_url: str, language: str
) -> None:
    username = account(base_url, language, "shown")
    with_keys(base_url, username)
    # bypass_csp: the site's policy rightly refuses the injected axe script.
    options = {"locale": language, "viewport": DESKTOP, "bypass_csp": True}
    with (
        offline_page(browser, base_url, **options) as opened,
        offline_page(browser, base_url, **options) as owner,
    ):
        log_in(owner.page, base_url, language, username, "not the password")
        log_in(owner.page, base_url, language, username, PASSWORD)
        log_in(opened.page, base_url, language, CHIEF, PASSWORD)
        page = opened.page
        page.goto(base_url + "/admin?q=e&status=active")
        expect(main(page).get_by_role("row").nth(2)).to_be_visible()  # two accounts or more
        expect(page.locator("html")).to_have_attribute("lang", language)
        check_page(opened, "admin-users", language)
        save_screenshot(page, f"admin-users-{language}")

        find(page, base_url, language, username)
        expect(main(page).locator("#sessions-heading + .table-scroll tbody tr")).to_have_count(1)
        expect(main(page).locator("#credentials-heading + .table-scroll tbody tr")).to_have_count(2)
        check_page(opened, "admin-user", language)
        save_screenshot(page, f"admin-user-{language}")
