"""Passkeys (WebAuthn): the service and its views, on SQLite and MySQL.

A software authenticator (``tests/webauthn_support.py``) answers the ceremonies as a platform
authenticator would; userhub verifies its answers as it verifies a browser's. Every bad answer
(malformed, for an unknown, expired or used challenge, for another site, another account's
passkey) is a 4xx that says what to do, never a 500. Chromium's own authenticator is in
``test_browser_passkeys.py``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from flask import Flask
from sqlalchemy import select

from tests.helpers import (
    Account,
    ApiActions,
    AppBuilder,
    assert_problem,
    browser_of,
    csrf_header,
    csrf_token,
    error_fields,
)
from tests.webauthn_support import SoftAuthenticator, b64
from userhub.extensions import db
from userhub.models import Passkey, SecurityEvent, User
from userhub.services import passkeys, security_log
from userhub.services.errors import (
    InvalidUserInput,
    PasskeyNotRegistered,
    PasskeyRefused,
    PasskeyTaken,
)

ORIGIN = "http://localhost:5000"


@pytest.fixture
def app(build_app: AppBuilder, database_url: str) -> Flask:
    return build_app(database_url, USERHUB_PUBLIC_URL=ORIGIN)


def user_of(account: Account) -> User:
    user = db.session.get(User, account.id)
    assert user is not None
    return user


def registered(user: User, authenticator: SoftAuthenticator, name: str = "laptop") -> Passkey:
    key, options = passkeys.registration_options(user)
    return passkeys.register(user, key, authenticator.create(options), name)


# --- The service ---------------------------------------------------------------------------------


def test_register_then_log_in_without_a_password(app: Flask, member: Account) -> None:
    authenticator = SoftAuthenticator(ORIGIN)
    with app.app_context():
        user = user_of(member)
        key, options = passkeys.registration_options(user)
        opts = json.loads(options)
        assert opts["rp"] == {"id": "localhost", "name": "userhub"}
        assert opts["user"]["name"] == "member"
        assert opts["authenticatorSelection"]["residentKey"] == "required"
        assert user.passkey_handle is not None and opts["user"]["id"] == user.passkey_handle
        passkey = passkeys.register(user, key, authenticator.create(options), "  laptop ")
        assert passkey.name == "laptop" and passkey.transports == "internal"
        assert passkeys.count(user) == 1

        key, options = passkeys.authentication_options(None)
        assert json.loads(options)["allowCredentials"] == []
        assert json.loads(options)["userVerification"] == "required"
        owner, used = passkeys.authenticate(key, authenticator.get(options))
        assert owner.id == member.id and used.id == passkey.id
        assert used.last_used_at is not None and used.sign_count == 2


def test_as_a_second_factor_only_the_accounts_own_passkeys_answer(
    app: Flask, api: ApiActions, member: Account
) -> None:
    other = api.account("other")
    mine, theirs = SoftAuthenticator(ORIGIN), SoftAuthenticator(ORIGIN)
    with app.app_context():
        user, stranger = user_of(member), user_of(other)
        registered(user, mine)
        registered(stranger, theirs)
        key, options = passkeys.authentication_options(user)
        allowed = [c["id"] for c in json.loads(options)["allowCredentials"]]
        assert allowed == [b64(mine.passkeys[0].credential_id)]
        with pytest.raises(PasskeyRefused):  # another account's passkey
            passkeys.authenticate(key, theirs.get(options), user=user)
        with pytest.raises(PasskeyRefused):  # this challenge was made for ``user``'s log-in
            passkeys.authenticate(key, mine.get(options))
        owner, _ = passkeys.authenticate(key, mine.get(options), user=user)
        assert owner.id == member.id


def test_a_passwordless_log_in_needs_user_verification(app: Flask, member: Account) -> None:
    authenticator = SoftAuthenticator(ORIGIN)
    with app.app_context():
        registered(user_of(member), authenticator)
        authenticator.user_verified = False
        key, options = passkeys.authentication_options(None)
        with pytest.raises(PasskeyRefused):
            passkeys.authenticate(key, authenticator.get(options))
        key, options = passkeys.authentication_options(user_of(member))
        assert passkeys.authenticate(key, authenticator.get(options), user=user_of(member))


def refusals(user_id: int) -> list[tuple[str, dict[str, Any]]]:
    """The account's logged failures, oldest first, with their details."""
    rows = db.session.scalars(
        select(SecurityEvent)
        .where(
            SecurityEvent.user_id == user_id,
            SecurityEvent.type.in_([security_log.LOGIN_FAILED, security_log.SECOND_FACTOR_FAILED]),
        )
        .order_by(SecurityEvent.id)
    )
    return [(row.type, security_log.details_of(row)) for row in rows]


