"""The security log: every event the services emit is stored once the action is done, naming
the account (``user_id``), the administrator who acted on someone else's account
(``actor_id``), the client's address and browser in a few words, and the session or the token
the request came with; on SQLite and MariaDB.

The actions go through the public routes (the pages and ``/api/v1``) from a browser with an
address and a ``User-Agent`` of its own, and an administrator from another. API keys and ending
one session from another have no route yet: those call the services, inside a request context
that gives them the same origin.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from tests.helpers import (
    NEW_PASSWORD,
    PASSWORD,
    AppBuilder,
    AuthActions,
    bearer,
    csrf_token,
    is_logged_in,
)
from tests.mail_support import Mailbox, token_in
from userhub.extensions import db
from userhub.models import ApiToken, BrowserSession, SecurityEvent
from userhub.services import api_keys, email_links, security_log, sessions, users
from userhub.services.tokens import token_hash

IP = "203.0.113.7"
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
FIREFOX_SUMMARY = "Firefox 133 on Linux"
ADMIN_IP = "198.51.100.9"
CURL = "curl/8.5.0"
CURL_SUMMARY = "curl 8"
ADDRESS = "zhangsan@example.com"


# --- clients and what the log holds -------------------------------------------------------------


def browser(app: Flask, ip: str = IP, user_agent: str = FIREFOX) -> AuthActions:
    """A client of its own (cookie jar, address, browser)."""
    client = app.test_client()
    client.environ_base.update(REMOTE_ADDR=ip, HTTP_USER_AGENT=user_agent)
    return AuthActions(client)


def events(app: Flask, kind: str | None = None) -> list[dict[str, Any]]:
    """The stored events (of ``kind``), oldest first."""
    query = sa.select(SecurityEvent.__table__).order_by(SecurityEvent.id)
    if kind is not None:
        query = query.where(SecurityEvent.type == kind)
    with app.app_context():
        return [dict(row) for row in db.session.execute(query).mappings()]


def only(app: Flask, kind: str) -> dict[str, Any]:
    found = events(app, kind)
    assert len(found) == 1, found
    return found[0]


def details(event: dict[str, Any]) -> dict[str, Any]:
    return json.loads(event["details"]) if event["details"] else {}


def assert_event(
    event: dict[str, Any],
    *,
    user_id: int,
    actor_id: int | None = None,
    session_id: int | None = None,
    api_key_id: int | None = None,
    ip: str | None = IP,
    user_agent: str | None = FIREFOX_SUMMARY,
) -> None:
    stored = {k: event[k] for k in ("user_id", "actor_id", "session_id", "api_key_id", "ip")}
    expected = {
        "user_id": user_id,
        "actor_id": actor_id,
        "session_id": session_id,
        "api_key_id": api_key_id,
        "ip": ip,
    }
    assert stored == expected
    assert event["user_agent"] == user_agent
    assert event["created_at"] is not None


def user_id(app: Flask, username: str = "张三") -> int:
    with app.app_context():
        user = users.find_user(username)
        assert user is not None
        return user.id


def session_ids(app: Flask, owner: int) -> list[int]:
    with app.app_context():
        query = sa.select(BrowserSession.id).where(BrowserSession.user_id == owner)
        return list(db.session.scalars(query.order_by(BrowserSession.id)))


def token_id(app: Flask, token: str) -> int:
    with app.app_context():
        found = db.session.scalar(
            sa.select(ApiToken.id).where(ApiToken.token_hash == token_hash(token))
        )
        assert found is not None
        return found


def issue_token(client: FlaskClient, username: str = "张三", password: str = PASSWORD) -> str:
    answer = client.post("/api/v1/tokens", json={"username": username, "password": password})
    assert answer.status_code == 201, answer.get_json()
    return str(answer.get_json()["token"])


def post_form(auth: AuthActions, path: str, page: str, **fields: str) -> Any:
    token = csrf_token(auth.client.get(page).get_data(as_text=True))
    return auth.client.post(path, data={"csrf_token": token, **fields})


def admin_client(app: Flask) -> tuple[FlaskClient, int, str]:
    """An administrator's client (an address and a browser of its own), its id and its token."""
    with app.app_context():
        admin_id = users.register_user("admin", PASSWORD, is_admin=True).id
    client = browser(app, ADMIN_IP, CURL).client
    return client, admin_id, issue_token(client, "admin")


# --- registering, logging in and out ------------------------------------------------------------


