"""Account e-mail in a real browser (Debian's Chromium), against ``userhub serve`` whose workers
send the mail over SMTP to a real server in its own process (``tests/smtp_server.py``): each link
is read from what that server received and opened as the mail has it.

A forgotten password reset by mail and used to log in, in English and in Chinese; a verification
link whose page changes nothing until its button is pressed (the API says so); a log-in refused
for an unverified address that mails a new link itself; the address added and changed from the
account page. Every page a mailed link opens, and the account's address pages, are photographed
and checked with axe-core in both languages (``browser_support.check_page``).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

import pytest
import requests
from playwright.sync_api import Browser, Locator, Page, expect

from tests import browser_support
from tests.browser_support import (
    DESKTOP,
    LANGUAGES,
    OfflinePage,
    check_page,
    log_in,
    offline_page,
    path_of,
    register,
    text,
)
from tests.helpers import NEW_PASSWORD, PASSWORD, bearer
from tests.live_server import free_port, running_server
from tests.mail_support import link_in
from tests.smtp_server import SmtpSink

browser = browser_support.browser  # the shared fixture: Debian's Chromium
pytestmark = pytest.mark.browser  # make test-quick leaves them out

MAIL_SECONDS = 20.0  # from the request to the sink: the workers' sender sends at once
NAMES = itertools.count(1)


@dataclass(frozen=True)
class MailServer:
    """A running ``userhub serve`` and the SMTP server its mail goes to."""

    base: str
    sink: SmtpSink

    def next_mail(self, to: str) -> EmailMessage:
        """The one mail the server sent since the last one read, which must be to ``to``."""
        [mail] = self.sink.wait_for(1, timeout=MAIL_SECONDS)
        self.sink.clear()
        assert mail.rcpt_tos == [to], (mail.rcpt_tos, mail.message["Subject"])
        return mail.message

    def next_mails(self, count: int) -> dict[str, EmailMessage]:
        """The ``count`` mails sent since the last ones read, by recipient."""
        mails = self.sink.wait_for(count, timeout=MAIL_SECONDS)
        self.sink.clear()
        assert len(mails) == count, [mail.message["Subject"] for mail in mails]
        return {mail.rcpt_tos[0]: mail.message for mail in mails}

    def account(self, language: str, *, email: bool = True) -> tuple[str, str]:
        """A new account made through the API, and its address (its verification mail read
        and put aside); a Chinese name for a Chinese reader."""
        number = next(NAMES)
        username = f"读者{number}" if language == "zh-CN" else f"reader{number}"
        address = f"reader{number}@example.com"
        register(self.base, username, **({"email": address} if email else {}))
        if email:
            self.next_mail(address)
        return username, address

    def token(self, username: str, password: str = PASSWORD) -> dict[str, str]:
        answer = requests.post(
            f"{self.base}/api/v1/tokens",
            json={"username": username, "password": password},
            timeout=30,
        )
        assert answer.status_code == 201, answer.text
        return bearer(answer.json()["token"])

    def me(self, headers: dict[str, str]) -> dict[str, object]:
        answer = requests.get(f"{self.base}/api/v1/users/me", headers=headers, timeout=30)
        assert answer.status_code == 200, answer.text
        return dict(answer.json())


def mail_server(workdir: Path, **settings: str) -> Iterator[MailServer]:
    """``userhub serve`` (production mode, SQLite) mailing to a sink of its own, its mailed
    links starting with its own address (``USERHUB_PUBLIC_URL``)."""
    sink = SmtpSink(workdir / "sink").start()
    port = free_port()
    env = {
        "USERHUB_MAIL_URL": sink.url,
        "USERHUB_PUBLIC_URL": f"http://127.0.0.1:{port}",
        **settings,
    }
    database = f"sqlite:///{workdir / 'mail.sqlite3'}"
    try:
        with running_server("production", database, workdir, env=env, port=port) as server:
            yield MailServer(server.base, sink)
    finally:
        sink.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MailServer]:
    yield from mail_server(tmp_path_factory.mktemp("mail-pages"), USERHUB_RATELIMIT_ENABLED="false")


@pytest.fixture(scope="module")
def strict(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MailServer]:
    """A server that lets no one log in before their address is verified, and whose rate
    limits are on: 3 wrong passwords from strangers lock an account (and mail its owner)."""
    yield from mail_server(
        tmp_path_factory.mktemp("mail-pages-strict"),
        USERHUB_REQUIRE_VERIFIED_EMAIL="true",
        USERHUB_RATELIMIT_ACCOUNT="3 per hour",
        USERHUB_RATELIMIT_MAIL="100 per hour",
    )


@pytest.fixture
def visitor(browser: Browser, server: MailServer) -> Iterator[OfflinePage]:
    """An English-speaking visitor, with the site's Content-Security-Policy enforced."""
    with offline_page(browser, server.base, locale="en-US", viewport=DESKTOP) as opened:
        yield opened
        assert opened.blocked == []


