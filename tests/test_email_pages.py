"""Account e-mail in the browser's pages (the Flask test client): the address at registration and
on the account page, the pages mailed links open, the forgotten password, and the log-in form
when an unverified address refuses it. The mail goes over SMTP to the sink, and its links are
read out of what the sink received (``tests/mail_support.py``)."""

from __future__ import annotations

import re
from datetime import timedelta
from html import unescape

import pytest
import time_machine
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from tests.helpers import (
    NEW_PASSWORD,
    PASSWORD,
    ApiActions,
    AuthActions,
    csrf_token,
    is_logged_in,
)
from tests.mail_support import Mailbox, MailboxBuilder, link_to
from userhub.services import users

ADDRESS = "zhangsan@example.com"
NEW_ADDRESS = "new@example.com"


@pytest.fixture
def app(mailbox: Mailbox) -> Flask:
    """The app of these tests (and so of ``client``, ``auth`` and ``api``): its mail goes to
    the sink of ``mailbox``."""
    return mailbox.app


def flashes(html: str) -> list[str]:
    """The flash messages on a page, as read."""
    found = re.findall(r'<p class="flash[^"]*" role="status">(.*?)</p>', html)
    return [unescape(message) for message in found]


def main_of(html: str) -> str:
    """The page's own content, without the layout."""
    return html[html.index("<main") : html.index("</main>")]


def press(client: FlaskClient, path: str, **fields: str) -> TestResponse:
    """Post the form of the page at ``path`` with its CSRF token, as its button does."""
    return client.post(path, data={**fields, "csrf_token": csrf_token(client.get(path).text)})


def row(api: ApiActions, username: str = "张三") -> dict[str, object]:
    return api.user_row(username)


# --- Registration ------------------------------------------------------------------------------


def test_the_register_form_has_an_optional_address(client: FlaskClient) -> None:
    html = client.get("/register").text
    field = re.search(r'<input[^>]*name="email"[^>]*>', html)
    assert field is not None and 'type="email"' in field[0] and 'autocomplete="email"' in field[0]
    assert " required" not in field[0]
    assert '<label for="email">E-mail address (optional)</label>' in html


def test_registering_with_an_address_mails_a_verification_link(
    client: FlaskClient, auth: AuthActions, api: ApiActions, mailbox: Mailbox
) -> None:
    response = auth.register(email="ZhangSan@Example.com")
    assert response.status_code == 302 and response.location == "/login"
    assert flashes(client.get("/login").text) == [
        "Account created. Log in with your new username and password. We mailed a link to "
        f"{ADDRESS}: follow it to confirm the address."
    ]
    assert row(api)["email"] == ADDRESS and row(api)["email_verified_at"] is None
    mail = mailbox.only(ADDRESS)
    assert mail["Subject"] == "Confirm your e-mail address"
    assert link_to(mail, "/email/verify").startswith("/email/verify?token=")


def test_registering_without_an_address_mails_nothing(
    auth: AuthActions, api: ApiActions, mailbox: Mailbox
) -> None:
    assert auth.register().status_code == 302
    assert row(api)["email"] is None and mailbox.deliver() == 0


@pytest.mark.parametrize(
    ("email", "status", "message"),
    [
        ("not an address", 422, "E-mail address is not valid"),
        ("taken@example.com", 409, "This e-mail address is already used by another account."),
    ],
)
def test_a_bad_or_taken_address_keeps_the_form(
    auth: AuthActions, api: ApiActions, email: str, status: int, message: str
) -> None:
    auth.register("李四", email="taken@example.com")
    response = auth.register(email=email)
    assert response.status_code == status
    field = re.search(
        r'<div class="field invalid">\s*<label for="email">.*?</div>', response.text, re.S
    )
    assert field is not None and message in field[0]
    assert [account["username"] for account in api.rows("user")] == ["李四"]


def test_a_broken_rule_with_no_address_is_422_not_400(auth: AuthActions) -> None:
    """The optional address left empty is not a missing field."""
    assert auth.register(password="short").status_code == 422


# --- A link's page uses it only on its button -------------------------------------------------