def test_registering_is_logged_from_the_page_and_the_api(app: Flask) -> None:
    page = browser(app)
    assert page.register("张三").status_code == 302
    api = browser(app, ADMIN_IP, CURL).client
    assert (
        api.post("/api/v1/users", json={"username": "lisi", "password": PASSWORD}).status_code
        == 201
    )

    first, second = events(app, security_log.REGISTERED)
    assert_event(first, user_id=user_id(app, "张三"))
    assert_event(second, user_id=user_id(app, "lisi"), ip=ADMIN_IP, user_agent=CURL_SUMMARY)
    assert events(app) == [first, second]  # nothing else: registering logs nobody in


def test_a_log_in_through_the_form_names_its_new_session(app: Flask) -> None:
    auth = browser(app)
    auth.register()
    assert auth.login().status_code == 302
    owner = user_id(app)
    [session_id] = session_ids(app, owner)
    event = only(app, security_log.LOGGED_IN)
    assert_event(event, user_id=owner, session_id=session_id)
    assert details(event) == {"method": "password"}


def test_a_log_in_through_the_api_names_its_new_token(app: Flask) -> None:
    auth = browser(app)
    auth.register()
    token = issue_token(auth.client)
    event = only(app, security_log.LOGGED_IN)
    assert_event(event, user_id=user_id(app), api_key_id=token_id(app, token))
    assert details(event) == {"method": "password"}


def test_a_wrong_password_is_logged_for_an_account_that_exists_only(app: Flask) -> None:
    auth = browser(app)
    auth.register()
    owner = user_id(app)
    assert auth.login(password="not the password").status_code == 200  # the form again
    refused = auth.client.post("/api/v1/tokens", json={"username": "张三", "password": "nope"})
    assert refused.status_code == 401
    failures = events(app, security_log.LOGIN_FAILED)
    assert len(failures) == 2
    for event in failures:
        assert_event(event, user_id=owner)
    before = events(app)

    assert auth.login("nobody", "not the password").status_code == 200
    unknown = auth.client.post("/api/v1/tokens", json={"username": "nobody", "password": "x"})
    assert unknown.status_code == 401
    assert events(app) == before, "an unknown username leaves no trace"


def test_logging_out_names_the_session_or_the_token_it_ends(app: Flask) -> None:
    auth = browser(app)
    auth.register()
    auth.login()
    owner = user_id(app)
    [session_id] = session_ids(app, owner)
    token = issue_token(auth.client)
    ended_token = token_id(app, token)

    assert auth.logout().status_code == 302
    revoked = auth.client.delete("/api/v1/tokens", headers=bearer(token))
    assert revoked.status_code == 204

    by_form, by_api = events(app, security_log.LOGGED_OUT)
    assert_event(by_form, user_id=owner, session_id=session_id)
    assert_event(by_api, user_id=owner, api_key_id=ended_token)


def test_logging_out_everywhere_is_one_event_of_the_session_that_asked(app: Flask) -> None:
    auth = browser(app)
    auth.register()
    auth.login()
    issue_token(auth.client)
    owner = user_id(app)
    [session_id] = session_ids(app, owner)
    assert post_form(auth, "/logout/everywhere", "/account").status_code == 302
    assert_event(
        only(app, security_log.LOGGED_OUT_EVERYWHERE), user_id=owner, session_id=session_id
    )
    assert events(app, security_log.LOGGED_OUT) == []  # its own session ended with the others


# --- passwords ----------------------------------------------------------------------------------


def test_the_owners_password_change_is_logged_once_it_is_made(app: Flask) -> None:
    auth = browser(app)
    auth.register()
    auth.login()
    owner = user_id(app)
    [session_id] = session_ids(app, owner)
    fields = {"password": NEW_PASSWORD, "confirm": NEW_PASSWORD}
    wrong = post_form(
        auth, "/account/password", "/account/password", current_password="wrong", **fields
    )
    assert wrong.status_code == 422
    assert events(app, security_log.PASSWORD_CHANGED) == []
    guess = only(app, security_log.LOGIN_FAILED)  # a wrong current password counts as one
    assert_event(guess, user_id=owner, session_id=session_id)

    done = post_form(
        auth, "/account/password", "/account/password", current_password=PASSWORD, **fields
    )
    assert done.status_code == 302
    event = only(app, security_log.PASSWORD_CHANGED)
    assert_event(event, user_id=owner, session_id=session_id)  # the session it was made in

    token = issue_token(auth.client, password=NEW_PASSWORD)
    changed = auth.client.patch(
        "/api/v1/users/me",
        json={"current_password": NEW_PASSWORD, "password": PASSWORD},
        headers=bearer(token),
    )
    assert changed.status_code == 200
    _, by_api = events(app, security_log.PASSWORD_CHANGED)
    assert_event(by_api, user_id=owner, api_key_id=token_id(app, token))