def test_a_refused_passkey_is_in_the_log_of_the_account_it_was_meant_for(
    app: Flask, api: ApiActions, member: Account
) -> None:
    """After the password (or when asked again), the account that had to answer; without a
    password, the owner of the passkey named; a passkey unknown here names nobody."""
    other = api.account("other")
    browser = browser_of(app, "member")  # before the passkey: then the password alone logs in
    mine, theirs, unknown = (SoftAuthenticator(ORIGIN) for _ in range(3))
    with app.app_context():
        user, stranger = user_of(member), user_of(other)
        registered(user, mine)
        registered(stranger, theirs)
        unknown.create(passkeys.registration_options(stranger)[1])  # never sent to userhub
        key, options = passkeys.authentication_options(user)
        with pytest.raises(PasskeyRefused):
            passkeys.authenticate(key, theirs.get(options), user=user)
        mine.user_verified = False
        key, options = passkeys.authentication_options(None)
        with pytest.raises(PasskeyRefused):
            passkeys.authenticate(key, mine.get(options))
        key, options = passkeys.authentication_options(None)
        with pytest.raises(PasskeyRefused):
            passkeys.authenticate(key, unknown.get(options))
        passed = [
            (security_log.SECOND_FACTOR_FAILED, {"method": "passkey"}),
            (security_log.LOGIN_FAILED, {"method": "passkey"}),
        ]
        assert refusals(member.id) == passed
        assert refusals(other.id) == []
    activity = browser.get("/account/activity").get_data(as_text=True)
    assert "Failed log-in: a passkey was refused after the right password" in activity
    assert "Failed log-in: a passkey was refused</" in activity


def test_answers_for_another_site_or_an_old_challenge_are_refused(
    app: Flask, member: Account
) -> None:
    authenticator = SoftAuthenticator(ORIGIN)
    with app.app_context():
        user = user_of(member)
        key, options = passkeys.registration_options(user)
        with pytest.raises(PasskeyNotRegistered):
            passkeys.register(user, key, authenticator.create(options, origin="https://evil.test"))
        registered(user, authenticator)
        key, options = passkeys.authentication_options(None)
        with pytest.raises(PasskeyRefused):
            passkeys.authenticate(key, authenticator.get(options, origin="http://localhost:5001"))
        answer = authenticator.get(options)
        passkeys.authenticate(key, answer)
        with pytest.raises(PasskeyRefused):  # the challenge is spent
            passkeys.authenticate(key, answer)
        key, options = passkeys.authentication_options(None)
        with pytest.raises(PasskeyRefused):  # a replayed answer: another challenge, old counter
            passkeys.authenticate(key, answer)
        later = datetime.now(UTC) + timedelta(
            seconds=app.config["USERHUB_MFA_CHALLENGE_SECONDS"] + 1
        )
        with time_machine.travel(later), pytest.raises(PasskeyRefused):
            passkeys.authenticate(key, authenticator.get(options))


