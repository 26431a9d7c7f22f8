"""Passkeys in a real browser (Debian's Chromium) with its virtual authenticator (the DevTools
protocol's ``WebAuthn`` domain: a platform authenticator with resident keys and user
verification, which answers by itself), against ``userhub serve`` (production mode, SQLite).

A passkey needs a domain name, not an IP address, and a secure context: the server is reached
as ``http://localhost:PORT`` (http is secure at localhost), with ``USERHUB_PUBLIC_URL`` saying
so. In English and in Chinese: add a passkey on ``/account/passkeys``, log out, log in with the
passkey alone from the log-in page, see it listed as used, remove it; the page is checked with
axe-core. And a passkey as the second factor after the password (``/login/second-step``).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from typing import Any

import pytest
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
)
from tests.helpers import PASSWORD
from tests.live_server import free_port, running_server

browser = browser_support.browser  # the shared fixture: Debian's Chromium
pytestmark = pytest.mark.browser  # make test-quick leaves them out

NAMES = itertools.count(1)

# What a Chinese reader sees (from the catalogue, written out so a missing one fails).
CHINESE = {
    "Passkeys": "通行密钥",
    "Name": "名称",
    "Add a passkey": "添加通行密钥",
    "Passkey added: %s. You can log in with it now.": "已添加通行密钥：%s。现在可以用它登录了。",
    "Log in with a passkey": "使用通行密钥登录",
    "Log out": "退出登录",
    "never": "从未",
    "Remove": "移除",
    "You have no passkeys.": "你还没有通行密钥。",
    "The passkey was removed: it can no longer log in to your account.": (
        "通行密钥已移除：它再也不能登录你的账户了。"
    ),
}


def text(language: str, english: str) -> str:
    return CHINESE[english] if language == "zh-CN" else english


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    workdir = tmp_path_factory.mktemp("passkeys")
    port = free_port()
    public = f"http://localhost:{port}"  # a passkey's site is a name: never 127.0.0.1
    with running_server(
        "production",
        f"sqlite:///{workdir / 'passkeys.sqlite3'}",
        workdir,
        env={"USERHUB_RATELIMIT_ENABLED": "false", "USERHUB_PUBLIC_URL": public},
        port=port,
    ):
        yield public


def account(base_url: str, language: str) -> str:
    number = next(NAMES)
    return register(base_url, f"钥匙{number}" if language == "zh-CN" else f"keyholder{number}")


def virtual_authenticator(opened: OfflinePage) -> dict[str, Any]:
    """Chromium's virtual platform authenticator on this page: it keeps resident keys,
    verifies its user and answers without a person. Its id, to read its credentials."""
    cdp = opened.context.new_cdp_session(opened.page)
    cdp.send("WebAuthn.enable")
    added = cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )
    return {"cdp": cdp, "id": added["authenticatorId"]}


def credentials(authenticator: dict[str, Any]) -> list[dict[str, Any]]:
    found = authenticator["cdp"].send(
        "WebAuthn.getCredentials", {"authenticatorId": authenticator["id"]}
    )
    return list(found["credentials"])


def main(page: Page) -> Locator:
    return page.get_by_role("main")


def add_passkey(page: Page, base_url: str, language: str, name: str) -> None:
    page.goto(base_url + "/account")
    main(page).get_by_role("link", name=text(language, "Passkeys")).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(text(language, "Passkeys"))
    expect(main(page).get_by_text(text(language, "You have no passkeys."))).to_be_visible()
    main(page).get_by_label(text(language, "Name"), exact=True).fill(name)
    main(page).get_by_role("button", name=text(language, "Add a passkey")).click()
    added = text(language, "Passkey added: %s. You can log in with it now.") % name
    expect(page.locator(".flash")).to_have_text(added)
    expect(page).to_have_url(base_url + "/account/passkeys")


def log_out(page: Page, language: str) -> None:
    page.get_by_role("navigation").get_by_role("button", name=text(language, "Log out")).click()
    expect(page).to_have_url(path_of(base_url_of(page), "/"))


def base_url_of(page: Page) -> str:
    match = re.match(r"https?://[^/]+", page.url)
    assert match
    return match.group(0)


@pytest.mark.parametrize("language", LANGUAGES)
def test_add_a_passkey_log_in_with_it_alone_and_remove_it(
    browser: Browser, base_url: str, language: str
) -> None:
    username = account(base_url, language)
    options = {"locale": language, "viewport": DESKTOP, "bypass_csp": True}
    with offline_page(browser, base_url, **options) as opened:
        page = opened.page
        authenticator = virtual_authenticator(opened)
        log_in(page, base_url, language, username, PASSWORD)
        expect(page).to_have_url(path_of(base_url, "/success"))

        add_passkey(page, base_url, language, "laptop")
        [stored] = credentials(authenticator)
        assert stored["isResidentCredential"] is True
        card = main(page).get_by_role("listitem").filter(has_text="laptop")
        expect(card).to_contain_text(text(language, "never"))
        check_page(opened, "passkeys", language)

        log_out(page, language)
        page.goto(base_url + "/login")
        main(page).get_by_role("button", name=text(language, "Log in with a passkey")).click()
        expect(page).to_have_url(path_of(base_url, "/success"))
        expect(page.get_by_role("heading", level=1)).to_have_text(f"Hello,{username}")

        page.goto(base_url + "/account/passkeys")
        card = main(page).get_by_role("listitem").filter(has_text="laptop")
        expect(card.locator(".last-used time")).to_have_count(1)
        expect(card).not_to_contain_text(text(language, "never"))
        card.get_by_role("button", name=text(language, "Remove")).click()
        expect(page.locator(".flash")).to_have_text(
            text(language, "The passkey was removed: it can no longer log in to your account.")
        )
        expect(main(page).get_by_text(text(language, "You have no passkeys."))).to_be_visible()

        # The authenticator still holds it, but the site no longer knows it.
        log_out(page, language)
        page.goto(base_url + "/login")
        main(page).get_by_role("button", name=text(language, "Log in with a passkey")).click()
        expect(page.locator("#passkey-login-status")).not_to_be_empty()
        expect(page).to_have_url(path_of(base_url, "/login"))
        assert opened.blocked == []


def test_without_webauthn_the_buttons_are_hidden_and_say_why(
    browser: Browser, base_url: str
) -> None:
    with offline_page(browser, base_url, locale="en", viewport=DESKTOP) as opened:
        page = opened.page
        page.add_init_script("delete window.PublicKeyCredential;")
        page.goto(base_url + "/login")
        expect(page.locator("[data-passkey]")).to_be_hidden()
        expect(page.locator("#passkey-login-status")).to_have_text(
            "This browser cannot use passkeys."
        )


def test_a_passkey_as_the_second_factor(browser: Browser, base_url: str) -> None:
    """Needs the lead's second step of the log-in (``/login/second-step``): an account with a
    passkey logs in with its password, then its passkey."""
    username = account(base_url, "en")
    with offline_page(browser, base_url, locale="en", viewport=DESKTOP) as opened:
        page = opened.page
        virtual_authenticator(opened)
        log_in(page, base_url, "en", username, PASSWORD)
        add_passkey(page, base_url, "en", "phone")
        log_out(page, "en")

        log_in(page, base_url, "en", username, PASSWORD)
        expect(page).to_have_url(path_of(base_url, "/login/second-step"))
        page.locator('[data-passkey="authenticate"]').click()
        expect(page).to_have_url(path_of(base_url, "/success"))
        expect(page.get_by_role("heading", level=1)).to_have_text(f"Hello,{username}")