def heading(page: Page) -> Locator:
    return page.get_by_role("heading", level=1)


def press(page: Page, language: str, name: str) -> None:
    """Press the page's own button called ``name`` (not the navigation's)."""
    page.get_by_role("main").get_by_role("button", name=text(language, name)).click()


# --- Flows -------------------------------------------------------------------------------------


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_forgotten_password_is_reset_by_mail(
    browser: Browser, server: MailServer, language: str
) -> None:
    """Forgot your password? → the mail → its page → a new password → log in with it."""
    username, address = server.account(language)
    with offline_page(browser, server.base, locale=language, viewport=DESKTOP) as opened:
        page = opened.page
        page.goto(server.base + "/login")
        page.get_by_role("link", name=text(language, "Forgot your password?")).click()
        page.get_by_label(text(language, "E-mail address or username"), exact=True).fill(address)
        press(page, language, "Send me a link")
        expect(heading(page)).to_have_text(text(language, "Check your mail"))

        mail = server.next_mail(address)
        assert mail["Subject"] == text(language, "Reset your password")
        assert mail["Content-Language"] == language
        link = link_in(mail, "/password/reset")
        assert link.startswith(server.base + "/password/reset?token=")
        page.goto(link)
        expect(heading(page)).to_have_text(text(language, "Choose a new password"))
        page.get_by_label(text(language, "New password"), exact=True).fill(NEW_PASSWORD)
        page.get_by_label(text(language, "Confirm new password"), exact=True).fill(NEW_PASSWORD)
        press(page, language, "Set the new password")

        expect(page).to_have_url(server.base + "/login")
        expect(page.get_by_role("status")).to_have_text(
            text(language, "Your password is changed. Log in with the new one.")
        )
        log_in(page, server.base, language, username, NEW_PASSWORD)
        expect(page).to_have_url(path_of(server.base, "/success"))
        expect(heading(page)).to_have_text(f"Hello,{username}")
        notice = server.next_mail(address)
        assert notice["Subject"] == text(language, "Your password was changed")
        page.goto(link)  # used: it opens nothing now
        expect(heading(page)).to_have_text(text(language, "This link cannot be used"))
        assert opened.blocked == []


def test_the_verify_page_confirms_only_on_its_button(
    visitor: OfflinePage, server: MailServer
) -> None:
    """A mail scanner that opens the link verifies nothing: only the page's button does."""
    page = visitor.page
    username = f"reader{next(NAMES)}"
    address = f"{username}@example.com"
    register(server.base, username, email=address)
    link = link_in(server.next_mail(address), "/email/verify")
    headers = server.token(username)
    assert server.me(headers)["email_verified"] is False

    page.goto(link)
    expect(heading(page)).to_have_text("Confirm your e-mail address")
    expect(page.get_by_role("main")).to_contain_text(address)
    page.reload()
    assert requests.get(link, timeout=30).status_code == 200  # and a scanner without cookies
    assert server.me(headers)["email_verified"] is False

    press(page, "en", "Confirm my address")
    expect(page).to_have_url(server.base + "/login")
    expect(page.get_by_role("status")).to_have_text("Your e-mail address is confirmed.")
    assert server.me(headers)["email_verified"] is True


