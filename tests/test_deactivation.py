"""A deactivated account cannot log in by any route, and what it held is refused at once, on
every instance; reactivation lets it log in again. On SQLite and MySQL.

Every way in is tried with the right credential, then with a wrong one: only the right one is
told the account is deactivated (403 ``account-deactivated``), so a stranger learns nothing of
an account's state. The administrator deactivates through the API
(``PATCH /api/v1/users/{id}`` with ``"is_active": false``). What reactivation gives back: the
password, the passkeys, the authenticator app and the profile; not the sessions, tokens and
keys, which deactivation deleted (a key must be made again).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pyotp
import pytest
import time_machine
from flask import Flask
from flask.testing import FlaskClient

from tests.helpers import (
    API_KEYS,
    ME,
    PASSWORD,
    TOKENS,
    Account,
    ApiActions,
    AppBuilder,
    AuthActions,
    assert_problem,
    basic,
    bearer,
    browser_of,
    csrf_token,
    is_logged_in,
    new_api_key,
)
from tests.webauthn_support import SoftAuthenticator
from userhub.extensions import db
from userhub.models import User
from userhub.services import passkeys

ORIGIN = "http://localhost:5000"
DEACTIVATED = "/problems/account-deactivated"
SAYS_DEACTIVATED = "deactivated by an administrator"
WRONG = "not the password"
START = datetime(2026, 12, 7, 9, 0, 0, tzinfo=UTC)


@pytest.fixture
def app(build_app: AppBuilder, database_url: str) -> Flask:
    return build_app(database_url, USERHUB_PUBLIC_URL=ORIGIN)


@pytest.fixture
def clock() -> Iterator[time_machine.Traveller]:
    """Time stands still unless a test moves it (a TOTP code per 30-second step)."""
    with time_machine.travel(START, tick=False) as traveller:
        yield traveller


def set_active(client: FlaskClient, admin: Account, user_id: int, active: bool) -> dict[str, Any]:
    """The administrator deactivates or reactivates the account; the user as answered."""
    answer = client.patch(
        f"/api/v1/users/{user_id}", json={"is_active": active}, headers=admin.headers
    )
    assert answer.status_code == 200, answer.get_data(as_text=True)
    user: dict[str, Any] = answer.get_json()
    assert user["is_active"] is active
    return user


def form_log_in(app: Flask, path: str, password: str = PASSWORD) -> tuple[FlaskClient, Any]:
    """A new browser's log-in through the form posted to ``path``, and the answer."""
    browser = app.test_client()
    return browser, AuthActions(browser).login("zhang", password, path=path)


# --- the log-in form ------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/test_post", "/test_request"])
def test_the_log_in_form_refuses_a_deactivated_account_after_the_right_password(
    app: Flask, client: FlaskClient, api: ApiActions, admin: Account, path: str
) -> None:
    member = api.account("zhang")
    set_active(client, admin, member.id, False)

    browser, wrong = form_log_in(app, path, WRONG)
    assert wrong.status_code == 200
    assert "Invalid username or password." in wrong.text and SAYS_DEACTIVATED not in wrong.text
    browser, right = form_log_in(app, path)
    assert right.status_code == 403
    assert SAYS_DEACTIVATED in right.text and "Invalid username" not in right.text
    assert not is_logged_in(browser, "/account")

    set_active(client, admin, member.id, True)
    browser, again = form_log_in(app, path)
    assert again.status_code == 302 and again.location.startswith("/success"), again.location
    assert is_logged_in(browser, "/account")


# --- POST /api/v1/tokens --------------------------------------------------------------------


def test_the_api_refuses_a_token_by_json_and_basic_after_the_right_password(
    client: FlaskClient, api: ApiActions, admin: Account
) -> None:
    member = api.account("zhang")
    set_active(client, admin, member.id, False)
    tokens_before = api.count("api_token")

    for credentials in (
        {"json": {"username": "zhang", "password": WRONG}},
        {"headers": basic("zhang", WRONG)},
    ):
        wrong = assert_problem(client.post(TOKENS, **credentials), 401)
        assert wrong["type"] == "/problems/bad-credentials"
    for credentials in (
        {"json": {"username": "zhang", "password": PASSWORD}},
        {"headers": basic("zhang", PASSWORD)},
    ):
        refused = assert_problem(client.post(TOKENS, **credentials), 403)
        assert refused["type"] == DEACTIVATED and SAYS_DEACTIVATED in refused["detail"]
    assert api.count("api_token") == tokens_before

    set_active(client, admin, member.id, True)
    assert client.post(TOKENS, headers=basic("zhang", PASSWORD)).status_code == 201
    assert client.get(ME, headers=bearer(api.token("zhang"))).status_code == 200