@pytest.mark.parametrize(
    "answer",
    [
        "",
        "{",
        "[]",
        "null",
        {"id": "x"},
        {"id": "AA", "rawId": "AA", "response": {}},
        "x" * 100_000,
    ],
)
def test_malformed_answers_are_refusals(app: Flask, member: Account, answer: Any) -> None:
    with app.app_context():
        user = user_of(member)
        key, _ = passkeys.registration_options(user)
        with pytest.raises(PasskeyNotRegistered):
            passkeys.register(user, key, answer)
        key, _ = passkeys.authentication_options(None)
        with pytest.raises(PasskeyRefused):
            passkeys.authenticate(key, answer)


def test_a_passkey_is_registered_once(app: Flask, api: ApiActions, member: Account) -> None:
    authenticator = SoftAuthenticator(ORIGIN)
    with app.app_context():
        user = user_of(member)
        key, options = passkeys.registration_options(user)
        answer = authenticator.create(options)
        passkeys.register(user, key, answer)
        with pytest.raises(PasskeyNotRegistered):  # the challenge is spent
            passkeys.register(user, key, answer)
        key, options = passkeys.registration_options(user)
        assert json.loads(options)["excludeCredentials"][0]["id"] == answer["id"]
        again = authenticator.create(options, again=authenticator.passkeys[0])
        with pytest.raises(PasskeyTaken):
            passkeys.register(user, key, again)
        other = api.account("other")
        with app.app_context():
            stranger = user_of(other)
            key, options = passkeys.registration_options(stranger)
            again = authenticator.create(options, again=authenticator.passkeys[0])
            with pytest.raises(PasskeyTaken):
                passkeys.register(stranger, key, again)


def test_names_rename_remove(app: Flask, api: ApiActions, member: Account) -> None:
    other = api.account("other")
    authenticator = SoftAuthenticator(ORIGIN)
    with app.app_context():
        user = user_of(member)
        key, options = passkeys.registration_options(user)
        first = passkeys.register(user, key, authenticator.create(options))
        assert first.name.startswith("Passkey 20")
        with pytest.raises(InvalidUserInput):
            registered(user, authenticator, " ")
        with pytest.raises(InvalidUserInput):
            registered(user, authenticator, "x" * 101)
        second = registered(user, authenticator, "phone")
        assert [p.name for p in passkeys.listed(user)] == ["phone", first.name]
        with pytest.raises(InvalidUserInput):
            passkeys.rename(user, second.id, "  ")
        renamed = passkeys.rename(user, second.id, " work phone ")
        assert renamed is not None and renamed.name == "work phone"
        assert passkeys.rename(user_of(other), second.id, "mine") is None
        assert not passkeys.remove(user_of(other), second.id)
        second_id = second.id
        assert passkeys.remove(user, second_id)
        assert not passkeys.remove(user, second_id)
        assert passkeys.count(user) == 1
        passkeys.delete_all(user)
        db.session.commit()
        assert passkeys.count(user) == 0
    kinds = [row["type"] for row in api.rows("security_event") if row["user_id"] == member.id]
    assert kinds.count("passkey-added") == 2 and kinds.count("passkey-removed") == 1


# --- The pages -----------------------------------------------------------------------------------


