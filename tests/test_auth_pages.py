"""Accounts in the browser: register, log in, log out, account page, CSRF, safe redirects."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from tests.helpers import PASSWORD, AuthActions, is_logged_in
from userhub.extensions import db
from userhub.models import BrowserSession
from userhub.services.users import find_user


def test_register_then_log_in(app: Flask, client: FlaskClient, auth: AuthActions) -> None:
    response = auth.register("新用户")
    assert response.status_code == 302
    assert response.headers["Location"] == "/login"
    assert "Account created" in client.get("/login").get_data(as_text=True)
    with app.app_context():
        user = find_user("新用户")
        assert user is not None and not user.is_admin
    assert auth.login("新用户").status_code == 302


def test_register_page_has_labelled_fields_and_a_token(client: FlaskClient) -> None:
    html = client.get("/register").get_data(as_text=True)
    for field in ("username", "password", "confirm"):
        assert f'<label for="{field}">' in html
    assert 'name="csrf_token"' in html


def test_register_refuses_a_taken_name_with_409(auth: AuthActions) -> None:
    auth.register("zhangsan")
    response = auth.register("ZhangSan")
    assert response.status_code == 409
    assert "Username already exists." in response.get_data(as_text=True)


@pytest.mark.parametrize(
    ("username", "password", "confirm", "message"),
    [
        ("zhangsan", "short", "short", "Password must be at least 8 characters."),
        ("zhang:san", PASSWORD, PASSWORD, "must not contain &#34;:&#34;"),
        (" zhangsan", PASSWORD, PASSWORD, "must not start or end with spaces"),
        ("zhangsan", PASSWORD, PASSWORD + "x", "The two passwords differ."),
    ],
)
def test_register_explains_what_to_fix(
    app: Flask, auth: AuthActions, username: str, password: str, confirm: str, message: str
) -> None:
    response = auth.client.post(
        "/register",
        data={
            "username": username,
            "password": password,
            "confirm": confirm,
            "csrf_token": auth.token("/register"),
        },
    )
    assert response.status_code in {400, 422}
    assert message in response.get_data(as_text=True)
    with app.app_context():
        assert find_user(username) is None


def focused_fields(html: str) -> list[str]:
    return re.findall(r'<input[^>]* autofocus[ =>][^>]*name="([^"]+)"', html)


def test_the_login_form_focuses_one_field(client: FlaskClient, auth: AuthActions) -> None:
    """The username on a fresh form, never two fields at once (``autofocus="None"`` made the
    password field focused too)."""
    assert focused_fields(client.get("/login").get_data(as_text=True)) == ["username"]
    auth.register()
    again = auth.login(password="wrong password").get_data(as_text=True)
    assert len(focused_fields(again)) <= 1 and 'autofocus="None"' not in again


def test_wrong_password_never_logs_in(client: FlaskClient, auth: AuthActions) -> None:
    auth.register()
    response = auth.login(password="wrong password")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "Invalid username or password." in html
    assert 'href="/register"' in html
    assert client.get("/success").status_code == 302


def test_unknown_user_gets_the_same_answer_as_a_wrong_password(auth: AuthActions) -> None:
    auth.register()
    wrong = auth.login(password="wrong password")
    unknown = auth.login(username="nobody")
    assert wrong.status_code == unknown.status_code == 200
    assert "Invalid username or password." in unknown.get_data(as_text=True)


def test_the_typed_password_is_never_sent_back(auth: AuthActions) -> None:
    auth.register()
    response = auth.login(password="my-secret-attempt")
    assert "my-secret-attempt" not in response.get_data(as_text=True)


def test_form_post_without_csrf_token_is_refused(client: FlaskClient, auth: AuthActions) -> None:
    auth.register()
    response = client.post("/test_post", data={"username": "张三", "password": PASSWORD})
    assert response.status_code == 400
    assert "security token" in response.get_data(as_text=True)
    assert client.get("/success").status_code == 302


def test_form_post_with_a_forged_csrf_token_is_refused(
    client: FlaskClient, auth: AuthActions
) -> None:
    auth.register()
    response = client.post(
        "/test_post", data={"username": "张三", "password": PASSWORD, "csrf_token": "forged"}
    )
    assert response.status_code == 400


def test_log_in_starts_a_new_session(client: FlaskClient, auth: AuthActions) -> None:
    auth.register()
    with client.session_transaction() as session:
        session["planted"] = "by an attacker"
    auth.login()
    with client.session_transaction() as session:
        assert "planted" not in session


def test_logout_is_a_post_that_ends_the_session(client: FlaskClient, auth: AuthActions) -> None:
    auth.register()
    auth.login()
    assert client.get("/logout").status_code == 405
    assert client.get("/success").status_code == 200
    response = auth.logout()
    assert response.status_code == 302
    assert client.get("/success").status_code == 302


def test_logout_needs_the_csrf_token(client: FlaskClient, auth: AuthActions) -> None:
    auth.register()
    auth.login()
    assert client.post("/logout").status_code == 400
    assert client.get("/success").status_code == 200


def test_success_and_account_pages_have_a_logout_button(
    client: FlaskClient, auth: AuthActions
) -> None:
    auth.register()
    auth.login()
    for path in ("/success", "/account"):
        html = client.get(path).get_data(as_text=True)
        assert '<form action="/logout" method="post"' in html


def test_account_page_shows_the_user(client: FlaskClient, auth: AuthActions) -> None:
    assert client.get("/account").status_code == 302
    auth.register("<b>bold</b>")
    auth.login("<b>bold</b>")
    html = client.get("/account").get_data(as_text=True)
    assert "&lt;b&gt;bold&lt;/b&gt;" in html
    assert "<b>bold</b>" not in html


def test_a_browser_whose_session_row_is_deleted_is_logged_out(
    app: Flask, client: FlaskClient, auth: AuthActions
) -> None:
    """The cookie is only a key: deleting its row (here, as another node or an admin would)
    ends the session, and the same cookie, sent again, logs nobody in."""
    auth.register()
    auth.login()
    other = AuthActions(app.test_client())
    other.login()
    cookie = client.get_cookie("session")
    assert cookie is not None
    with app.app_context():
        ids = db.session.scalars(sa.select(BrowserSession.id).order_by(BrowserSession.id)).all()
        assert len(ids) == 2
        db.session.execute(sa.delete(BrowserSession).where(BrowserSession.id == ids[0]))
        db.session.commit()
    response = client.get("/success")
    assert response.status_code == 302 and response.location.startswith("/login")
    replay = app.test_client()
    replay.set_cookie("session", cookie.value)
    assert not is_logged_in(replay)
    assert is_logged_in(other.client), "the account's other session goes on"


@pytest.mark.parametrize("target", ["/account", "/success?x=1"])
def test_login_follows_a_local_next(auth: AuthActions, target: str) -> None:
    auth.register()
    response = auth.login(next=target)
    assert response.headers["Location"] == target


@pytest.mark.parametrize(
    "target", ["https://evil.example/", "//evil.example/", "/\\evil.example", "javascript:x"]
)
def test_login_ignores_a_foreign_next(auth: AuthActions, target: str) -> None:
    auth.register()
    response = auth.login(next=target)
    assert response.headers["Location"].startswith("/success")


def test_login_page_carries_next_from_the_redirect(client: FlaskClient) -> None:
    login_url = client.get("/account").headers["Location"]
    assert 'value="/account"' in client.get(login_url).get_data(as_text=True)