def test_a_password_reset_through_the_mailed_link_is_logged(mailbox: Mailbox) -> None:
    app = mailbox.app
    client = browser(app).client
    body = {"username": "张三", "password": PASSWORD, "email": ADDRESS}
    assert client.post("/api/v1/users", json=body).status_code == 201
    mailbox.new_mail()  # the verification link
    assert client.post("/api/v1/password-reset", json={"email": ADDRESS}).status_code == 202
    link = token_in(mailbox.only(ADDRESS), "/password/reset")
    assert events(app, security_log.PASSWORD_RESET) == []  # asking for a link changes nothing

    done = client.post(
        "/api/v1/password-reset/complete", json={"token": link, "password": NEW_PASSWORD}
    )
    assert done.status_code == 204
    assert_event(only(app, security_log.PASSWORD_RESET), user_id=user_id(app))


# --- addresses ----------------------------------------------------------------------------------


def test_changes_of_address_are_logged_when_they_take_effect(mailbox: Mailbox) -> None:
    app = mailbox.app
    client = browser(app).client
    assert (
        client.post("/api/v1/users", json={"username": "张三", "password": PASSWORD}).status_code
        == 201
    )
    owner = user_id(app)
    token = issue_token(client)
    headers = bearer(token)

    first = client.patch("/api/v1/users/me", json={"email": ADDRESS}, headers=headers)
    assert first.status_code == 200  # a first address is the account's at once
    added = only(app, security_log.EMAIL_CHANGED)
    assert_event(added, user_id=owner, api_key_id=token_id(app, token))
    mailbox.new_mail()

    new_address = "new@example.com"
    asked = client.patch("/api/v1/users/me", json={"email": new_address}, headers=headers)
    assert asked.status_code == 200
    assert len(events(app, security_log.EMAIL_CHANGED)) == 1, "pending until confirmed"
    mails = {mail.rcpt_tos[0]: mail.message for mail in mailbox.new_mail(2)}
    link = token_in(mails[new_address], "/email/change/confirm")
    assert client.post("/api/v1/email-change/confirm", json={"token": link}).status_code == 200
    _, confirmed = events(app, security_log.EMAIL_CHANGED)
    assert_event(confirmed, user_id=owner)  # the link's page: no session, no token

    removed = client.patch("/api/v1/users/me", json={"email": None}, headers=headers)
    assert removed.status_code == 200
    *_, gone = events(app, security_log.EMAIL_CHANGED)
    assert_event(gone, user_id=owner, api_key_id=token_id(app, token))
    assert details(gone) == {"removed": True}


# --- locked by strangers, unlocked by the owner -------------------------------------------------


@pytest.fixture
def limited_app(build_app: AppBuilder, database_url: str) -> Flask:
    """Limits on, two wrong passwords from strangers lock an account (in this app's memory)."""
    return build_app(
        database_url,
        RATELIMIT_ENABLED=True,
        RATELIMIT_STORAGE_URI="memory://",
        USERHUB_RATELIMIT_ACCOUNT="2 per hour",
    )


def test_a_lock_by_strangers_and_the_owners_unlock_are_logged(limited_app: Flask) -> None:
    app = limited_app
    with app.app_context():
        owner = users.register_user("张三", PASSWORD).id
    stranger = browser(app, ADMIN_IP, CURL).client
    for _ in range(2):
        wrong = stranger.post("/api/v1/tokens", json={"username": "张三", "password": "guess"})
        assert wrong.status_code == 401
    assert (
        stranger.post("/api/v1/tokens", json={"username": "张三", "password": "guess"}).status_code
        == 429
    )
    locked = only(app, security_log.ACCOUNT_LOCKED)
    assert_event(locked, user_id=owner, ip=ADMIN_IP, user_agent=CURL_SUMMARY)  # the stranger's
    assert len(events(app, security_log.LOGIN_FAILED)) == 2  # the refused third was no attempt

    with app.app_context():  # the link the lock mail carries to an owner with an address
        user = users.get_user(owner)
        assert user is not None
        link = email_links.make(user, email_links.UNLOCK)
        db.session.commit()
    client = browser(app).client
    assert client.post("/api/v1/unlock", json={"token": link}).status_code == 204
    assert_event(only(app, security_log.ACCOUNT_UNLOCKED), user_id=owner)
    assert issue_token(client)  # and the owner gets in


# --- an administrator's changes -----------------------------------------------------------------