def test_the_verify_link_confirms_only_when_its_button_is_pressed(
    client: FlaskClient, auth: AuthActions, api: ApiActions, mailbox: Mailbox
) -> None:
    auth.register(email=ADDRESS)
    link = link_to(mailbox.only(ADDRESS), "/email/verify")

    page = client.get(link)
    assert page.status_code == 200
    assert f"Press the button to confirm {ADDRESS} as your account" in page.text
    assert f'<form method="post" action="{link}">' in unescape(page.text)
    client.get(link)  # a mail scanner fetching it again
    assert row(api)["email_verified_at"] is None

    assert client.post(link).status_code == 400  # no CSRF token: refused
    assert row(api)["email_verified_at"] is None

    done = press(client, link)
    assert done.status_code == 302 and done.location == "/login"
    assert flashes(client.get("/login").text) == ["Your e-mail address is confirmed."]
    assert row(api)["email_verified_at"] is not None


@pytest.mark.parametrize(
    "path",
    [
        "/email/verify",
        "/password/reset",
        "/email/change/confirm",
        "/email/change/undo",
        "/unlock",
        "/email/end-session",
        "/email/end-token",
    ],
)
@pytest.mark.parametrize("token", ["", "not-a-token", "x" * 500])
def test_a_wrong_token_shows_the_link_error_page(
    client: FlaskClient, path: str, token: str
) -> None:
    response = client.get(f"{path}?token={token}")
    assert response.status_code == 400
    assert "<h1>This link cannot be used</h1>" in response.text
    assert '<div class="alert" role="alert"><p class="error">This link is not valid' in unescape(
        response.text
    )


def test_a_used_link_shows_the_error_page_with_the_way_to_a_new_one(
    client: FlaskClient, auth: AuthActions, mailbox: Mailbox
) -> None:
    auth.register(email=ADDRESS)
    link = link_to(mailbox.only(ADDRESS), "/email/verify")
    token = csrf_token(client.get(link).text)
    assert client.post(link, data={"csrf_token": token}).status_code == 302
    again = client.post(link, data={"csrf_token": token})
    assert again.status_code == 400 and "This link is not valid" in again.text
    assert 'Your <a href="/account">account page</a> sends a new link' in again.text


def test_an_expired_link_says_so(
    app: Flask, client: FlaskClient, auth: AuthActions, mailbox: Mailbox
) -> None:
    auth.register(email=ADDRESS)
    mailbox.new_mail()
    request_reset(client, "张三")
    link = link_to(mailbox.only(ADDRESS), "/password/reset")
    lifetime = app.config["USERHUB_PASSWORD_RESET_TTL_SECONDS"]
    with time_machine.travel(timedelta(seconds=lifetime + 1), tick=True):
        for response in (client.get(link), press_reset(client, link, NEW_PASSWORD)):
            assert response.status_code == 400
            assert "This link has expired. Ask for a new one." in response.text
            ask = '<a href="/password/forgot">Ask for a link to reset your password</a>'
            assert ask in response.text


# --- Forgotten password ------------------------------------------------------------------------


def request_reset(client: FlaskClient, account: str) -> TestResponse:
    return press(client, "/password/forgot", account=account)


def press_reset(client: FlaskClient, link: str, password: str, confirm: str = "") -> TestResponse:
    """The reset page's form, sent (its CSRF token is the session's, from any form)."""
    fields = {"password": password, "confirm": confirm or password}
    fields["csrf_token"] = csrf_token(client.get("/password/forgot").text)
    return client.post(link, data=fields)


def test_the_login_page_links_to_the_forgotten_password(client: FlaskClient) -> None:
    html = client.get("/login").text
    assert '<a href="/password/forgot">Forgot your password?</a>' in html
    forgot = client.get("/password/forgot")
    assert forgot.status_code == 200 and "<h1>Forgot your password?</h1>" in forgot.text


