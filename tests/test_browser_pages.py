"""The people's pages in a real browser, against ``userhub serve`` (production mode, SQLite).

What a visitor sees and does: the home page's image, register → log in → the tutorial's
greeting → account → change password → log out, a wrong password, the Chinese pages (from the
browser's language, and from the switcher), and the forms from the keyboard alone. The pages
of account e-mail that need a mailed link are in ``test_browser_mail.py``.

Every page, in English and in Chinese, is photographed full-page on a desktop (1280x800) and on
a phone (390x844) into ``test-artifacts/pages/`` and checked with axe-core: no violation of
impact "serious" or "critical" may remain (each page's full axe report is saved beside its
screenshots). axe-core is pinned by ``tests/browser/package-lock.json``; a missing
``tests/browser/node_modules`` fails the test with the command that installs it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests import browser_support
from tests.browser_support import (
    DESKTOP,
    LANGUAGES,
    OfflinePage,
    axe_violations,
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


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    workdir = tmp_path_factory.mktemp("pages")
    with running_server(
        "production",  # cookies are not Secure here (plain http on 127.0.0.1): live_server.py
        f"sqlite:///{workdir / 'pages.sqlite3'}",
        workdir,
        env={"USERHUB_RATELIMIT_ENABLED": "false"},
    ) as server:
        yield server.base


@pytest.fixture(scope="module")
def zhang_san(base_url: str) -> str:
    """The tutorial's user, for the pages that need someone logged in."""
    return register(base_url, "张三")


# Every page a person can land on, each opened as a visitor would and checked to be that page.
def show_home(page: Page, base_url: str, language: str, user: str) -> None:
    page.goto(base_url + "/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Hello World! Hello Flask!")


def show_login(page: Page, base_url: str, language: str, user: str) -> None:
    page.goto(base_url + "/login")
    expect(page.get_by_role("heading", level=1)).to_have_text(text(language, "Login Form"))


def show_login_error(page: Page, base_url: str, language: str, user: str) -> None:
    log_in(page, base_url, language, user, "not the password")
    expect(page.get_by_role("alert")).to_contain_text(
        text(language, "Invalid username or password.")
    )


def show_register(page: Page, base_url: str, language: str, user: str) -> None:
    page.goto(base_url + "/register")
    expect(page.get_by_role("heading", level=1)).to_have_text(text(language, "Create an account"))


def show_register_errors(page: Page, base_url: str, language: str, user: str) -> None:
    page.goto(base_url + "/register")
    page.get_by_label(text(language, "Username"), exact=True).fill("张:三")
    page.get_by_label(text(language, "Password"), exact=True).fill("short")
    page.get_by_label(text(language, "Confirm password"), exact=True).fill("short")
    page.get_by_role("main").get_by_role("button", name=text(language, "Register")).click()
    username = page.get_by_label(text(language, "Username"), exact=True)
    expect(username).to_have_accessible_description(
        re.compile(re.escape(text(language, 'Username must not contain ":".')))
    )
    expect(
        page.get_by_label(text(language, "Password"), exact=True)
    ).to_have_accessible_description(
        re.compile(re.escape(text(language, "Password must be at least 8 characters.")))
    )


def show_success(page: Page, base_url: str, language: str, user: str) -> None:
    log_in(page, base_url, language, user, PASSWORD)
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Hello,{user}")


def show_account(page: Page, base_url: str, language: str, user: str) -> None:
    log_in(page, base_url, language, user, PASSWORD)
    page.goto(base_url + "/account")
    expect(page.get_by_role("heading", level=1)).to_have_text(text(language, "Your account"))


def show_change_password(page: Page, base_url: str, language: str, user: str) -> None:
    log_in(page, base_url, language, user, PASSWORD)
    page.goto(base_url + "/account/password")
    expect(page.get_by_role("heading", level=1)).to_have_text(text(language, "Change password"))


def show_account_email(page: Page, base_url: str, language: str, user: str) -> None:
    log_in(page, base_url, language, user, PASSWORD)
    page.goto(base_url + "/account")
    page.get_by_role("main").get_by_role(
        "link", name=text(language, "Add an e-mail address")
    ).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(
        text(language, "Add an e-mail address")
    )