def test_add_a_passkey_on_the_account_page_then_log_in_with_it_alone(
    app: Flask, api: ApiActions, member: Account
) -> None:
    authenticator = SoftAuthenticator(ORIGIN)
    browser = browser_of(app, "member")
    page = browser.get("/account/passkeys")
    assert page.status_code == 200 and "You have no passkeys." in page.get_data(as_text=True)
    headers = csrf_header(browser)
    begun = browser.post("/account/passkeys/options", json={}, headers=headers)
    assert begun.status_code == 200, begun.get_data(as_text=True)
    answer = authenticator.create(begun.get_json()["options"])
    body = {"challenge": begun.get_json()["challenge"], "credential": answer, "name": "laptop"}
    done = browser.post("/account/passkeys/new", json=body, headers=headers)
    assert done.status_code == 200, done.get_data(as_text=True)
    assert done.get_json() == {"redirect": "/account/passkeys"}
    listed = browser.get("/account/passkeys").get_data(as_text=True)
    assert "Passkey added: laptop." in listed and "never" in listed

    stranger = app.test_client()  # another browser: no session, no password
    token = {"X-CSRFToken": csrf_token(stranger.get("/login").get_data(as_text=True))}
    begun = stranger.post("/login/passkey/options", json={}, headers=token)
    assert begun.status_code == 200
    assert begun.get_json()["options"]["allowCredentials"] == []
    body = {
        "challenge": begun.get_json()["challenge"],
        "credential": authenticator.get(begun.get_json()["options"]),
    }
    logged_in = stranger.post("/login/passkey", json=body, headers=token)
    assert logged_in.status_code == 200, logged_in.get_data(as_text=True)
    assert logged_in.get_json() == {"redirect": "/success?user_name=member"}
    assert "Hello,member" in stranger.get("/success").get_data(as_text=True)
    replay = app.test_client()
    token = {"X-CSRFToken": csrf_token(replay.get("/login").get_data(as_text=True))}
    again = replay.post("/login/passkey", json=body, headers=token)  # the challenge is spent
    problem = assert_problem(again, 401)
    assert problem["type"] == "/problems/passkey-refused"
    logins = [r for r in api.rows("security_event") if r["type"] == "logged-in"]
    assert json.loads(logins[-1]["details"] or "{}").get("method") == "passkey"


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"challenge": "x"},
        {"challenge": 1, "credential": {}},
        {"challenge": "x", "credential": "{}"},
        {"challenge": "unknown", "credential": {}},
        {"challenge": "unknown", "credential": {"id": "AA", "rawId": "AA", "response": []}},
    ],
)
def test_bad_answers_to_the_log_in_are_4xx(app: Flask, body: dict[str, Any]) -> None:
    browser = app.test_client()
    token = {"X-CSRFToken": csrf_token(browser.get("/login").get_data(as_text=True))}
    response = browser.post("/login/passkey", json=body, headers=token)
    assert response.status_code in {401, 422}
    assert_problem(response, response.status_code)


def test_the_json_calls_need_a_recent_log_in_and_csrf(app: Flask, member: Account) -> None:
    anonymous = app.test_client()
    token = {"X-CSRFToken": csrf_token(anonymous.get("/login").get_data(as_text=True))}
    problem = assert_problem(
        anonymous.post("/account/passkeys/options", json={}, headers=token), 401
    )
    assert problem["type"] == "/problems/unauthenticated"
    browser = browser_of(app, "member")
    assert_problem(browser.post("/account/passkeys/options", json={}), 400)  # no CSRF token
    assert_problem(browser.post("/login/passkey/options", json={}), 400)
    later = datetime.now(UTC) + timedelta(
        seconds=app.config["USERHUB_REAUTHENTICATION_SECONDS"] + 5
    )
    with time_machine.travel(later):
        stale = browser.post("/account/passkeys/options", json={}, headers=csrf_header(browser))
        assert assert_problem(stale, 401)["type"] == "/problems/reauthentication-required"


