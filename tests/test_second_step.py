"""A log-in in two steps, re-authentication, and the admin's side of second factors, through
the API and the pages, on SQLite and MySQL. TOTP codes are computed here from the secret the
enrolment shows, at times set with time_machine."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pyotp
import pytest
import time_machine
from flask import Flask
from flask.testing import FlaskClient

from tests.helpers import (
    PASSWORD,
    Account,
    ApiActions,
    AuthActions,
    assert_problem,
    bearer,
    csrf_token,
    is_logged_in,
)

TOKENS = "/api/v1/tokens"
START = datetime(2026, 12, 7, 9, 0, 0, tzinfo=UTC)
STEP = timedelta(seconds=30)


@pytest.fixture
def clock() -> Iterator[time_machine.Traveller]:
    """Time stands still at START unless a test moves it (a new TOTP step every 30 s)."""
    with time_machine.travel(START, tick=False) as traveller:
        yield traveller


def code_now(secret: str) -> str:
    return pyotp.TOTP(secret).now()


def enrol(client: FlaskClient, account: Account) -> tuple[str, list[str]]:
    """Add an authenticator app to ``account``: its secret, and the recovery codes."""
    started = client.post("/api/v1/users/me/totp", headers=account.headers)
    assert started.status_code == 201, started.get_data(as_text=True)
    secret: str = started.get_json()["secret"]
    confirmed = client.post(
        "/api/v1/users/me/totp/confirm", json={"code": code_now(secret)}, headers=account.headers
    )
    assert confirmed.status_code == 200, confirmed.get_data(as_text=True)
    codes: list[str] = confirmed.get_json()["recovery_codes"]
    return secret, codes


@pytest.fixture
def enrolled(
    api: ApiActions, client: FlaskClient, clock: time_machine.Traveller
) -> tuple[Account, str, list[str]]:
    """张三, with an authenticator app; the clock then moves to the next 30-second step (the
    code of the enrolment's step is spent)."""
    account = api.account("张三")
    secret, codes = enrol(client, account)
    clock.shift(STEP)
    return account, secret, codes


def password_step(client: FlaskClient, username: str = "张三") -> dict[str, Any]:
    """The first call of an API log-in: the ``mfa-required`` problem."""
    response = client.post(TOKENS, json={"username": username, "password": PASSWORD})
    return assert_problem(response, 401) | {"status_code": response.status_code}


def test_an_api_log_in_needs_the_code_after_the_password(
    client: FlaskClient, enrolled: tuple[Account, str, list[str]], api: ApiActions
) -> None:
    _, secret, _ = enrolled
    tokens_before = api.count("api_token")
    problem = password_step(client)
    assert problem["type"].endswith("/problems/mfa-required")
    assert problem["methods"] == ["totp", "recovery-code"]
    assert problem["expires_in"] == 300
    assert api.count("api_token") == tokens_before  # nothing issued yet

    answer = client.post(TOKENS, json={"challenge": problem["challenge"], "otp": code_now(secret)})
    assert answer.status_code == 201, answer.get_data(as_text=True)
    assert answer.headers["Cache-Control"] == "no-store"
    me = client.get("/api/v1/users/me", headers=bearer(answer.get_json()["token"]))
    assert me.status_code == 200 and me.get_json()["username"] == "张三"
    [event] = [e for e in api.rows("security_event") if e["type"] == "logged-in"][-1:]
    assert "password+totp" in event["details"]

    # The challenge is spent: sending it again gets nothing.
    again = client.post(TOKENS, json={"challenge": problem["challenge"], "otp": code_now(secret)})
    assert assert_problem(again, 401)["type"].endswith("/problems/invalid-challenge")


def test_a_replayed_code_is_refused_even_with_a_new_challenge(
    client: FlaskClient, enrolled: tuple[Account, str, list[str]]
) -> None:
    _, secret, _ = enrolled
    code = code_now(secret)
    first = password_step(client)
    assert (
        client.post(TOKENS, json={"challenge": first["challenge"], "otp": code}).status_code == 201
    )
    second = password_step(client)
    replay = client.post(TOKENS, json={"challenge": second["challenge"], "otp": code})
    problem = assert_problem(replay, 401)
    assert problem["type"].endswith("/problems/mfa-required")  # try again, same challenge
    assert problem["challenge"] == second["challenge"]


def test_wrong_codes_count_and_end_the_challenge(
    client: FlaskClient, enrolled: tuple[Account, str, list[str]], api: ApiActions
) -> None:
    _, secret, _ = enrolled
    problem = password_step(client)
    right = code_now(secret)
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    for _ in range(4):
        answer = client.post(TOKENS, json={"challenge": problem["challenge"], "otp": wrong})
        assert assert_problem(answer, 401)["type"].endswith("/problems/mfa-required")
    fifth = client.post(TOKENS, json={"challenge": problem["challenge"], "otp": wrong})
    assert assert_problem(fifth, 401)["type"].endswith("/problems/invalid-challenge")
    # Dead now, even with the right code; each wrong one is in the log.
    late = client.post(TOKENS, json={"challenge": problem["challenge"], "otp": right})
    assert assert_problem(late, 401)["type"].endswith("/problems/invalid-challenge")
    failures = [e for e in api.rows("security_event") if e["type"] == "second-factor-failed"]
    assert len(failures) == 5


def test_wrong_codes_count_toward_the_account_limit(
    build_app: Any, database_url: str, clock: time_machine.Traveller
) -> None:
    """The second step shares the account's budget of failures with the password."""
    app = build_app(
        database_url, RATELIMIT_ENABLED=True, USERHUB_RATELIMIT_ACCOUNT="3 per 10 minutes"
    )
    client = app.test_client()
    account = ApiActions(app, client).account("张三")
    secret, _ = enrol(client, account)
    clock.shift(STEP)
    wrong = f"{(int(code_now(secret)) + 1) % 1_000_000:06d}"
    problem = password_step(client)
    for _ in range(3):  # the password's success emptied the bucket: three wrong codes fill it
        client.post(TOKENS, json={"challenge": problem["challenge"], "otp": wrong})
    limited = client.post(TOKENS, json={"challenge": problem["challenge"], "otp": code_now(secret)})
    assert assert_problem(limited, 429)["type"].endswith("/problems/too-many-failed-log-ins")
    assert int(limited.headers["Retry-After"]) > 0


def test_an_expired_challenge_is_refused(
    client: FlaskClient, enrolled: tuple[Account, str, list[str]], clock: time_machine.Traveller
) -> None:
    _, secret, _ = enrolled
    problem = password_step(client)
    clock.shift(timedelta(seconds=301))
    late = client.post(TOKENS, json={"challenge": problem["challenge"], "otp": code_now(secret)})
    assert assert_problem(late, 401)["type"].endswith("/problems/invalid-challenge")


def test_a_recovery_code_logs_in_once(
    client: FlaskClient, enrolled: tuple[Account, str, list[str]]
) -> None:
    _, _, codes = enrolled
    assert len(codes) == 10
    problem = password_step(client)
    used = client.post(TOKENS, json={"challenge": problem["challenge"], "otp": codes[0]})
    assert used.status_code == 201
    problem = password_step(client)
    again = client.post(TOKENS, json={"challenge": problem["challenge"], "otp": codes[0]})
    assert assert_problem(again, 401)["type"].endswith("/problems/mfa-required")


@pytest.mark.parametrize(
    "body",
    [
        {"challenge": "x"},
        {"challenge": 1, "otp": "123456"},
        {"challenge": "x", "otp": ""},
        {"challenge": "x", "otp": "1" * 41},
        {"challenge": "x", "otp": "123456", "extra": True},
    ],
)
def test_a_malformed_second_call_is_a_clear_422(client: FlaskClient, body: dict[str, Any]) -> None:
    problem = assert_problem(client.post(TOKENS, json=body), 422)
    assert problem["errors"]


def test_an_unknown_challenge_is_refused(client: FlaskClient) -> None:
    answer = client.post(TOKENS, json={"challenge": "<script>张三", "otp": "123456"})
    assert assert_problem(answer, 401)["type"].endswith("/problems/invalid-challenge")


# --- in the browser ----------------------------------------------------------------------


def test_the_log_in_form_asks_for_the_code_before_any_session(
    app: Flask, client: FlaskClient, enrolled: tuple[Account, str, list[str]], api: ApiActions
) -> None:
    _, secret, _ = enrolled
    browser = app.test_client()
    for path in ("/test_post", "/test_request"):  # the forms of /login and the tutorial
        sessions_before = api.count("user_session")
        answer = AuthActions(browser).login(path=path)
        assert answer.status_code == 302 and answer.location == "/login/second-step", path
        assert api.count("user_session") == sessions_before
        assert not is_logged_in(browser, "/account")

    page = browser.get("/login/second-step")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'autocomplete="one-time-code"' in html
    wrong = browser.post(
        "/login/second-step", data={"code": "000000", "csrf_token": csrf_token(html)}
    )
    assert wrong.status_code == 200 and "not right" in wrong.get_data(as_text=True)
    done = browser.post(
        "/login/second-step", data={"code": code_now(secret), "csrf_token": csrf_token(html)}
    )
    assert done.status_code == 302 and done.location.startswith("/success"), done.location
    assert is_logged_in(browser, "/account")
    [row] = [r for r in api.rows("user_session") if r["auth_method"] != "password"]
    assert row["auth_method"] == "password+totp"


def test_the_second_step_expires(
    app: Flask, enrolled: tuple[Account, str, list[str]], clock: time_machine.Traveller
) -> None:
    _, secret, _ = enrolled
    browser = app.test_client()
    AuthActions(browser).login()
    html = browser.get("/login/second-step").get_data(as_text=True)
    clock.shift(timedelta(minutes=6))
    late = browser.post(
        "/login/second-step", data={"code": code_now(secret), "csrf_token": csrf_token(html)}
    )
    assert late.status_code == 302 and late.location.startswith("/login")
    assert not is_logged_in(browser, "/account")


def test_without_a_factor_the_tutorial_log_in_is_unchanged(
    client: FlaskClient, api: ApiActions
) -> None:
    api.account("lisi")
    answer = AuthActions(client).login("lisi", path="/test_post")
    assert answer.status_code == 302 and answer.location.startswith("/success")
    assert client.get("/login/second-step").status_code == 302  # nothing pending


# --- re-authentication --------------------------------------------------------------------


def test_a_stale_session_must_reauthenticate_before_changing_the_password(
    app: Flask, api: ApiActions, clock: time_machine.Traveller
) -> None:
    api.account("张三")
    browser = app.test_client()
    AuthActions(browser).login()
    clock.shift(timedelta(minutes=6))
    asked = browser.get("/account/password")
    assert asked.status_code == 302
    assert asked.location.startswith("/account/reauthenticate?next=/account/password")
    page = browser.get(asked.location).get_data(as_text=True)
    wrong = browser.post(
        "/account/reauthenticate",
        data={
            "password": "wrong password!",
            "next": "/account/password",
            "csrf_token": csrf_token(page),
        },
    )
    assert wrong.status_code == 200 and "not right" in wrong.get_data(as_text=True)
    right = browser.post(
        "/account/reauthenticate",
        data={"password": PASSWORD, "next": "/account/password", "csrf_token": csrf_token(page)},
    )
    assert right.status_code == 302 and right.location == "/account/password"
    form = browser.get("/account/password")
    assert form.status_code == 200
    changed = browser.post(
        "/account/password",
        data={
            "current_password": PASSWORD,
            "password": "a brand new password",
            "confirm": "a brand new password",
            "csrf_token": csrf_token(form.get_data(as_text=True)),
        },
    )
    assert changed.status_code == 302 and changed.location == "/account"
    assert "reauthenticated" in {e["type"] for e in api.rows("security_event")}


def test_reauthentication_never_leaves_the_site(app: Flask, api: ApiActions) -> None:
    api.account("张三")
    browser = app.test_client()
    AuthActions(browser).login()
    page = browser.get("/account/reauthenticate").get_data(as_text=True)
    answer = browser.post(
        "/account/reauthenticate",
        data={
            "password": PASSWORD,
            "next": "https://evil.example/",
            "csrf_token": csrf_token(page),
        },
    )
    assert answer.status_code == 302 and answer.location == "/account"


def test_an_old_token_must_reauthenticate_before_a_new_password(
    clock: time_machine.Traveller, client: FlaskClient, member: Account
) -> None:
    clock.shift(timedelta(minutes=6))
    change = {"password": "a brand new password", "current_password": PASSWORD}
    refused = client.patch("/api/v1/users/me", json=change, headers=member.headers)
    assert assert_problem(refused, 401)["type"].endswith("/problems/reauthentication-required")
    # A display name needs no fresh proof.
    assert (
        client.patch(
            "/api/v1/users/me", json={"display_name": "Member"}, headers=member.headers
        ).status_code
        == 200
    )
    wrong = client.post(
        "/api/v1/users/me/reauthenticate",
        json={"password": "not it at all"},
        headers=member.headers,
    )
    assert assert_problem(wrong, 401)["type"].endswith("/problems/bad-credentials")
    right = client.post(
        "/api/v1/users/me/reauthenticate", json={"password": PASSWORD}, headers=member.headers
    )
    assert right.status_code == 204
    assert client.patch("/api/v1/users/me", json=change, headers=member.headers).status_code == 200


def test_a_code_reauthenticates_too(
    client: FlaskClient, enrolled: tuple[Account, str, list[str]], clock: time_machine.Traveller
) -> None:
    account, secret, _ = enrolled
    clock.shift(timedelta(minutes=6))
    refused = client.post(
        "/api/v1/users/me/api-keys",
        json={"name": "ci", "scopes": ["read"]},
        headers=account.headers,
    )
    assert assert_problem(refused, 401)["type"].endswith("/problems/reauthentication-required")
    assert (
        client.post(
            "/api/v1/users/me/reauthenticate",
            json={"otp": code_now(secret)},
            headers=account.headers,
        ).status_code
        == 204
    )
    made = client.post(
        "/api/v1/users/me/api-keys",
        json={"name": "ci", "scopes": ["read"]},
        headers=account.headers,
    )
    assert made.status_code == 201


@pytest.mark.parametrize("body", [{}, {"password": ""}, {"password": 1}, {"otp": None, "x": 1}])
def test_a_malformed_reauthentication_is_a_clear_4xx(
    client: FlaskClient, member: Account, body: dict[str, Any]
) -> None:
    answer = client.post("/api/v1/users/me/reauthenticate", json=body, headers=member.headers)
    assert 400 <= answer.status_code < 500 and answer.status_code != 404


# --- administrators -----------------------------------------------------------------------


def test_an_admin_resets_a_users_factors(
    client: FlaskClient, enrolled: tuple[Account, str, list[str]], admin: Account, api: ApiActions
) -> None:
    account, _, _ = enrolled
    assert (
        client.delete(
            f"/api/v1/users/{account.id}/second-factors", headers=admin.headers
        ).status_code
        == 204
    )
    # The password alone logs in again.
    answer = client.post(TOKENS, json={"username": "张三", "password": PASSWORD})
    assert answer.status_code == 201
    [event] = [e for e in api.rows("security_event") if e["type"] == "factors-reset"]
    assert event["user_id"] == account.id and event["actor_id"] == admin.id
    assert (
        client.delete("/api/v1/users/999999/second-factors", headers=admin.headers).status_code
        == 404
    )
    mine = client.delete(f"/api/v1/users/{admin.id}/second-factors", headers=account.headers)
    assert mine.status_code == 403


def test_admins_may_be_required_to_enrol(
    build_app: Any, database_url: str, clock: time_machine.Traveller
) -> None:
    app = build_app(database_url, USERHUB_REQUIRE_MFA_FOR_ADMINS=True)
    client = app.test_client()
    api = ApiActions(app, client)
    admin = api.account("admin", is_admin=True)
    refused = client.get("/api/v1/users", headers=admin.headers)
    assert assert_problem(refused, 403)["type"].endswith("/problems/mfa-enrolment-required")
    # Their own account still works, and they can enrol.
    assert client.get("/api/v1/users/me", headers=admin.headers).status_code == 200
    enrol(client, admin)
    assert client.get("/api/v1/users", headers=admin.headers).status_code == 200