def show_forgot_password(page: Page, base_url: str, language: str, user: str) -> None:
    page.goto(base_url + "/login")
    page.get_by_role("link", name=text(language, "Forgot your password?")).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(
        text(language, "Forgot your password?")
    )


def show_check_your_mail(page: Page, base_url: str, language: str, user: str) -> None:
    show_forgot_password(page, base_url, language, user)
    page.get_by_label(text(language, "E-mail address or username"), exact=True).fill("nobody")
    page.get_by_role("main").get_by_role("button", name=text(language, "Send me a link")).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(text(language, "Check your mail"))


def show_link_error(page: Page, base_url: str, language: str, user: str) -> None:
    response = page.goto(base_url + "/password/reset?token=not-a-link")
    assert response is not None and response.status == 400
    expect(page.get_by_role("heading", level=1)).to_have_text(
        text(language, "This link cannot be used")
    )


def show_not_found(page: Page, base_url: str, language: str, user: str) -> None:
    response = page.goto(base_url + "/no/such/page")
    assert response is not None and response.status == 404
    expect(page.get_by_role("heading", level=1)).to_have_text(text(language, "Page not found"))


def show_problem_types(page: Page, base_url: str, language: str, user: str) -> None:
    page.goto(base_url + "/problems")
    expect(page.get_by_role("heading", level=1)).to_have_text(text(language, "Problem types"))
    expect(page.locator("#username-taken code")).to_have_text("/problems/username-taken")