def test_rename_and_remove_on_the_page(app: Flask, api: ApiActions, member: Account) -> None:
    other = api.account("other")
    authenticator = SoftAuthenticator(ORIGIN)
    browser = browser_of(app, "member")  # before the passkey: then the password alone logs in
    with app.app_context():
        mine = registered(user_of(member), authenticator).id
        theirs = registered(user_of(other), SoftAuthenticator(ORIGIN)).id
    token = csrf_token(browser.get("/account/passkeys").get_data(as_text=True))
    renamed = browser.post(
        f"/account/passkeys/{mine}/rename", data={"name": " desk ", "csrf_token": token}
    )
    assert renamed.status_code == 302
    assert "Passkey renamed: desk." in browser.get("/account/passkeys").get_data(as_text=True)
    blank = browser.post(
        f"/account/passkeys/{mine}/rename", data={"name": " ", "csrf_token": token}
    )
    assert blank.status_code == 422 and 'aria-invalid="true"' in blank.get_data(as_text=True)
    browser.post(f"/account/passkeys/{theirs}/rename", data={"name": "stolen", "csrf_token": token})
    browser.post(f"/account/passkeys/{theirs}/remove", data={"csrf_token": token})
    assert [r["name"] for r in api.rows("passkey") if r["id"] == theirs] == ["laptop"]
    removed = browser.post(f"/account/passkeys/{mine}/remove", data={"csrf_token": token})
    assert removed.status_code == 302
    assert "You have no passkeys." in browser.get("/account/passkeys").get_data(as_text=True)
    activity = browser.get("/account/activity", headers={"Accept-Language": "zh-CN"})
    assert "已添加通行密钥：laptop" in activity.get_data(as_text=True)
    assert "已移除通行密钥：desk" in activity.get_data(as_text=True)


# --- The API -------------------------------------------------------------------------------------

PASSKEYS = "/api/v1/users/me/passkeys"
PASSKEY_FIELDS = {"id", "name", "created_at", "last_used_at", "backed_up", "transports"}


def api_register(
    api: ApiActions, account: Account, authenticator: SoftAuthenticator, **body: Any
) -> dict[str, Any]:
    begun = api.client.post(f"{PASSKEYS}/registration-options", headers=account.headers)
    assert begun.status_code == 200, begun.get_data(as_text=True)
    answer = authenticator.create(begun.get_json()["options"])
    sent = {"challenge": begun.get_json()["challenge"], "credential": answer, **body}
    done = api.client.post(PASSKEYS, json=sent, headers=account.headers)
    assert done.status_code == 201, done.get_data(as_text=True)
    created: dict[str, Any] = done.get_json()
    return created


def test_the_api_registers_lists_renames_and_removes(api: ApiActions, member: Account) -> None:
    client = api.client
    assert client.get(PASSKEYS, headers=member.headers).get_json() == []
    created = api_register(api, member, SoftAuthenticator(ORIGIN), name="laptop")
    assert set(created) == PASSKEY_FIELDS
    assert created["name"] == "laptop" and created["transports"] == ["internal"]
    assert created["last_used_at"] is None and created["backed_up"] is False
    other = api_register(api, member, SoftAuthenticator(ORIGIN))
    assert other["name"].startswith("Passkey 20")
    listed = client.get(PASSKEYS, headers=member.headers).get_json()
    assert [p["id"] for p in listed] == [other["id"], created["id"]]
    assert all(set(p) == PASSKEY_FIELDS for p in listed)
    renamed = client.patch(
        f"{PASSKEYS}/{created['id']}", json={"name": " desk "}, headers=member.headers
    )
    assert renamed.status_code == 200 and renamed.get_json()["name"] == "desk"
    blank = client.patch(f"{PASSKEYS}/{created['id']}", json={"name": " "}, headers=member.headers)
    assert "name" in error_fields(assert_problem(blank, 422))
    gone = client.delete(f"{PASSKEYS}/{created['id']}", headers=member.headers)
    assert gone.status_code == 204
    assert_problem(client.delete(f"{PASSKEYS}/{created['id']}", headers=member.headers), 404)
    assert [p["id"] for p in client.get(PASSKEYS, headers=member.headers).get_json()] == [
        other["id"]
    ]


def test_another_accounts_passkey_is_404(api: ApiActions, member: Account) -> None:
    stranger = api.account("stranger")
    theirs = api_register(api, stranger, SoftAuthenticator(ORIGIN))
    path = f"{PASSKEYS}/{theirs['id']}"
    assert_problem(api.client.patch(path, json={"name": "mine"}, headers=member.headers), 404)
    assert_problem(api.client.delete(path, headers=member.headers), 404)
    assert api.client.get(PASSKEYS, headers=member.headers).get_json() == []
    assert [p["name"] for p in api.client.get(PASSKEYS, headers=stranger.headers).get_json()] == [
        theirs["name"]
    ]


