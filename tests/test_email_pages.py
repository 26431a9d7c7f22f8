"""Account e-mail in the browser's pages (the Flask test client): the address at registration and
on the account page, the pages mailed links open, the forgotten password, and the log-in form
when an unverified address refuses it. Links are read from the mail the app queued in its
outbox, as the sender will send it."""

from __future__ import annotations

import re
from datetime import timedelta
from html import unescape

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from tests.helpers import (
    NEW_PASSWORD,
    PASSWORD,
    ApiActions,
    AppBuilder,
    AuthActions,
    csrf_token,
    is_logged_in,
    local_path,
    mailed_link,
    queued_mail,
)
from userhub.extensions import db
from userhub.models import EmailLink, utcnow
from userhub.services import users

ADDRESS = "zhangsan@example.com"


def flashes(html: str) -> list[str]:
    """The flash messages on a page, as read."""
    return [unescape(m) for m in re.findall(r'<p class="flash[^"]*" role="status">(.*?)</p>', html)]


def main_of(html: str) -> str:
    """The page's own content, without the layout (whose forms carry a fresh CSRF token)."""
    return html[html.index("<main") : html.index("</main>")]


def press(client: FlaskClient, path: str, **fields: str) -> TestResponse:
    """Post the form of the page at ``path`` (with its CSRF token), as its button does."""
    return client.post(path, data={**fields, "csrf_token": csrf_token(client.get(path).text)})


def link_in_last_mail(app: Flask, to: str, path: str) -> str:
    return local_path(mailed_link(queued_mail(app, to)[-1], path))


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
    app: Flask, client: FlaskClient, auth: AuthActions, api: ApiActions
) -> None:
    response = auth.register(email="ZhangSan@Example.com")
    assert response.status_code == 302 and response.location == "/login"
    assert flashes(client.get("/login").text) == [
        "Account created. Log in with your new username and password. We mailed a link to "
        f"{ADDRESS}: follow it to confirm the address."
    ]
    assert row(api)["email"] == ADDRESS and row(api)["email_verified_at"] is None
    (mail,) = queued_mail(app)
    assert mail["To"] == ADDRESS and mail["Subject"] == "Confirm your e-mail address"
    assert mailed_link(mail, "/email/verify").startswith("http://127.0.0.1:")


def test_registering_without_an_address_mails_nothing(
    app: Flask, auth: AuthActions, api: ApiActions
) -> None:
    assert auth.register().status_code == 302
    assert row(api)["email"] is None and queued_mail(app) == []


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
    assert [r["username"] for r in api.rows("user")] == ["李四"]


def test_a_broken_rule_with_no_address_is_422_not_400(auth: AuthActions) -> None:
    """The optional address left empty is not a missing field."""
    assert auth.register(password="short").status_code == 422


# --- A link's page uses it only on its button -------------------------------------------------


def test_the_verify_link_confirms_only_when_its_button_is_pressed(
    app: Flask, client: FlaskClient, auth: AuthActions, api: ApiActions
) -> None:
    auth.register(email=ADDRESS)
    link = link_in_last_mail(app, ADDRESS, "/email/verify")

    page = client.get(link)
    assert page.status_code == 200
    assert f"Press the button to confirm {ADDRESS} as your account" in page.text
    assert re.search(
        rf'<form method="post" action="{re.escape(link)}">', page.text.replace("&amp;", "&")
    )
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
    ["/email/verify", "/password/reset", "/email/change/confirm", "/email/change/undo", "/unlock"],
)
@pytest.mark.parametrize("token", ["", "not-a-token", "x" * 500])
def test_a_wrong_token_shows_the_link_error_page(
    client: FlaskClient, path: str, token: str
) -> None:
    response = client.get(f"{path}?token={token}")
    assert response.status_code == 400
    assert "<h1>This link cannot be used</h1>" in response.text
    assert "This link is not valid" in response.text
    assert 'role="alert"' in response.text