@pytest.mark.parametrize("language", LANGUAGES)
def test_log_in_waits_for_a_confirmed_address_and_mails_a_new_link(
    browser: Browser, strict: MailServer, language: str
) -> None:
    """Registered with an address whose first link got lost: the log-in form says why it
    refuses, and its button mails a new link, with no session."""
    number = next(NAMES)
    username, address = f"新读者{number}", f"new-reader{number}@example.com"
    with offline_page(browser, strict.base, locale=language, viewport=DESKTOP) as opened:
        page = opened.page
        page.goto(strict.base + "/register")
        page.get_by_label(text(language, "Username"), exact=True).fill(username)
        page.get_by_label(text(language, "Password"), exact=True).fill(PASSWORD)
        page.get_by_label(text(language, "Confirm password"), exact=True).fill(PASSWORD)
        page.get_by_label(text(language, "E-mail address (optional)"), exact=True).fill(address)
        press(page, language, "Register")
        expect(page).to_have_url(strict.base + "/login")
        strict.next_mail(address)  # lost

        log_in(page, strict.base, language, username, PASSWORD)
        alert = page.get_by_role("alert")
        expect(alert).to_contain_text(
            text(
                language,
                "Confirm your e-mail address first: follow the link we mailed you, or ask for a "
                "new one.",
            )
        )
        alert.get_by_role("button", name=text(language, "Send a new link")).click()
        expect(heading(page)).to_have_text(text(language, "Check your mail"))

        page.goto(link_in(strict.next_mail(address), "/email/verify"))
        press(page, language, "Confirm my address")
        expect(page.get_by_role("status")).to_have_text(
            text(language, "Your e-mail address is confirmed.")
        )
        log_in(page, strict.base, language, username, PASSWORD)
        expect(heading(page)).to_have_text(f"Hello,{username}")
        assert opened.blocked == []


def test_the_address_is_added_and_changed_from_the_account_page(
    visitor: OfflinePage, server: MailServer
) -> None:
    page = visitor.page
    main = page.get_by_role("main")
    username, _ = server.account("en", email=False)
    first, second = f"{username}@example.com", f"{username}@example.org"
    log_in(page, server.base, "en", username, PASSWORD)
    page.goto(server.base + "/account")
    expect(page.locator("#email-address")).to_have_text("none")
    main.get_by_role("link", name="Add an e-mail address").click()
    page.get_by_label("New e-mail address", exact=True).fill(first)
    press(page, "en", "Add an e-mail address")

    expect(page).to_have_url(server.base + "/account")
    expect(page.locator("#email-address")).to_have_text(
        re.compile(rf"{re.escape(first)}\s+not confirmed yet")
    )
    server.next_mail(first)  # its link, lost
    press(page, "en", "Send a new link")
    expect(page.get_by_role("status")).to_have_text(
        "A new confirmation link is on its way to your address."
    )
    page.goto(link_in(server.next_mail(first), "/email/verify"))
    press(page, "en", "Confirm my address")
    expect(page.locator("#email-address")).to_have_text(
        re.compile(rf"{re.escape(first)}\s+confirmed")
    )

    main.get_by_role("link", name="Change e-mail address").click()
    page.get_by_label("New e-mail address", exact=True).fill(second)
    press(page, "en", "Change e-mail address")
    expect(page.locator("#pending-email")).to_have_text(second)
    mails = server.next_mails(2)
    assert mails[first]["Subject"] == "Your e-mail address is being changed"
    page.goto(link_in(mails[second], "/email/change/confirm"))
    expect(main).to_contain_text(second)
    press(page, "en", "Confirm the new address")
    expect(page).to_have_url(server.base + "/account")
    expect(page.locator("#email-address")).to_have_text(
        re.compile(rf"{re.escape(second)}\s+confirmed")
    )
    expect(page.locator("#pending-email")).to_have_count(0)


# --- Every page, photographed and checked by axe -----------------------------------------------


def show_verify(page: Page, server: MailServer, language: str) -> None:
    username = f"verify{next(NAMES)}"
    address = f"{username}@example.com"
    register(server.base, username, email=address)
    page.goto(link_in(server.next_mail(address), "/email/verify"))
    expect(heading(page)).to_have_text(text(language, "Confirm your e-mail address"))


def open_reset_link(page: Page, server: MailServer, language: str) -> None:
    _, address = server.account(language)
    reset = f"{server.base}/api/v1/password-reset"
    answer = requests.post(reset, json={"email": address}, timeout=30)
    assert answer.status_code == 202, answer.text
    page.goto(link_in(server.next_mail(address), "/password/reset"))
    expect(heading(page)).to_have_text(text(language, "Choose a new password"))


def show_reset_errors(page: Page, server: MailServer, language: str) -> None:
    open_reset_link(page, server, language)
    page.get_by_label(text(language, "New password"), exact=True).fill("short")
    page.get_by_label(text(language, "Confirm new password"), exact=True).fill("short")
    press(page, language, "Set the new password")
    expect(
        page.get_by_label(text(language, "New password"), exact=True)
    ).to_have_accessible_description(
        re.compile(re.escape(text(language, "Password must be at least 8 characters.")))
    )