def test_an_administrators_changes_name_the_administrator(app: Flask) -> None:
    auth = browser(app)
    auth.register()
    owner = user_id(app)
    admin, admin_id, admin_token = admin_client(app)
    headers = bearer(admin_token)
    admin_token_id = token_id(app, admin_token)
    by_admin: dict[str, Any] = {
        "actor_id": admin_id,
        "api_key_id": admin_token_id,
        "ip": ADMIN_IP,
        "user_agent": CURL_SUMMARY,
    }

    profile = admin.patch(
        f"/api/v1/users/{owner}", json={"display_name": "Zhang San"}, headers=headers
    )
    assert profile.status_code == 200
    updated = only(app, security_log.ACCOUNT_UPDATED)
    assert_event(updated, user_id=owner, **by_admin)
    assert details(updated) == {"fields": ["display_name"]}

    password = admin.patch(
        f"/api/v1/users/{owner}", json={"password": NEW_PASSWORD}, headers=headers
    )
    assert password.status_code == 200
    assert_event(only(app, security_log.PASSWORD_CHANGED), user_id=owner, **by_admin)
    assert len(events(app, security_log.ACCOUNT_UPDATED)) == 1  # a password is not a profile field

    address = admin.patch(f"/api/v1/users/{owner}", json={"email": ADDRESS}, headers=headers)
    assert address.status_code == 200
    assert_event(only(app, security_log.EMAIL_CHANGED), user_id=owner, **by_admin)

    promoted = admin.patch(f"/api/v1/users/{owner}", json={"is_admin": True}, headers=headers)
    assert promoted.status_code == 200
    _, promotion = events(app, security_log.ACCOUNT_UPDATED)
    assert_event(promotion, user_id=owner, **by_admin)
    assert details(promotion) == {"fields": ["is_admin"]}

    assert admin.delete(f"/api/v1/users/{owner}", headers=headers).status_code == 204
    deleted = only(app, security_log.ACCOUNT_DELETED)
    assert_event(deleted, user_id=owner, **by_admin)
    assert details(deleted) == {}, "the account is named by its id only"
    # The account's own log went with it; what its administrator did elsewhere stays.
    assert [event["user_id"] for event in events(app, security_log.REGISTERED)] == [admin_id]


# --- API keys and sessions, through the services (no routes yet) --------------------------------


FROM_THE_BROWSER = {"REMOTE_ADDR": IP, "HTTP_USER_AGENT": FIREFOX}


def test_api_keys_made_and_revoked_are_logged(app: Flask) -> None:
    with app.test_request_context("/", environ_base=FROM_THE_BROWSER):
        owner = users.register_user("张三", PASSWORD)
        admin = users.register_user("admin", PASSWORD, is_admin=True)
        owner_id, admin_id = owner.id, admin.id
        first = api_keys.create(owner, "backup script", [api_keys.READ]).row.id
        second = api_keys.create(owner, "deploy", [api_keys.WRITE, api_keys.READ]).row.id
        assert api_keys.revoke(owner, first)
        assert api_keys.revoke(owner, second, by=admin)
        assert not api_keys.revoke(owner, second)  # gone: nothing to revoke, nothing logged

    made = events(app, security_log.API_KEY_CREATED)
    assert [details(e) for e in made] == [
        {"key_id": first, "name": "backup script", "scopes": ["read"]},
        {"key_id": second, "name": "deploy", "scopes": ["read", "write"]},
    ]
    for event in made:
        assert_event(event, user_id=owner_id)
    by_owner, by_admin = events(app, security_log.API_KEY_REVOKED)
    assert_event(by_owner, user_id=owner_id)
    assert details(by_owner) == {"key_id": first, "name": "backup script"}
    assert_event(by_admin, user_id=owner_id, actor_id=admin_id)
    assert details(by_admin) == {"key_id": second, "name": "deploy"}


def test_ending_one_session_from_another_is_logged(app: Flask) -> None:
    here, there = browser(app), browser(app, ADMIN_IP, CURL)
    here.register()
    here.login()
    there.login()  # no address: a new device mails nobody
    owner = user_id(app)
    mine, other = session_ids(app, owner)
    with app.test_request_context("/", environ_base=FROM_THE_BROWSER):
        admin = users.register_user("admin", PASSWORD, is_admin=True)
        admin_id = admin.id
        user = users.get_user(owner)
        assert user is not None
        assert sessions.end(user, other)
        assert not sessions.end(user, other)  # ended already: nothing logged
        assert sessions.end(user, mine, by=admin)
    by_owner, by_admin = events(app, security_log.SESSION_ENDED)
    assert_event(by_owner, user_id=owner)
    assert details(by_owner) == {"ended_session_id": other}
    assert_event(by_admin, user_id=owner, actor_id=admin_id)
    assert details(by_admin) == {"ended_session_id": mine}
    assert session_ids(app, owner) == []
    assert not is_logged_in(here.client) and not is_logged_in(there.client)