def test_bad_registrations_are_4xx(app: Flask, api: ApiActions, member: Account) -> None:
    client = api.client
    authenticator = SoftAuthenticator(ORIGIN)

    def begin() -> tuple[str, dict[str, Any]]:
        body = client.post(f"{PASSKEYS}/registration-options", headers=member.headers).get_json()
        return body["challenge"], body["options"]

    def send(body: Any) -> Any:
        return client.post(PASSKEYS, json=body, headers=member.headers)

    challenge, options = begin()
    for broken in ({}, {"id": "AA"}, {"id": "AA", "rawId": "AA", "response": {"a": 1}}):
        refused = send({"challenge": challenge, "credential": broken})
        assert assert_problem(refused, 400)["type"] == "/problems/passkey-not-registered"
    assert_problem(send({"challenge": challenge, "credential": "text"}), 422)
    assert_problem(send({"challenge": challenge}), 422)
    unknown = send({"challenge": "no-such-challenge", "credential": authenticator.create(options)})
    assert assert_problem(unknown, 400)["type"] == "/problems/passkey-not-registered"

    challenge, options = begin()
    answer = authenticator.create(options)
    later = datetime.now(UTC) + timedelta(seconds=app.config["USERHUB_MFA_CHALLENGE_SECONDS"] + 1)
    with time_machine.travel(later):  # expired (the token stays recent: it is re-issued)
        fresh = Account(member.id, member.username, api.token("member"))
        expired = client.post(
            PASSKEYS, json={"challenge": challenge, "credential": answer}, headers=fresh.headers
        )
        assert_problem(expired, 400)

    challenge, options = begin()
    answer = authenticator.create(options)
    assert send({"challenge": challenge, "credential": answer}).status_code == 201
    reused = send({"challenge": challenge, "credential": answer})
    assert assert_problem(reused, 400)["type"] == "/problems/passkey-not-registered"
    challenge, options = begin()
    again = authenticator.create(options, again=authenticator.passkeys[-1])
    taken = send({"challenge": challenge, "credential": again})
    assert assert_problem(taken, 409)["type"] == "/problems/passkey-taken"
    long_name = send({"challenge": challenge, "credential": again, "name": "x" * 101})
    assert "name" in error_fields(assert_problem(long_name, 422))


def test_registering_and_removing_need_a_recent_proof(
    app: Flask, api: ApiActions, member: Account
) -> None:
    created = api_register(api, member, SoftAuthenticator(ORIGIN))
    later = datetime.now(UTC) + timedelta(
        seconds=app.config["USERHUB_REAUTHENTICATION_SECONDS"] + 5
    )
    with time_machine.travel(later):
        for response in (
            api.client.post(f"{PASSKEYS}/registration-options", headers=member.headers),
            api.client.post(
                PASSKEYS, json={"challenge": "x", "credential": {}}, headers=member.headers
            ),
            api.client.delete(f"{PASSKEYS}/{created['id']}", headers=member.headers),
        ):
            assert assert_problem(response, 401)["type"] == "/problems/reauthentication-required"
        renamed = api.client.patch(
            f"{PASSKEYS}/{created['id']}", json={"name": "still mine"}, headers=member.headers
        )
        assert renamed.status_code == 200


def test_a_browser_session_uses_the_api_with_its_csrf_token(app: Flask, member: Account) -> None:
    browser = browser_of(app, "member")
    assert assert_problem(browser.post(f"{PASSKEYS}/registration-options"), 400)["type"] == (
        "/problems/csrf-failed"
    )
    begun = browser.post(f"{PASSKEYS}/registration-options", headers=csrf_header(browser))
    assert begun.status_code == 200 and begun.get_json()["options"]["rp"]["id"] == "localhost"