def test_the_answer_is_the_same_whoever_is_named(
    client: FlaskClient, auth: AuthActions, mailbox: Mailbox
) -> None:
    auth.register(email=ADDRESS)
    auth.register("没有地址")
    mailbox.new_mail()  # the verification mail
    answers = {
        name: request_reset(client, name)
        for name in ("张三", ADDRESS, "没有地址", "nobody", "nobody@example.com")
    }
    assert {response.status_code for response in answers.values()} == {200}
    assert len({main_of(response.text) for response in answers.values()}) == 1
    assert "<h1>Check your mail</h1>" in answers["nobody"].text
    mails = mailbox.new_mail(2)  # by name and by address: the one account with an address
    assert {(mail.rcpt_tos[0], mail.message["Subject"]) for mail in mails} == {
        (ADDRESS, "Reset your password")
    }
    assert mailbox.deliver() == 0


def test_the_forgot_form_needs_its_token_and_a_name(client: FlaskClient) -> None:
    assert client.post("/password/forgot", data={"account": "张三"}).status_code == 400
    empty = request_reset(client, "  ")
    assert empty.status_code == 400 and "Enter your e-mail address or username." in empty.text


def test_reset_sets_a_new_password_once(
    client: FlaskClient, auth: AuthActions, api: ApiActions, mailbox: Mailbox
) -> None:
    auth.register(email=ADDRESS)
    mailbox.new_mail()
    request_reset(client, ADDRESS)
    link = link_to(mailbox.only(ADDRESS), "/password/reset")
    page = client.get(link)
    assert page.status_code == 200 and "<h1>Choose a new password</h1>" in page.text

    differ = press_reset(client, link, NEW_PASSWORD, "something else")
    assert differ.status_code == 422 and "The two passwords differ." in differ.text
    short = press_reset(client, link, "short")
    assert short.status_code == 422 and "Password must be at least 8 characters." in short.text

    done = press_reset(client, link, NEW_PASSWORD)
    assert done.status_code == 302 and done.location == "/login"
    assert flashes(client.get("/login").text) == [
        "Your password is changed. Log in with the new one."
    ]
    assert "Invalid username or password." in auth.login(password=PASSWORD).text
    assert auth.login(password=NEW_PASSWORD).status_code == 302
    assert row(api)["email_verified_at"] is not None  # the link reached the address
    assert mailbox.only(ADDRESS)["Subject"] == "Your password was changed"
    used = press_reset(client, link, "yet another password")
    assert used.status_code == 400 and "This link is not valid" in used.text


# --- Log-in refused for an unverified address --------------------------------------------------


@pytest.fixture
def strict(build_mailbox: MailboxBuilder) -> Mailbox:
    """An app that refuses log-in to an account whose address is not verified yet."""
    return build_mailbox(USERHUB_REQUIRE_VERIFIED_EMAIL=True)


def resend(auth: AuthActions, username: str) -> TestResponse:
    """The log-in page's "Send a new link" (its form carries the log-in page's CSRF token)."""
    data = {"username": username, "csrf_token": auth.token()}
    return auth.client.post("/email/verification/resend", data=data)


@pytest.mark.parametrize("path", ["/test_post", "/test_request"])
def test_an_unverified_address_refuses_log_in_with_a_button_for_a_new_link(
    strict: Mailbox, path: str
) -> None:
    auth = AuthActions(strict.app.test_client())
    auth.register(email=ADDRESS)
    refused = auth.login(path=path)
    assert refused.status_code == 403
    assert "Confirm your e-mail address first" in refused.text
    button = re.search(
        r'<form action="/email/verification/resend" method="post">(.*?)</form>', refused.text, re.S
    )
    assert button is not None and 'name="username" type="hidden" value="张三"' in button[1]
    assert ">Send a new link</button>" in button[1]
    assert not is_logged_in(auth.client)

    wrong = auth.login(password="wrong password", path=path)
    assert wrong.status_code == 200 and "Invalid username or password." in wrong.text
    assert "/email/verification/resend" not in wrong.text  # nothing told without the password


def test_send_a_new_link_answers_the_same_whoever_is_named(strict: Mailbox) -> None:
    client = strict.app.test_client()
    auth = AuthActions(client)
    auth.register(email=ADDRESS)
    auth.register("没有地址")
    strict.new_mail()  # the first link, lost
    answers = {name: resend(auth, name) for name in ("张三", "没有地址", "nobody", "")}
    assert {response.status_code for response in answers.values()} == {200}
    assert len({main_of(response.text) for response in answers.values()}) == 1
    assert "a new link is on its way" in answers["nobody"].text
    link = link_to(strict.only(ADDRESS), "/email/verify")  # one mail: 张三's
    press(client, link)
    assert auth.login().status_code == 302  # verified: the log-in goes through
    resend(auth, "张三")
    assert strict.deliver() == 0  # verified already: nothing more is sent