def test_a_used_link_shows_the_error_page_with_the_way_to_a_new_one(
    app: Flask, client: FlaskClient, auth: AuthActions
) -> None:
    auth.register(email=ADDRESS)
    link = link_in_last_mail(app, ADDRESS, "/email/verify")
    token = csrf_token(client.get(link).text)
    assert client.post(link, data={"csrf_token": token}).status_code == 302
    again = client.post(link, data={"csrf_token": token})
    assert again.status_code == 400 and "This link is not valid" in again.text
    assert 'href="/account">account page</a> sends a new link' in again.text


def test_an_expired_link_says_so(app: Flask, client: FlaskClient, auth: AuthActions) -> None:
    auth.register(email=ADDRESS)
    request_reset(client, "张三")
    link = link_in_last_mail(app, ADDRESS, "/password/reset")
    with app.app_context():
        db.session.execute(sa.update(EmailLink).values(expires_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()
    for response in (client.get(link), press_reset(client, link, NEW_PASSWORD)):
        assert response.status_code == 400
        assert "This link has expired. Ask for a new one." in response.text
        assert (
            '<a href="/password/forgot">Ask for a link to reset your password</a>' in response.text
        )


# --- Forgotten password ------------------------------------------------------------------------


def request_reset(client: FlaskClient, account: str) -> TestResponse:
    return press(client, "/password/forgot", account=account)


def press_reset(client: FlaskClient, link: str, password: str, confirm: str = "") -> TestResponse:
    return client.post(
        link,
        data={
            "password": password,
            "confirm": confirm or password,
            "csrf_token": csrf_token(client.get("/password/forgot").text),
        },
    )


def test_the_login_page_links_to_the_forgotten_password(client: FlaskClient) -> None:
    html = client.get("/login").text
    assert '<a href="/password/forgot">Forgot your password?</a>' in html
    forgot = client.get("/password/forgot")
    assert forgot.status_code == 200 and "<h1>Forgot your password?</h1>" in forgot.text


def test_the_answer_is_the_same_whoever_is_named(
    app: Flask, client: FlaskClient, auth: AuthActions
) -> None:
    auth.register(email=ADDRESS)
    auth.register("没有地址")
    answers = {
        name: request_reset(client, name)
        for name in ("张三", ADDRESS, "没有地址", "nobody", "nobody@example.com")
    }
    assert {response.status_code for response in answers.values()} == {200}
    assert len({main_of(response.text) for response in answers.values()}) == 1
    assert "<h1>Check your mail</h1>" in answers["nobody"].text
    assert [mail["Subject"] for mail in queued_mail(app, ADDRESS)] == [
        "Confirm your e-mail address",
        "Reset your password",
        "Reset your password",
    ]
    assert {mail["To"] for mail in queued_mail(app)} == {ADDRESS}


def test_the_forgot_form_needs_its_token_and_a_name(client: FlaskClient) -> None:
    assert client.post("/password/forgot", data={"account": "张三"}).status_code == 400
    empty = request_reset(client, "  ")
    assert empty.status_code == 400 and "Enter your e-mail address or username." in empty.text


def test_reset_sets_a_new_password_once(
    app: Flask, client: FlaskClient, auth: AuthActions, api: ApiActions
) -> None:
    auth.register(email=ADDRESS)
    request_reset(client, ADDRESS)
    link = link_in_last_mail(app, ADDRESS, "/password/reset")
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
    assert queued_mail(app, ADDRESS)[-1]["Subject"] == "Your password was changed"
    used = press_reset(client, link, "yet another password")
    assert used.status_code == 400 and "This link is not valid" in used.text


# --- Log-in refused for an unverified address --------------------------------------------------


@pytest.fixture
def strict_app(build_app: AppBuilder, database_url: str) -> Flask:
    """An app that refuses log-in to an account whose address is not verified yet."""
    return build_app(database_url, USERHUB_REQUIRE_VERIFIED_EMAIL=True)


@pytest.mark.parametrize("path", ["/test_post", "/test_request"])
def test_an_unverified_address_refuses_log_in_with_a_button_for_a_new_link(
    strict_app: Flask, path: str
) -> None:
    auth = AuthActions(strict_app.test_client())
    auth.register(email=ADDRESS)
    refused = auth.login(path=path)
    assert refused.status_code == 403
    assert "Confirm your e-mail address first" in refused.text
    resend = re.search(
        r'<form action="/email/verification/resend" method="post">(.*?)</form>', refused.text, re.S
    )
    assert resend is not None and 'name="username" type="hidden" value="张三"' in resend[1]
    assert ">Send a new link</button>" in resend[1]
    assert not is_logged_in(auth.client)

    wrong = auth.login(password="wrong password", path=path)
    assert wrong.status_code == 200 and "Invalid username or password." in wrong.text
    assert "/email/verification/resend" not in wrong.text  # nothing told without the password


def test_send_a_new_link_answers_the_same_whoever_is_named(strict_app: Flask) -> None:
    client = strict_app.test_client()
    auth = AuthActions(client)
    auth.register(email=ADDRESS)
    auth.register("没有地址")
    answers = {
        name: client.post(
            "/email/verification/resend", data={"username": name, "csrf_token": auth.token()}
        )
        for name in ("张三", "没有地址", "nobody", "")
    }
    assert {response.status_code for response in answers.values()} == {200}
    assert len({main_of(response.text) for response in answers.values()}) == 1
    assert "a new link is on its way" in answers["nobody"].text
    subjects = [mail["Subject"] for mail in queued_mail(strict_app)]
    assert subjects == ["Confirm your e-mail address"] * 2  # at registration, and the one asked for

    link = link_in_last_mail(strict_app, ADDRESS, "/email/verify")
    press(client, link)
    assert auth.login().status_code == 302  # verified: the log-in goes through
    client.post("/email/verification/resend", data={"username": "张三", "csrf_token": auth.token()})
    assert len(queued_mail(strict_app)) == 2  # verified already: nothing more is sent


def test_send_a_new_link_needs_the_csrf_token(strict_app: Flask) -> None:
    client = strict_app.test_client()
    AuthActions(client).register(email=ADDRESS)
    refused = client.post("/email/verification/resend", data={"username": "张三"})
    assert refused.status_code == 400
    assert len(queued_mail(strict_app)) == 1


def test_the_mail_limits_apply_to_send_a_new_link(build_app: AppBuilder, database_url: str) -> None:
    """Per client IP (the route's limit), and per address: past it the answer is the same and
    no mail goes."""
    app = build_app(
        database_url,
        USERHUB_REQUIRE_VERIFIED_EMAIL=True,
        RATELIMIT_ENABLED=True,
        RATELIMIT_STORAGE_URI="memory://",
        USERHUB_RATELIMIT_MAIL="3 per minute",
        USERHUB_RATELIMIT_MAIL_ADDRESS="2 per hour",
    )
    client = app.test_client()
    auth = AuthActions(client)
    auth.register(email=ADDRESS)
    answers = [
        client.post(
            "/email/verification/resend", data={"username": "张三", "csrf_token": auth.token()}
        )
        for _ in range(4)
    ]
    assert [response.status_code for response in answers] == [200, 200, 200, 429]
    # At registration, then two of the three asked for: the third was over the address's limit.
    assert len(queued_mail(app)) == 3


# --- The account page and the address ----------------------------------------------------------


@pytest.fixture
def logged_in(app: Flask, auth: AuthActions) -> AuthActions:
    """张三, with an address not yet confirmed, logged in."""
    auth.register(email=ADDRESS)
    auth.login()
    return auth


def test_the_account_page_shows_the_address_and_a_button_for_a_new_link(
    app: Flask, client: FlaskClient, logged_in: AuthActions
) -> None:
    html = client.get("/account").text
    assert f"{ADDRESS}" in html and '<span class="tag tag-warn">not confirmed yet</span>' in html
    assert '<form action="/email/verification/send" method="post">' in html
    assert '<a class="button" href="/account/email">Change e-mail address</a>' in html

    sent = client.post("/email/verification/send", data={"csrf_token": logged_in.token("/account")})
    assert sent.status_code == 302 and sent.location == "/account"
    assert len(queued_mail(app, ADDRESS)) == 2
    press(client, link_in_last_mail(app, ADDRESS, "/email/verify"))
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
    for path in ("/account/email/remove", "/account/email/cancel", "/email/verification/send"):
        assert (
            client.post(
                path, data={"csrf_token": csrf_token(client.get("/login").text)}
            ).status_code
            == 302
        )


def test_a_first_address_is_the_accounts_at_once_and_mailed_a_link(
    app: Flask, client: FlaskClient, auth: AuthActions, api: ApiActions
) -> None:
    auth.register()
    auth.login()
    done = press(client, "/account/email", email=ADDRESS)
    assert done.status_code == 302 and done.location == "/account"
    assert flashes(client.get("/account").text) == [
        f"We mailed a link to {ADDRESS}: follow it to confirm the address."
    ]
    assert row(api)["email"] == ADDRESS and row(api)["email_verified_at"] is None
    assert [mail["Subject"] for mail in queued_mail(app)] == ["Confirm your e-mail address"]


def test_a_new_address_waits_for_its_link_and_the_old_one_is_told(
    app: Flask, client: FlaskClient, logged_in: AuthActions, api: ApiActions
) -> None:
    new = "new@example.com"
    assert client.post("/account/email", data={"email": new}).status_code == 400  # no token
    press(client, "/account/email", email=new)
    assert flashes(client.get("/account").text) == [
        f"We mailed a link to {new}: your address changes when you follow it. Until then it "
        f"stays {ADDRESS}."
    ]
    assert (row(api)["email"], row(api)["pending_email"]) == (ADDRESS, new)
    assert '<dd id="pending-email">new@example.com</dd>' in client.get("/account").text
    assert queued_mail(app, ADDRESS)[-1]["Subject"] == "Your e-mail address is being changed"

    link = link_in_last_mail(app, new, "/email/change/confirm")
    assert f"Press the button to make {new} your account" in client.get(link).text
    assert row(api)["email"] == ADDRESS  # the page alone changes nothing
    confirmed = press(client, link)
    assert confirmed.location == "/account"
    assert flashes(client.get("/account").text) == [f"{new} is now your account's e-mail address."]
    assert (row(api)["email"], row(api)["pending_email"]) == (new, None)


def test_a_pending_change_can_be_cancelled(
    app: Flask, client: FlaskClient, logged_in: AuthActions, api: ApiActions
) -> None:
    press(client, "/account/email", email="new@example.com")
    link = link_in_last_mail(app, "new@example.com", "/email/change/confirm")
    cancelled = client.post(
        "/account/email/cancel", data={"csrf_token": logged_in.token("/account/email")}
    )
    assert cancelled.location == "/account"
    assert flashes(client.get("/account").text) == [
        f"The change was cancelled: your address stays {ADDRESS}."
    ]
    assert (row(api)["email"], row(api)["pending_email"]) == (ADDRESS, None)
    assert press(client, link).status_code == 400  # its link is dead


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
    app: Flask, client: FlaskClient, logged_in: AuthActions, api: ApiActions
) -> None:
    press(client, "/account/email", email="new@example.com")
    removed = client.post(
        "/account/email/remove", data={"csrf_token": logged_in.token("/account/email")}
    )
    assert removed.location == "/account"
    assert flashes(client.get("/account").text) == [
        "Your e-mail address was removed. A mail to it says how to undo this."
    ]
    assert (row(api)["email"], row(api)["pending_email"]) == (None, None)
    mail = queued_mail(app, ADDRESS)[-1]
    assert mail["Subject"] == "Your e-mail address was removed"

    undo = local_path(mailed_link(mail, "/email/change/undo"))
    assert f"give your account back its address {ADDRESS}" in client.get(undo).text
    undone = press(client, undo)
    assert undone.location == "/login" and not is_logged_in(client)
    assert row(api)["email"] == ADDRESS and row(api)["email_verified_at"] is not None
    assert queued_mail(app, ADDRESS)[-1]["Subject"] == "Reset your password"