# --- a passwordless passkey -----------------------------------------------------------------


def passkey_log_in(
    app: Flask, authenticator: SoftAuthenticator
) -> tuple[FlaskClient, Any, Callable[[], Any]]:
    """A new browser logs in with the passkey alone (``/login/passkey``): the browser, the
    answer, and a way to send the same passkey answer again."""
    browser = app.test_client()
    token = {"X-CSRFToken": csrf_token(browser.get("/login").get_data(as_text=True))}
    begun = browser.post("/login/passkey/options", json={}, headers=token)
    assert begun.status_code == 200, begun.get_data(as_text=True)
    body = {
        "challenge": begun.get_json()["challenge"],
        "credential": authenticator.get(begun.get_json()["options"]),
    }

    def send() -> Any:
        return browser.post("/login/passkey", json=body, headers=token)

    return browser, send(), send


def test_a_passkey_alone_cannot_log_in_to_a_deactivated_account(
    app: Flask, client: FlaskClient, api: ApiActions, admin: Account
) -> None:
    member = api.account("zhang")
    mine, strangers = SoftAuthenticator(ORIGIN), SoftAuthenticator(ORIGIN)
    with app.app_context():
        user = db.session.get(User, member.id)
        assert user is not None
        key, options = passkeys.registration_options(user)
        passkeys.register(user, key, mine.create(options), "laptop")
        key, options = passkeys.registration_options(user)  # never registered: unknown here
        strangers.create(options)
    set_active(client, admin, member.id, False)

    browser, unknown, _ = passkey_log_in(app, strangers)
    assert assert_problem(unknown, 401)["type"] == "/problems/passkey-refused"
    browser, refused, again = passkey_log_in(app, mine)
    problem = assert_problem(refused, 403)
    assert problem["type"] == DEACTIVATED and SAYS_DEACTIVATED in problem["detail"]
    assert not is_logged_in(browser, "/account")
    # The refusal spent the challenge: the same answer, sent again, is no proof of anything.
    assert assert_problem(again(), 401)["type"] == "/problems/passkey-refused"

    set_active(client, admin, member.id, True)
    browser, allowed, _ = passkey_log_in(app, mine)
    assert allowed.status_code == 200
    assert allowed.get_json() == {"redirect": "/success?user_name=zhang"}
    assert is_logged_in(browser, "/account")


# --- the second step, deactivated between the password and the code ---------------------------


@pytest.fixture
def totp_secret(
    client: FlaskClient, api: ApiActions, clock: time_machine.Traveller
) -> Iterator[tuple[Account, pyotp.TOTP]]:
    """zhang, with an authenticator app; the clock then moves on a step (its code is spent)."""
    member = api.account("zhang")
    started = client.post("/api/v1/users/me/totp", headers=member.headers)
    totp = pyotp.TOTP(started.get_json()["secret"])
    confirmed = client.post(
        "/api/v1/users/me/totp/confirm", json={"code": totp.now()}, headers=member.headers
    )
    assert confirmed.status_code == 200, confirmed.get_data(as_text=True)
    clock.shift(timedelta(seconds=30))
    yield member, totp


def test_the_forms_second_step_is_refused_when_deactivated_after_the_password(
    app: Flask,
    client: FlaskClient,
    admin: Account,
    totp_secret: tuple[Account, pyotp.TOTP],
    clock: time_machine.Traveller,
) -> None:
    member, totp = totp_secret

    def second_step(browser: FlaskClient) -> Any:
        html = browser.get("/login/second-step").get_data(as_text=True)
        sent = {"code": totp.now(), "csrf_token": csrf_token(html)}
        return browser.post("/login/second-step", data=sent)

    browser, first = form_log_in(app, "/test_post")
    assert first.status_code == 302 and first.location == "/login/second-step"
    set_active(client, admin, member.id, False)  # meanwhile, on the admin's side
    refused = second_step(browser)
    assert refused.status_code == 403 and SAYS_DEACTIVATED in refused.text
    assert not is_logged_in(browser, "/account")

    set_active(client, admin, member.id, True)
    clock.shift(timedelta(seconds=30))  # the next code
    browser, first = form_log_in(app, "/test_post")
    assert first.status_code == 302 and first.location == "/login/second-step"
    done = second_step(browser)
    assert done.status_code == 302 and done.location.startswith("/success"), done.location
    assert is_logged_in(browser, "/account")


