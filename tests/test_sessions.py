"""Sessions, cookies and security headers, as a browser and an API client see them."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from tests.helpers import (
    NEW_PASSWORD,
    PASSWORD,
    TEST_SECRET,
    AppBuilder,
    AuthActions,
    csrf_token,
    is_logged_in,
)
from userhub.extensions import db
from userhub.models import ApiToken, BrowserSession
from userhub.services.users import find_user
from userhub.web.security_headers import CONTENT_SECURITY_POLICY


def logged_in(app: Flask, username: str = "张三", password: str = PASSWORD) -> AuthActions:
    """A separate browser (its own cookie jar), logged in."""
    auth = AuthActions(app.test_client())
    assert auth.login(username, password).status_code == 302
    return auth


def issue_token(client: FlaskClient, password: str = PASSWORD) -> str:
    reply = client.post("/api/v1/tokens", json={"username": "张三", "password": password})
    assert reply.status_code == 201
    return str(reply.get_json()["token"])


def token_works(client: FlaskClient, token: str) -> bool:
    status = client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {token}"})
    assert status.status_code in {200, 401}
    return status.status_code == 200


def post_form(auth: AuthActions, path: str, page: str, **fields: str) -> Any:
    token = csrf_token(auth.client.get(page).get_data(as_text=True))
    return auth.client.post(path, data={"csrf_token": token, **fields})


def session_rows(app: Flask, username: str = "张三") -> list[int]:
    """The ids of the account's session rows, live or not (each log-in makes one)."""
    with app.app_context():
        user = find_user(username)
        assert user is not None
        query = sa.select(BrowserSession.id).where(BrowserSession.user_id == user.id)
        return list(db.session.scalars(query.order_by(BrowserSession.id)))


def token_rows(app: Flask) -> int:
    with app.app_context():
        return int(db.session.scalar(sa.select(sa.func.count()).select_from(ApiToken)) or 0)


@pytest.fixture
def two_browsers_and_a_token(app: Flask, auth: AuthActions) -> tuple[AuthActions, AuthActions, str]:
    auth.register()
    here, elsewhere = logged_in(app), logged_in(app)
    token = issue_token(app.test_client())
    assert (
        is_logged_in(here.client)
        and is_logged_in(elsewhere.client)
        and token_works(here.client, token)
    )
    return here, elsewhere, token


def test_a_new_session_at_log_in(app: Flask, auth: AuthActions) -> None:
    """Whatever a session held before log-in (e.g. planted by an attacker) does not carry over."""
    auth.register()
    with auth.client.session_transaction() as before:
        before["planted"] = "by someone else"
    auth.login()
    with auth.client.session_transaction() as after:
        assert "planted" not in after
        assert after.get("_user_id")


def test_log_out_ends_this_session_only(
    app: Flask, two_browsers_and_a_token: tuple[AuthActions, AuthActions, str]
) -> None:
    here, elsewhere, token = two_browsers_and_a_token
    here_row, elsewhere_row = session_rows(app)
    assert here.logout().status_code == 302
    assert not is_logged_in(here.client)
    assert is_logged_in(elsewhere.client) and token_works(here.client, token)
    assert session_rows(app) == [elsewhere_row], "its row is deleted, the other's stays"


def test_log_out_everywhere_ends_every_session_and_token(
    app: Flask, two_browsers_and_a_token: tuple[AuthActions, AuthActions, str]
) -> None:
    here, elsewhere, token = two_browsers_and_a_token
    other = AuthActions(app.test_client())
    other.register("李四")
    other.login("李四")

    reply = post_form(here, "/logout/everywhere", "/account")
    assert reply.status_code == 302
    assert session_rows(app) == [] and token_rows(app) == 0
    assert len(session_rows(app, "李四")) == 1
    assert not is_logged_in(here.client) and not is_logged_in(elsewhere.client)
    assert not token_works(here.client, token)
    assert is_logged_in(other.client), "another user's session must not end"
    assert logged_in(app)  # the password still works


def test_log_out_everywhere_needs_the_csrf_token(
    two_browsers_and_a_token: tuple[AuthActions, AuthActions, str],
) -> None:
    here, elsewhere, _ = two_browsers_and_a_token
    assert here.client.post("/logout/everywhere").status_code == 400
    assert is_logged_in(here.client) and is_logged_in(elsewhere.client)