def test_send_a_new_link_needs_the_csrf_token(strict: Mailbox) -> None:
    client = strict.app.test_client()
    AuthActions(client).register(email=ADDRESS)
    strict.new_mail()
    assert client.post("/email/verification/resend", data={"username": "张三"}).status_code == 400
    assert strict.deliver() == 0


def test_the_mail_limits_apply_to_send_a_new_link(build_mailbox: MailboxBuilder) -> None:
    """Per client IP (the route's limit, openly), and per address (silently: the answer is the
    same and no mail goes)."""
    limited = build_mailbox(
        USERHUB_REQUIRE_VERIFIED_EMAIL=True,
        RATELIMIT_ENABLED=True,
        RATELIMIT_STORAGE_URI="memory://",
        USERHUB_RATELIMIT_MAIL="3 per minute",
        USERHUB_RATELIMIT_MAIL_ADDRESS="2 per hour",
    )
    auth = AuthActions(limited.app.test_client())
    auth.register(email=ADDRESS)
    limited.new_mail()  # at registration (not a mail of these limits)
    answers = [resend(auth, "张三").status_code for _ in range(4)]
    assert answers == [200, 200, 200, 429]
    assert len(limited.new_mail(2)) == 2  # the third was over the address's limit
    assert limited.deliver() == 0


# --- The account page and the address ----------------------------------------------------------


@pytest.fixture
def logged_in(auth: AuthActions, mailbox: Mailbox) -> AuthActions:
    """张三, with an address not confirmed yet (its first link, lost), logged in."""
    auth.register(email=ADDRESS)
    mailbox.new_mail()
    auth.login()
    return auth


def test_the_account_page_shows_the_address_and_a_button_for_a_new_link(
    client: FlaskClient, logged_in: AuthActions, mailbox: Mailbox
) -> None:
    html = client.get("/account").text
    assert ADDRESS in html and '<span class="tag tag-warn">not confirmed yet</span>' in html
    assert '<form action="/email/verification/send" method="post">' in html
    assert '<a class="button" href="/account/email">Change e-mail address</a>' in html

    sent = client.post("/email/verification/send", data={"csrf_token": logged_in.token("/account")})
    assert sent.status_code == 302 and sent.location == "/account"
    press(client, link_to(mailbox.only(ADDRESS), "/email/verify"))
    html = client.get("/account").text
    assert '<span class="tag tag-ok">confirmed</span>' in html
    assert "/email/verification/send" not in html


def test_an_account_without_address_is_offered_one(client: FlaskClient, auth: AuthActions) -> None:
    auth.register()
    auth.login()
    html = client.get("/account").text
    assert '<span class="muted">none</span>' in html
    assert '<a class="button" href="/account/email">Add an e-mail address</a>' in html
    page = client.get("/account/email").text
    assert "<h1>Add an e-mail address</h1>" in page and "/account/email/remove" not in page


def test_the_address_pages_need_a_log_in(client: FlaskClient) -> None:
    assert client.get("/account/email").location.startswith("/login")
    token = {"csrf_token": csrf_token(client.get("/login").text)}
    for path in ("/account/email/remove", "/account/email/cancel", "/email/verification/send"):
        assert client.post(path, data=token).location.startswith("/login")


def test_a_first_address_is_the_accounts_at_once_and_mailed_a_link(
    client: FlaskClient, auth: AuthActions, api: ApiActions, mailbox: Mailbox
) -> None:
    auth.register()
    auth.login()
    done = press(client, "/account/email", email=ADDRESS)
    assert done.status_code == 302 and done.location == "/account"
    assert flashes(client.get("/account").text) == [
        f"We mailed a link to {ADDRESS}: follow it to confirm the address."
    ]
    assert row(api)["email"] == ADDRESS and row(api)["email_verified_at"] is None
    assert mailbox.only(ADDRESS)["Subject"] == "Confirm your e-mail address"