def show_docs(page: Page, base_url: str, language: str, user: str) -> None:
    page.goto(base_url + "/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("userhub")
    expect(page.locator('.opblock-summary-path[data-path="/response_json"]')).to_be_visible()


PAGES: dict[str, Callable[[Page, str, str, str], None]] = {
    "home": show_home,
    "login": show_login,
    "login-error": show_login_error,
    "register": show_register,
    "register-errors": show_register_errors,
    "success": show_success,
    "account": show_account,
    "change-password": show_change_password,
    "account-email": show_account_email,
    "forgot-password": show_forgot_password,
    "check-your-mail": show_check_your_mail,
    "link-error": show_link_error,
    "not-found": show_not_found,
    "problem-types": show_problem_types,
    "docs": show_docs,
}


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("name", PAGES)
def test_every_page_is_photographed_and_passes_axe(
    browser: Browser, base_url: str, zhang_san: str, name: str, language: str
) -> None:
    """On a desktop and on a phone: a full-page screenshot, no serious or critical axe
    violation, and (our own pages) no text spilling out of its box or off the screen."""
    # bypass_csp: the site's policy rightly refuses the injected axe script.
    with offline_page(browser, base_url, locale=language, viewport=DESKTOP, bypass_csp=True) as (
        opened
    ):
        PAGES[name](opened.page, base_url, language, zhang_san)
        # /docs is Swagger UI's page, in English only.
        expect(opened.page.locator("html")).to_have_attribute(
            "lang", "en" if name == "docs" else language
        )
        check_page(opened, name, language, ours=name != "docs")


@pytest.fixture
def visitor(browser: Browser, base_url: str) -> Iterator[OfflinePage]:
    """An English-speaking visitor, with the site's Content-Security-Policy enforced."""
    with offline_page(browser, base_url, locale="en-US", viewport=DESKTOP) as opened:
        yield opened
        assert opened.blocked == []


def test_the_home_page_image_loads(visitor: OfflinePage, base_url: str) -> None:
    page = visitor.page
    page.goto(base_url + "/")
    image = page.get_by_role("img", name="An animated Flask flask, bubbling")
    expect(image).to_be_visible()
    expect(image).to_have_js_property("complete", True)
    # A broken image is "complete" too, with no pixels.
    assert image.evaluate("img => img.naturalWidth") > 0
    assert image.evaluate("img => new URL(img.src).pathname") == "/static/hello-flask.gif"


def test_register_log_in_account_change_password_log_out(
    visitor: OfflinePage, base_url: str
) -> None:
    page = visitor.page
    nav = page.get_by_role("navigation", name="Main")
    main = page.get_by_role("main")
    new_password = "another horse battery"

    page.goto(base_url + "/")
    nav.get_by_role("link", name="Register").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Create an account")
    page.get_by_label("Username", exact=True).fill("李四")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Confirm password", exact=True).fill(PASSWORD)
    main.get_by_role("button", name="Register").click()

    expect(page).to_have_url(base_url + "/login")
    expect(page.get_by_role("status")).to_have_text(
        "Account created. Log in with your new username and password."
    )
    page.get_by_label("Username", exact=True).fill("李四")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    main.get_by_role("button", name="Log in", exact=True).click()

    expect(page).to_have_url(path_of(base_url, "/success"))
    expect(page).to_have_title("Hello,李四")
    expect(page.get_by_role("heading", level=1)).to_have_text("Hello,李四")
    nav.get_by_role("link", name="Account").click()

    expect(page).to_have_url(base_url + "/account")
    expect(page.get_by_role("heading", level=1)).to_have_text("Your account")
    expect(page.locator("dl.facts dd").first).to_have_text("李四")
    main.get_by_role("link", name="Change password").click()

    expect(page).to_have_url(base_url + "/account/password")
    page.get_by_label("Current password", exact=True).fill(PASSWORD)
    page.get_by_label("New password", exact=True).fill(new_password)
    page.get_by_label("Confirm new password", exact=True).fill(new_password)
    main.get_by_role("button", name="Change password").click()

    expect(page).to_have_url(base_url + "/account")
    expect(page.get_by_role("status")).to_have_text(
        "Password changed. Your other sessions and API tokens have been logged out."
    )
    nav.get_by_role("button", name="Log out").click()

    expect(page).to_have_url(base_url + "/")
    expect(page.get_by_role("status")).to_have_text("You have been logged out.")
    expect(nav.get_by_role("link", name="Log in")).to_be_visible()
    expect(nav.get_by_role("button", name="Log out")).to_have_count(0)

    page.goto(base_url + "/success")
    expect(page).to_have_url(path_of(base_url, "/login"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Login Form")
    expect(page.get_by_role("status")).to_have_text("Please log in to see this page.")

    # The old password is gone; the new one logs in and returns to the page that asked.
    page.get_by_label("Username", exact=True).fill("李四")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    main.get_by_role("button", name="Log in", exact=True).click()
    expect(page.get_by_role("alert")).to_contain_text("Invalid username or password.")
    page.get_by_label("Password", exact=True).fill(new_password)
    main.get_by_role("button", name="Log in", exact=True).click()
    expect(page).to_have_url(path_of(base_url, "/success"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Hello,李四")


def test_a_wrong_password_shows_an_error_and_keeps_the_form(
    visitor: OfflinePage, base_url: str
) -> None:
    page = visitor.page
    register(base_url, "王五")
    page.goto(base_url + "/login")
    page.get_by_label("Username", exact=True).fill("王五")
    page.get_by_label("Password", exact=True).fill("not the password")
    page.get_by_role("main").get_by_role("button", name="Log in", exact=True).click()

    error = page.get_by_role("alert")
    expect(error).to_be_visible()
    expect(error).to_contain_text("Invalid username or password.")
    expect(error.get_by_role("link", name="Register first")).to_be_visible()
    # Still the form, at the address it posts to (the tutorial's /test_post), name kept.
    expect(page).to_have_url(base_url + "/test_post")
    expect(page.get_by_role("heading", level=1)).to_have_text("Login Form")
    expect(page.get_by_label("Username", exact=True)).to_have_value("王五")
    expect(page.get_by_label("Password", exact=True)).to_have_value("")
    expect(page.get_by_role("heading", name=re.compile("^Hello,"))).to_have_count(0)


def test_a_chinese_browser_gets_the_chinese_pages(browser: Browser, base_url: str) -> None:
    with offline_page(browser, base_url, locale="zh-CN") as opened:
        page = opened.page
        response = page.goto(base_url + "/login")
        assert response is not None
        assert response.request.all_headers()["accept-language"].startswith("zh-CN")
        expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
        expect(page).to_have_title("登录页面")
        expect(page.get_by_role("heading", level=1)).to_have_text("登录表单")
        expect(page.get_by_label("用户名", exact=True)).to_be_editable()
        expect(page.get_by_label("密码", exact=True)).to_be_editable()
        expect(
            page.get_by_role("main").get_by_role("button", name="登录", exact=True)
        ).to_be_visible()

        page.get_by_role("navigation", name="主导航").get_by_role("link", name="注册").click()
        expect(page).to_have_url(base_url + "/register")
        expect(page.get_by_role("heading", level=1)).to_have_text("注册账户")
        expect(page.get_by_label("确认密码", exact=True)).to_be_editable()
        assert opened.blocked == []


@pytest.mark.parametrize(
    ("browser_locale", "choice", "tag", "login_heading", "register_heading", "home_link"),
    [
        ("en-US", "简体中文", "zh-CN", "登录表单", "注册账户", "首页"),
        ("zh-CN", "English", "en", "Login Form", "Create an account", "Home"),
    ],
)
def test_the_language_switcher_sticks_across_pages(
    browser: Browser,
    base_url: str,
    browser_locale: str,
    choice: str,
    tag: str,
    login_heading: str,
    register_heading: str,
    home_link: str,
) -> None:
    """The switcher beats the browser's own language, on this page and every later one."""
    with offline_page(browser, base_url, locale=browser_locale) as opened:
        page = opened.page
        page.goto(base_url + "/login?next=%2Faccount")
        page.get_by_role("list", name=re.compile("Language|语言")).get_by_role(
            "link", name=choice
        ).click()

        # Back on the same page (query string kept), now in the chosen language.
        expect(page).to_have_url(base_url + "/login?next=%2Faccount")
        expect(page.locator("html")).to_have_attribute("lang", tag)
        expect(page.get_by_role("heading", level=1)).to_have_text(login_heading)
        expect(page.locator(f'.languages [aria-current="true"][lang="{tag}"]')).to_have_text(choice)
        assert {c["name"]: c["value"] for c in opened.context.cookies()}["userhub_lang"] == tag

        page.goto(base_url + "/register")
        expect(page.get_by_role("heading", level=1)).to_have_text(register_heading)
        page.get_by_role("navigation").get_by_role("link", name=home_link, exact=True).click()
        expect(page).to_have_url(base_url + "/")
        expect(page.locator("html")).to_have_attribute("lang", tag)
        assert opened.blocked == []


def test_register_and_log_in_from_the_keyboard_alone(visitor: OfflinePage, base_url: str) -> None:
    """Tab, typing and Enter only: no mouse."""
    page = visitor.page
    keyboard = page.keyboard
    page.goto(base_url + "/register")

    # The first Tab shows the skip link; following it puts the next Tab in the form.
    keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to content")
    expect(skip).to_be_focused()
    expect(skip).to_be_in_viewport()
    keyboard.press("Enter")
    expect(page).to_have_url(base_url + "/register#content")
    keyboard.press("Tab")
    expect(page.get_by_label("Username", exact=True)).to_be_focused()
    keyboard.type("赵六")
    keyboard.press("Tab")
    expect(page.get_by_label("Password", exact=True)).to_be_focused()
    keyboard.type(PASSWORD)
    keyboard.press("Tab")
    expect(page.get_by_label("Confirm password", exact=True)).to_be_focused()
    keyboard.type(PASSWORD)
    keyboard.press("Enter")

    expect(page).to_have_url(base_url + "/login")
    expect(page.get_by_role("status")).to_contain_text("Account created.")
    # The log-in form starts in its first field.
    expect(page.get_by_label("Username", exact=True)).to_be_focused()
    keyboard.type("赵六")
    keyboard.press("Tab")
    expect(page.get_by_label("Password", exact=True)).to_be_focused()
    keyboard.type(PASSWORD)
    keyboard.press("Enter")

    expect(page).to_have_url(path_of(base_url, "/success"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Hello,赵六")


def test_axe_missing_says_how_to_install_it(
    visitor: OfflinePage, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Without tests/browser/node_modules the page tests fail (never skip), saying what to run."""
    monkeypatch.setattr(browser_support, "AXE_SCRIPT", tmp_path / "axe.min.js")
    with pytest.raises(pytest.fail.Exception, match=r"npm ci --prefix tests/browser"):
        axe_violations(visitor.page)