def test_changing_the_password_ends_the_other_sessions_and_tokens(
    app: Flask, two_browsers_and_a_token: tuple[AuthActions, AuthActions, str]
) -> None:
    here, elsewhere, token = two_browsers_and_a_token
    before = session_rows(app)
    reply = post_form(
        here,
        "/account/password",
        "/account/password",
        current_password=PASSWORD,
        password=NEW_PASSWORD,
        confirm=NEW_PASSWORD,
    )
    assert reply.status_code == 302 and reply.headers["Location"] == "/account"
    # Every row went, this browser's too: it carries on in a new session, with a new key.
    [new_row] = session_rows(app)
    assert new_row not in before and token_rows(app) == 0
    assert "Password changed" in here.client.get("/account").get_data(as_text=True)
    assert is_logged_in(here.client), "the browser that changed it stays logged in"
    assert not is_logged_in(elsewhere.client)
    assert not token_works(here.client, token)
    assert AuthActions(app.test_client()).login(password=PASSWORD).status_code == 200  # refused
    assert logged_in(app, password=NEW_PASSWORD)


@pytest.mark.parametrize(
    ("fields", "status", "message"),
    [
        (
            {"current_password": "not my password", "password": NEW_PASSWORD},
            422,
            "Current password is missing or wrong",
        ),
        ({"current_password": PASSWORD, "password": "short"}, 422, "at least 8 characters"),
        ({"current_password": PASSWORD, "password": ""}, 400, "Choose a new password."),
    ],
)
def test_a_refused_password_change_changes_nothing(
    app: Flask,
    two_browsers_and_a_token: tuple[AuthActions, AuthActions, str],
    fields: dict[str, str],
    status: int,
    message: str,
) -> None:
    here, elsewhere, token = two_browsers_and_a_token
    reply = post_form(
        here, "/account/password", "/account/password", confirm=fields["password"], **fields
    )
    assert reply.status_code == status
    assert message in reply.get_data(as_text=True)
    assert (
        is_logged_in(here.client)
        and is_logged_in(elsewhere.client)
        and token_works(here.client, token)
    )
    assert logged_in(app)  # the old password still works


def test_the_password_page_needs_a_log_in(client: FlaskClient) -> None:
    reply = client.get("/account/password")
    assert reply.status_code == 302 and reply.headers["Location"].startswith("/login")


# --- cookies -------------------------------------------------------------------------------


LOG_IN_COOKIES = ("session", "userhub_device")  # the session, and the device cookie


def log_in_cookie_headers(app: Flask) -> dict[str, str]:
    """The Set-Cookie headers of a log-in, by cookie name: exactly one of each."""
    auth = AuthActions(app.test_client())
    auth.register()
    reply = auth.login()
    cookies = {v.partition("=")[0]: v for v in reply.headers.getlist("Set-Cookie")}
    assert sorted(cookies) == sorted(LOG_IN_COOKIES)
    assert len(reply.headers.getlist("Set-Cookie")) == len(LOG_IN_COOKIES)
    return cookies


def test_development_cookies_are_httponly_and_lax(app: Flask) -> None:
    for cookie in log_in_cookie_headers(app).values():
        assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
        assert "Secure" not in cookie  # plain http on 127.0.0.1 must work in development


def test_production_cookies_are_also_secure(
    build_app: AppBuilder, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("USERHUB_ENV", "production")
    monkeypatch.setenv("USERHUB_SECRET_KEY", TEST_SECRET)
    monkeypatch.setenv("USERHUB_ALLOWED_HOSTS", "localhost")  # the test client's host
    app = build_app(database_url)
    for cookie in log_in_cookie_headers(app).values():
        assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert app.test_client().get("/").headers["Strict-Transport-Security"] == "max-age=31536000"


# --- headers on every response -------------------------------------------------------------

SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/", 200),
        ("GET", "/test_get?user_name=张三", 200),
        ("GET", "/response_json", 200),
        ("GET", "/docs", 200),
        ("GET", "/openapi.json", 200),
        ("GET", "/static/hello-flask.gif", 200),
        ("GET", "/api/v1/users/me", 401),
        ("GET", "/no/such/page", 404),
        ("DELETE", "/", 405),
        ("POST", "/get_json", 400),
    ],
)
def test_security_headers_on_every_response(
    client: FlaskClient, method: str, path: str, status: int
) -> None:
    with client.open(path, method=method) as reply:
        assert reply.status_code == status
        for name, value in SECURITY_HEADERS.items():
            assert reply.headers.get(name) == value, name
        assert "Strict-Transport-Security" not in reply.headers  # development: plain http


def test_the_policy_forbids_inline_script_and_framing() -> None:
    directives = dict(part.split(" ", 1) for part in CONTENT_SECURITY_POLICY.split("; "))
    assert directives["script-src"] == "'self'"
    assert "unsafe" not in CONTENT_SECURITY_POLICY
    assert directives["frame-ancestors"] == "'none'"
    assert directives["object-src"] == "'none'"


def test_security_headers_on_an_unexpected_error(app: Flask) -> None:
    @app.get("/boom")
    def boom() -> str:
        raise RuntimeError("boom")

    reply = app.test_client().get("/boom")
    assert reply.status_code == 500
    assert reply.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