def test_a_new_address_waits_for_its_link_and_the_old_one_is_told(
    client: FlaskClient, logged_in: AuthActions, api: ApiActions, mailbox: Mailbox
) -> None:
    assert client.post("/account/email", data={"email": NEW_ADDRESS}).status_code == 400
    press(client, "/account/email", email=NEW_ADDRESS)
    assert flashes(client.get("/account").text) == [
        f"We mailed a link to {NEW_ADDRESS}: your address changes when you follow it. Until "
        f"then it stays {ADDRESS}."
    ]
    assert (row(api)["email"], row(api)["pending_email"]) == (ADDRESS, NEW_ADDRESS)
    assert f'<dd id="pending-email">{NEW_ADDRESS}</dd>' in client.get("/account").text
    mails = {mail.rcpt_tos[0]: mail.message for mail in mailbox.new_mail(2)}
    assert mails[ADDRESS]["Subject"] == "Your e-mail address is being changed"

    link = link_to(mails[NEW_ADDRESS], "/email/change/confirm")
    assert f"Press the button to make {NEW_ADDRESS} your account" in client.get(link).text
    assert row(api)["email"] == ADDRESS  # the page alone changes nothing
    assert press(client, link).location == "/account"
    assert flashes(client.get("/account").text) == [
        f"{NEW_ADDRESS} is now your account's e-mail address."
    ]
    assert (row(api)["email"], row(api)["pending_email"]) == (NEW_ADDRESS, None)


def test_a_pending_change_can_be_cancelled(
    client: FlaskClient, logged_in: AuthActions, api: ApiActions, mailbox: Mailbox
) -> None:
    press(client, "/account/email", email=NEW_ADDRESS)
    mails = {mail.rcpt_tos[0]: mail.message for mail in mailbox.new_mail(2)}
    page = client.get("/account/email").text
    assert '<form action="/account/email/cancel" method="post">' in page
    cancelled = client.post("/account/email/cancel", data={"csrf_token": csrf_token(page)})
    assert cancelled.location == "/account"
    assert flashes(client.get("/account").text) == [
        f"The change was cancelled: your address stays {ADDRESS}."
    ]
    assert (row(api)["email"], row(api)["pending_email"]) == (ADDRESS, None)
    assert press(client, link_to(mails[NEW_ADDRESS], "/email/change/confirm")).status_code == 400


@pytest.mark.parametrize(
    ("email", "status", "message"),
    [
        ("", 400, "Enter the new e-mail address."),
        ("no at sign", 422, "E-mail address is not valid"),
        ("taken@example.com", 409, "This e-mail address is already used by another account."),
    ],
)
def test_a_refused_address_keeps_the_form(
    app: Flask,
    client: FlaskClient,
    logged_in: AuthActions,
    api: ApiActions,
    email: str,
    status: int,
    message: str,
) -> None:
    with app.app_context():
        users.register_user("李四", PASSWORD, email="taken@example.com")
    response = press(client, "/account/email", email=email)
    assert response.status_code == status and message in response.text
    assert (row(api)["email"], row(api)["pending_email"]) == (ADDRESS, None)


def test_removing_the_address_tells_it_with_a_way_back(
    client: FlaskClient, logged_in: AuthActions, api: ApiActions, mailbox: Mailbox
) -> None:
    page = client.get("/account/email").text
    removed = client.post("/account/email/remove", data={"csrf_token": csrf_token(page)})
    assert removed.location == "/account"
    assert flashes(client.get("/account").text) == [
        "Your e-mail address was removed. A mail to it says how to undo this."
    ]
    assert row(api)["email"] is None
    mail = mailbox.only(ADDRESS)
    assert mail["Subject"] == "Your e-mail address was removed"

    undo = link_to(mail, "/email/change/undo")
    assert f"give your account back its address {ADDRESS}" in client.get(undo).text
    undone = press(client, undo)
    assert undone.location == "/login" and not is_logged_in(client)
    assert row(api)["email"] == ADDRESS and row(api)["email_verified_at"] is not None
    assert mailbox.only(ADDRESS)["Subject"] == "Reset your password"
