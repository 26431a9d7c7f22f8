"""``Cache-Control: no-store`` on what carries account data (issue 16, finding 6), and not on the
tutorial's public routes, which keep their caching (``web/security_headers.py``)."""

from __future__ import annotations

import pytest
from flask import Flask, Response
from flask.testing import FlaskClient
from flask_login import current_user
from werkzeug.wrappers import Response as AnyResponse

from tests.helpers import PASSWORD, Account, AuthActions, bearer

NO_STORE = "no-store"
TOKENS = "/api/v1/tokens"


def cache_control(response: AnyResponse) -> str | None:
    return response.headers.get("Cache-Control")


@pytest.fixture
def browser(auth: AuthActions) -> FlaskClient:
    """A browser logged in as 张三."""
    auth.register()
    assert auth.login().status_code == 302
    return auth.client


@pytest.mark.parametrize(
    "path", ["/account", "/account/password", "/success", "/", "/api/v1/users/me"]
)
def test_what_a_logged_in_browser_is_shown_is_not_stored(browser: FlaskClient, path: str) -> None:
    response = browser.get(path)
    assert response.status_code == 200
    assert cache_control(response) == NO_STORE


def test_an_api_answer_to_a_token_is_not_stored(client: FlaskClient, member: Account) -> None:
    assert cache_control(client.get("/api/v1/users/me", headers=member.headers)) == NO_STORE
    # An error made for that user too: it was answered knowing who asked.
    missing = client.get("/api/v1/users/999999", headers=member.headers)
    assert missing.status_code in {403, 404} and cache_control(missing) == NO_STORE


def test_the_token_and_its_replay_are_not_stored(client: FlaskClient, member: Account) -> None:
    headers = {"Idempotency-Key": "cache-control-1"}
    body = {"username": "member", "password": PASSWORD}
    issued = client.post(TOKENS, json=body, headers=headers)
    replayed = client.post(TOKENS, json=body, headers=headers)
    assert issued.status_code == replayed.status_code == 201
    assert replayed.headers.get("Idempotent-Replayed") == "true"
    assert cache_control(issued) == cache_control(replayed) == NO_STORE
    assert issued.get_json()["token"] == replayed.get_json()["token"]


def test_answers_that_set_or_clear_the_session_are_not_stored(
    client: FlaskClient, auth: AuthActions
) -> None:
    first = client.get("/login")  # the first form: a session cookie for its CSRF token
    assert "Set-Cookie" in first.headers and cache_control(first) == NO_STORE
    auth.register()
    logged_in = auth.login()
    assert logged_in.status_code == 302 and "Set-Cookie" in logged_in.headers
    assert cache_control(logged_in) == NO_STORE
    logged_out = auth.logout()
    assert logged_out.status_code == 302 and cache_control(logged_out) == NO_STORE


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/response_json", None),
        ("/test_get?user_name=张三", None),
        ("/static/hello-flask.gif", "no-cache"),  # Flask's own for a static file: revalidate
    ],
)
def test_public_routes_keep_their_caching_even_for_a_logged_in_browser(
    browser: FlaskClient, path: str, expected: str | None
) -> None:
    with browser.get(path) as response:  # a file's response holds the file open
        assert response.status_code == 200
        assert cache_control(response) == expected


def test_the_home_page_of_a_visitor_keeps_its_caching(client: FlaskClient) -> None:
    assert cache_control(client.get("/")) is None


def test_a_view_that_chooses_its_caching_keeps_it(app: Flask, auth: AuthActions) -> None:
    @app.get("/own-caching")
    def own_caching() -> Response:
        return Response(current_user.username, headers={"Cache-Control": "private, max-age=60"})

    auth.register()
    auth.login()
    response = auth.client.get("/own-caching")
    assert response.get_data(as_text=True) == "张三"
    assert cache_control(response) == "private, max-age=60"


def test_a_bearer_call_that_loads_no_user_is_not_marked(
    client: FlaskClient, member: Account
) -> None:
    """The token is looked at only by routes that ask who is calling."""
    assert cache_control(client.get("/response_json", headers=bearer(member.token))) is None