def change_address(server: MailServer, language: str) -> dict[str, str]:
    """An account whose owner asked (through the API) to change its address: the links of the
    two mails that went out, to the new address and to the old one."""
    username, address = server.account(language)
    new = f"changed-{address}"
    answer = requests.patch(
        f"{server.base}/api/v1/users/me",
        json={"email": new},
        headers=server.token(username),
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    mails = server.next_mails(2)
    return {
        "confirm": link_in(mails[new], "/email/change/confirm"),
        "undo": link_in(mails[address], "/email/change/undo"),
    }


def show_confirm_change(page: Page, server: MailServer, language: str) -> None:
    page.goto(change_address(server, language)["confirm"])
    expect(heading(page)).to_have_text(text(language, "Confirm your new e-mail address"))


def show_undo_change(page: Page, server: MailServer, language: str) -> None:
    page.goto(change_address(server, language)["undo"])
    expect(heading(page)).to_have_text(text(language, "This was not me"))


def show_unlock(page: Page, strict: MailServer, language: str) -> None:
    """Strangers' wrong passwords (no device cookie) fill the account's bucket: its owner gets
    a link that lets their browser in."""
    username, address = strict.account(language)
    for _ in range(3):
        requests.post(
            f"{strict.base}/api/v1/tokens",
            json={"username": username, "password": "a stranger's guess"},
            timeout=30,
        )
    page.goto(link_in(strict.next_mail(address), "/unlock"))
    expect(heading(page)).to_have_text(text(language, "Unlock your account"))


def show_end_session(page: Page, server: MailServer, language: str) -> None:
    """A log-in from a browser the account has not used (after a first one through the API,
    which mails nothing) mails its owner a link that ends that session: the link's page."""
    username, address = server.account(language)
    server.token(username)
    log_in(page, server.base, language, username, PASSWORD)
    page.goto(link_in(server.next_mail(address), "/email/end-session"))
    expect(page.get_by_role("main").get_by_role("button")).to_have_text(
        text(language, "End the session")
    )


def show_login_unverified(page: Page, strict: MailServer, language: str) -> None:
    username, _ = strict.account(language)
    log_in(page, strict.base, language, username, PASSWORD)
    expect(page.get_by_role("alert").get_by_role("button")).to_have_text(
        text(language, "Send a new link")
    )


def show_account_pending(page: Page, server: MailServer, language: str) -> None:
    """The account page of an unconfirmed address with a change pending (both notices)."""
    username, address = server.account(language)
    log_in(page, server.base, language, username, PASSWORD)
    page.goto(server.base + "/account/email")
    page.get_by_label(text(language, "New e-mail address"), exact=True).fill(f"new-{address}")
    press(page, language, "Change e-mail address")
    expect(page.locator("#pending-email")).to_have_text(f"new-{address}")
    server.next_mails(2)


def show_account_email_pending(page: Page, server: MailServer, language: str) -> None:
    show_account_pending(page, server, language)
    page.goto(server.base + "/account/email")
    expect(heading(page)).to_have_text(text(language, "Change e-mail address"))


ShowPage = Callable[[Page, MailServer, str], None]
# Each page, and the server it needs ("server", or "strict" for a log-in that waits for a
# confirmed address and for the lock that mails an unlock link).
PAGES: dict[str, tuple[str, ShowPage]] = {
    "verify-email": ("server", show_verify),
    "reset-password": ("server", open_reset_link),
    "reset-password-errors": ("server", show_reset_errors),
    "confirm-change": ("server", show_confirm_change),
    "undo-change": ("server", show_undo_change),
    "unlock": ("strict", show_unlock),
    "end-session": ("server", show_end_session),
    "login-unverified": ("strict", show_login_unverified),
    "account-address-pending": ("server", show_account_pending),
    "account-email-pending": ("server", show_account_email_pending),
}


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("name", PAGES)
def test_every_mail_page_is_photographed_and_passes_axe(
    browser: Browser, request: pytest.FixtureRequest, name: str, language: str
) -> None:
    kind, show = PAGES[name]
    mail_server: MailServer = request.getfixturevalue(kind)
    # bypass_csp: the site's policy rightly refuses the injected axe script.
    options = {"locale": language, "viewport": DESKTOP, "bypass_csp": True}
    with offline_page(browser, mail_server.base, **options) as opened:
        show(opened.page, mail_server, language)
        expect(opened.page.locator("html")).to_have_attribute("lang", language)
        check_page(opened, name, language)