def test_the_apis_second_step_is_refused_when_deactivated_after_the_password(
    client: FlaskClient,
    api: ApiActions,
    admin: Account,
    totp_secret: tuple[Account, pyotp.TOTP],
    clock: time_machine.Traveller,
) -> None:
    member, totp = totp_secret
    first = assert_problem(
        client.post(TOKENS, json={"username": "zhang", "password": PASSWORD}), 401
    )
    assert first["type"] == "/problems/mfa-required"
    set_active(client, admin, member.id, False)
    wrong = client.post(TOKENS, json={"challenge": first["challenge"], "otp": "000000"})
    assert assert_problem(wrong, 401)["type"] == "/problems/mfa-required"  # nothing told
    right = client.post(TOKENS, json={"challenge": first["challenge"], "otp": totp.now()})
    problem = assert_problem(right, 403)
    assert problem["type"] == DEACTIVATED and SAYS_DEACTIVATED in problem["detail"]

    set_active(client, admin, member.id, True)
    clock.shift(timedelta(seconds=30))
    again = assert_problem(client.post(TOKENS, headers=basic("zhang", PASSWORD)), 401)
    answer = client.post(TOKENS, json={"challenge": again["challenge"], "otp": totp.now()})
    assert answer.status_code == 201, answer.get_data(as_text=True)


# --- what stays, what is gone -----------------------------------------------------------------


def test_reactivation_keeps_the_data_but_not_the_keys(
    client: FlaskClient, api: ApiActions, admin: Account
) -> None:
    member = api.account("zhang")
    changed = client.patch(ME, json={"display_name": "Zhang San"}, headers=member.headers)
    assert changed.status_code == 200
    key = new_api_key(client, member.headers, "read", name="backup")
    deactivated = set_active(client, admin, member.id, False)
    assert deactivated["deactivated_at"] is not None and deactivated["deactivated_at"][-1] == "Z"

    reactivated = set_active(client, admin, member.id, True)
    assert reactivated["deactivated_at"] is None
    assert reactivated["display_name"] == "Zhang San" and reactivated["username"] == "zhang"
    token = api.token("zhang")
    # Deactivation deleted every key: none is listed, and the old one stays dead.
    assert client.get(API_KEYS, headers=bearer(token)).get_json() == []
    assert client.get(ME, headers=bearer(key["key"])).status_code == 401
    assert client.get(ME, headers=member.headers).status_code == 401
    events = [e["type"] for e in api.rows("security_event") if e["user_id"] == member.id]
    assert {"api-key-created", "account-deactivated", "account-reactivated"} <= set(events)


# --- two instances, one database --------------------------------------------------------------


def test_what_the_account_holds_is_refused_at_once_on_another_instance(
    build_app: AppBuilder, database_url: str
) -> None:
    """A cookie, a token and a key from instance 1; the account deactivated through instance
    2: the very next request with each, on instance 1, is refused. No instance keeps them in
    memory: they are rows, deleted by the deactivation."""
    one, two = build_app(database_url), build_app(database_url)
    first = ApiActions(one, one.test_client())
    member = first.account("zhang")
    key = new_api_key(first.client, member.headers, "read", "write", name="script")["key"]
    browser = browser_of(one, "zhang")
    second = ApiActions(two, two.test_client())
    admin = second.account("admin", is_admin=True)
    for credential in (member.token, key):
        assert first.client.get(ME, headers=bearer(credential)).status_code == 200
    assert browser.get("/api/v1/users/me").status_code == 200

    set_active(second.client, admin, member.id, False)

    for credential in (member.token, key):
        refused = assert_problem(first.client.get(ME, headers=bearer(credential)), 401)
        assert refused["type"] == "/problems/unauthenticated"
    assert_problem(browser.get("/api/v1/users/me"), 401)
    page = browser.get("/account")
    assert page.status_code == 302 and page.location.startswith("/login")
