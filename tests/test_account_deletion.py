"""Deleting your own account: asked for on the account page or with ``DELETE
/api/v1/users/me``, refused log-ins meanwhile, kept from the log-in form, with
``"cancel_deletion": true`` or with the mailed link, and the purge when the grace period is
over, which leaves nothing of the person in any table. On SQLite and MariaDB; the mail is read
from a real SMTP server.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pyotp
import pytest
import sqlalchemy as sa
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
    new_api_key,
)
from tests.mail_support import Mailbox, MailboxBuilder, link_to, text_of
from tests.webauthn_support import SoftAuthenticator
from userhub.extensions import db
from userhub.models import AuthChallenge, SecurityEvent, User
from userhub.services import (
    account_deletion,
    housekeeping,
    passkeys,
    security_log,
    totp,
    users,
)
from userhub.services.user_agents import summarise

ORIGIN = "http://localhost:5000"
ADDRESS = "ivy@example.com"
TOKENS = "/api/v1/tokens"
ME = "/api/v1/users/me"
GRACE = timedelta(days=14)  # USERHUB_DELETION_GRACE_DAYS's default
KEEP_BUTTON = "Keep my account"


@pytest.fixture
def mailbox(build_mailbox: MailboxBuilder) -> Mailbox:
    """An app whose mail goes to an SMTP sink, with passkeys for ``ORIGIN``."""
    return build_mailbox(USERHUB_PUBLIC_URL=ORIGIN)


@pytest.fixture
def app(mailbox: Mailbox) -> Flask:
    return mailbox.app


def log_in(client: FlaskClient, username: str = "张三", password: str = PASSWORD) -> Any:
    return AuthActions(client).login(username, password)


def asked_on_the_page(client: FlaskClient) -> Any:
    """The logged-in browser asks for its account's deletion, from the account page's link."""
    account = client.get("/account").get_data(as_text=True)
    assert 'href="/account/delete"' in account
    page = client.get("/account/delete")
    assert page.status_code == 200
    return client.post("/account/delete", data={"csrf_token": csrf_token(page.text)})


def events(app: Flask, kind: str) -> list[SecurityEvent]:
    with app.app_context():
        return list(db.session.scalars(sa.select(SecurityEvent).where(SecurityEvent.type == kind)))


def due_of(app: Flask, username: str = "张三") -> datetime | None:
    with app.app_context():
        user = users.find_user(username)
        assert user is not None
        return user.deletion_due_at


# --- asking, refusing, keeping ------------------------------------------------------------------


def test_delete_on_the_page_then_keep_the_account_from_the_log_in_form(mailbox: Mailbox) -> None:
    app, browser = mailbox.app, mailbox.app.test_client()
    AuthActions(browser).register(email=ADDRESS)
    mailbox.only(ADDRESS)  # the verification link
    assert log_in(browser).status_code == 302
    now = datetime.now(UTC).replace(microsecond=0)
    with time_machine.travel(now, tick=False):
        asked = asked_on_the_page(browser)
    due = now.replace(tzinfo=None) + GRACE
    assert asked.status_code == 302 and asked.location == "/"
    home = browser.get("/").get_data(as_text=True)
    assert f"deleted for good on {due:%Y-%m-%d %H:%M} UTC" in home
    assert f"We mailed you a link that keeps it as well: {ADDRESS}." in home
    assert not is_logged_in(browser, "/account")
    notice = mailbox.only(ADDRESS)
    assert notice["Subject"] == "Your account will be deleted"
    assert f"{due:%Y-%m-%d %H:%M} UTC" in text_of(notice)
    mailed_link = link_to(notice, "/email/cancel-deletion")

    wrong = log_in(browser, password="not the password")
    assert wrong.status_code == 200 and "Invalid username or password." in wrong.text
    assert KEEP_BUTTON not in wrong.text and "deleted" not in wrong.text  # nothing told
    refused = log_in(browser)
    assert refused.status_code == 403
    assert f"to be deleted for good on {due:%Y-%m-%d %H:%M} UTC" in refused.text
    assert KEEP_BUTTON in refused.text
    keep = {"csrf_token": csrf_token(refused.text)}
    kept = browser.post("/account/cancel-deletion", data=keep)
    assert kept.status_code == 302 and kept.location == "/login"
    assert "Your account is kept. Log in." in browser.get("/login").text
    assert not is_logged_in(browser, "/account")  # keeping it logged nobody in
    again = browser.post("/account/cancel-deletion", data=keep)  # the proof was used
    assert "That took too long" in browser.get(again.location).text

    assert due_of(app) is None
    assert log_in(browser).status_code == 302 and is_logged_in(browser, "/account")
    dead = browser.get(mailed_link)
    assert dead.status_code == 400 and "This link cannot be used" in dead.text
    assert [event.details for event in events(app, security_log.DELETION_REQUESTED)] == [
        f'{{"due": "{due.isoformat()}Z"}}'
    ]
    assert len(events(app, security_log.DELETION_CANCELLED)) == 1


def test_delete_with_the_api_then_keep_it_with_cancel_deletion(
    client: FlaskClient, api: ApiActions, member: Account
) -> None:
    key = new_api_key(client, member.headers, "read", "write")["key"]
    deleted = client.delete(ME, headers=member.headers)
    assert deleted.status_code == 202
    answer = deleted.get_json()
    assert set(answer) == {"deletion_due_at", "detail"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", answer["deletion_due_at"])
    assert "cancel_deletion" in answer["detail"]
    for gone in (member.token, key):  # this token, and every other one and every key
        assert_problem(client.get(ME, headers=bearer(gone)), 401)

    credentials = {"username": "member", "password": PASSWORD}
    refused = assert_problem(client.post(TOKENS, json=credentials), 403)
    assert refused["type"] == "/problems/account-pending-deletion"
    wrong = {"username": "member", "password": "not the password", "cancel_deletion": True}
    assert assert_problem(client.post(TOKENS, json=wrong), 401)["type"] == (
        "/problems/bad-credentials"
    )
    assert_problem(client.post(TOKENS, json=credentials), 403)  # a wrong password kept nothing
    bad = assert_problem(client.post(TOKENS, json={**credentials, "cancel_deletion": "yes"}), 422)
    assert "cancel_deletion" in {error["field"] for error in bad["errors"]}

    kept = client.post(TOKENS, json={**credentials, "cancel_deletion": True})
    assert kept.status_code == 201
    assert client.get(ME, headers=bearer(kept.get_json()["token"])).status_code == 200
    assert client.post(TOKENS, json=credentials).status_code == 201


def test_keeping_an_account_with_a_second_factor_still_asks_for_it(
    app: Flask, client: FlaskClient, member: Account
) -> None:
    with app.app_context():
        user = users.find_user("member")
        assert user is not None
        secret = totp.begin(user).secret
        totp.confirm(user, pyotp.TOTP(secret).now())
    assert client.delete(ME, headers=member.headers).status_code == 202
    credentials = {"username": "member", "password": PASSWORD, "cancel_deletion": True}
    second = assert_problem(client.post(TOKENS, json=credentials), 401)
    assert second["type"] == "/problems/mfa-required"  # kept, and the log-in goes on as usual
    assert due_of(app, "member") is None


def test_the_mailed_link_keeps_the_account(mailbox: Mailbox) -> None:
    client = mailbox.app.test_client()
    created = client.post(
        "/api/v1/users", json={"username": "张三", "password": PASSWORD, "email": ADDRESS}
    )
    assert created.status_code == 201
    mailbox.only(ADDRESS)
    token = client.post(TOKENS, json={"username": "张三", "password": PASSWORD}).get_json()
    assert client.delete(ME, headers=bearer(token["token"])).status_code == 202
    link = link_to(mailbox.only(ADDRESS), "/email/cancel-deletion")
    page = client.get(link)
    assert page.status_code == 200 and KEEP_BUTTON in page.text
    assert due_of(mailbox.app) is not None  # a mail scanner's GET keeps nothing
    kept = client.post(link, data={"csrf_token": csrf_token(page.text)})
    assert kept.status_code == 302 and kept.location == "/login"
    assert "Your account is kept. Log in." in client.get("/login").text
    assert due_of(mailbox.app) is None
    assert client.post(TOKENS, json={"username": "张三", "password": PASSWORD}).status_code == 201
    assert client.get(link).status_code == 400  # used


def test_asking_needs_a_recent_proof_and_a_key_that_may_write(
    app: Flask, client: FlaskClient, member: Account
) -> None:
    read_key = new_api_key(client, member.headers, "read")["key"]
    refused = assert_problem(client.delete(ME, headers=bearer(read_key)), 403)
    assert refused["type"] == "/problems/insufficient-scope"
    browser = app.test_client()
    assert log_in(browser, "member").status_code == 302
    later = datetime.now(UTC) + timedelta(
        seconds=app.config["USERHUB_REAUTHENTICATION_SECONDS"] + 5
    )
    with time_machine.travel(later):
        stale = assert_problem(client.delete(ME, headers=member.headers), 401)
        assert stale["type"] == "/problems/reauthentication-required"
        asked = browser.get("/account/delete")
        assert asked.status_code == 302
        assert asked.location.startswith("/account/reauthenticate?next=/account/delete")
    no_csrf = browser.post("/account/delete", data={})
    assert no_csrf.status_code == 400
    assert due_of(app, "member") is None


# --- the purge ----------------------------------------------------------------------------------

DOOMED = "Ivy_Doomed"  # the key, "ivy_doomed", differs from the name
DOOMED_ADDRESS = "ivy.doomed@example.com"
DOOMED_NEW_ADDRESS = "ivy.elsewhere@example.com"
DOOMED_IP = "198.51.100.23"
DOOMED_BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
DOOMED_ENVIRON = {"REMOTE_ADDR": DOOMED_IP, "HTTP_USER_AGENT": DOOMED_BROWSER}
USER_ID_COLUMNS = ("user_id", "actor_id")


@dataclass(frozen=True)
class Trace:
    """A cell of some table that holds something of the person."""

    table: str
    row: dict[str, Any]
    column: str


def traces(app: Flask, user_id: int) -> list[Trace]:
    """Every cell of every table (as the database lists them) holding the person's username,
    its key, their addresses, IP or browser, or their id in a column that names an account."""
    needles = [
        DOOMED,
        DOOMED.casefold(),
        DOOMED_ADDRESS,
        DOOMED_NEW_ADDRESS,
        DOOMED_IP,
        summarise(DOOMED_BROWSER) or "",
    ]
    found = []
    with app.app_context():
        engine = db.engine
        for table_name in sa.inspect(engine).get_table_names():
            table = sa.Table(table_name, sa.MetaData(), autoload_with=engine)
            with engine.connect() as connection:
                rows = [dict(row) for row in connection.execute(sa.select(table)).mappings()]
            for row in rows:
                for column, value in row.items():
                    if _holds(table_name, column, value, user_id, needles):
                        found.append(Trace(table_name, row, column))
    return found


def _holds(table: str, column: str, value: Any, user_id: int, needles: list[str]) -> bool:
    if isinstance(value, str):
        return any(needle in value for needle in needles)
    if isinstance(value, bytes):
        return any(needle.encode() in value for needle in needles)
    names_an_account = column in USER_ID_COLUMNS or (table == "user" and column == "id")
    return names_an_account and value == user_id


def acted_as_their_admin(trace: Trace) -> bool:
    """An event of another account in which the person acted as its administrator."""
    return trace.table == "security_event" and trace.column == "actor_id"


def the_deletion_event(trace: Trace) -> bool:
    row = trace.row
    return (
        trace.table == "security_event"
        and row["type"] == security_log.ACCOUNT_DELETED
        and trace.column == "user_id"
    )


def rich_account(mailbox: Mailbox) -> int:
    """An administrator with everything an account can have, made from one browser and IP:
    sessions, a log-in token and a key, an authenticator app and recovery codes, a passkey, a
    log-in waiting for its second step, links and mail (sent and waiting) to a current and a
    new address, its own events, and a change to another account in that account's log."""
    app = mailbox.app
    with app.test_request_context("/", environ_base=DOOMED_ENVIRON):
        doomed = users.register_user(DOOMED, PASSWORD, email=DOOMED_ADDRESS, is_admin=True)
        user_id = doomed.id
    with app.app_context():
        other_id = users.register_user("other", PASSWORD, email="other@example.com").id
    mailbox.new_mail(2)  # sent: the rows keep their recipients
    browser = app.test_client()
    browser.environ_base.update(DOOMED_ENVIRON)
    assert log_in(browser, DOOMED).status_code == 302  # a session
    client = app.test_client()
    client.environ_base.update(DOOMED_ENVIRON)
    created = client.post(
        TOKENS,
        json={"username": DOOMED, "password": PASSWORD},
        headers={"Idempotency-Key": "b6f1c1de-doomed"},
    )
    headers = bearer(created.get_json()["token"])
    new_api_key(client, headers, "read", "write", name="Ivy's backup")
    changed = client.patch(f"/api/v1/users/{other_id}", json={"display_name": "O"}, headers=headers)
    assert changed.status_code == 200
    assert client.patch(ME, json={"email": DOOMED_NEW_ADDRESS}, headers=headers).status_code == 200
    with app.test_request_context("/", environ_base=DOOMED_ENVIRON):
        user = db.session.get(User, user_id)
        assert user is not None
        totp.confirm(user, pyotp.TOTP(totp.begin(user).secret).now())
        key, options = passkeys.registration_options(user)
        passkeys.register(user, key, SoftAuthenticator(ORIGIN).create(options), "Ivy's phone")
    assert log_in(client, DOOMED).status_code == 302  # to its second step: a challenge
    return user_id


def test_after_the_grace_period_nothing_of_the_person_is_left(mailbox: Mailbox) -> None:
    app = mailbox.app
    user_id = rich_account(mailbox)
    assert {trace.table for trace in traces(app, user_id)} >= {
        "user",
        "user_session",
        "api_token",
        "totp_factor",
        "recovery_code",
        "passkey",
        "auth_challenge",
        "email_link",
        "mail_outbox",
        "security_event",
    }
    with app.test_request_context("/", environ_base=DOOMED_ENVIRON):
        user = db.session.get(User, user_id)
        assert user is not None
        account_deletion.request(user)
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(AuthChallenge)) == 0
    with time_machine.travel(datetime.now(UTC) + GRACE + timedelta(minutes=1)):
        result = app.test_cli_runner().invoke(args=["prune"])
    assert result.exit_code == 0, result.output
    assert "accounts deleted after their grace period: 1\n" in result.output

    left = traces(app, user_id)
    [deleted] = [trace for trace in left if the_deletion_event(trace)]
    assert {key: deleted.row[key] for key in ("actor_id", "ip", "user_agent", "details")} == {
        "actor_id": None,
        "ip": None,
        "user_agent": None,
        "details": None,
    }
    [acted] = [trace for trace in left if acted_as_their_admin(trace)]
    assert acted.row["type"] == security_log.ACCOUNT_UPDATED and acted.row["ip"] is None
    assert acted.row["user_agent"] is None and acted.row["user_id"] != user_id
    assert [trace for trace in left if trace not in (deleted, acted)] == []
    with app.app_context():
        assert users.find_user("other") is not None  # nobody else's account went


def test_an_account_not_yet_due_survives_housekeeping(app: Flask, member: Account) -> None:
    with app.app_context():
        user = users.find_user("member")
        assert user is not None
        due = account_deletion.request(user)
        assert account_deletion.purge(user.id, only_if_due=True) is False
    with time_machine.travel(due.replace(tzinfo=UTC) - timedelta(minutes=1)), app.app_context():
        assert housekeeping.prune_all().deleted_accounts == 0
        assert users.find_user("member") is not None
    with time_machine.travel(due.replace(tzinfo=UTC) + timedelta(minutes=1)), app.app_context():
        assert housekeeping.prune_all().deleted_accounts == 1
        assert users.find_user("member") is None
        assert housekeeping.prune_all().deleted_accounts == 0


def test_two_purges_at_once_delete_the_account_once(app: Flask, member: Account) -> None:
    start = threading.Barrier(2)
    results: list[bool] = []

    def purge() -> None:
        with app.app_context():
            start.wait()
            results.append(account_deletion.purge(member.id))

    workers = [threading.Thread(target=purge) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert sorted(results) == [False, True]
    assert [event.user_id for event in events(app, security_log.ACCOUNT_DELETED)] == [member.id]
    with app.app_context():
        assert users.find_user("member") is None


def test_nothing_keeps_an_account_once_purged(mailbox: Mailbox) -> None:
    app, browser = mailbox.app, mailbox.app.test_client()
    AuthActions(browser).register(email=ADDRESS)
    mailbox.only(ADDRESS)
    assert log_in(browser).status_code == 302
    asked_on_the_page(browser)
    link = link_to(mailbox.only(ADDRESS), "/email/cancel-deletion")
    refused = log_in(browser)
    assert refused.status_code == 403
    with time_machine.travel(datetime.now(UTC) + GRACE + timedelta(minutes=1)), app.app_context():
        assert account_deletion.purge_due() == 1
    dead = browser.get(link)
    assert dead.status_code == 400 and "This link cannot be used" in dead.text
    gone = browser.post("/account/cancel-deletion", data={"csrf_token": csrf_token(refused.text)})
    assert "That took too long" in browser.get(gone.location).text
    credentials = {"username": "张三", "password": PASSWORD, "cancel_deletion": True}
    assert browser.post(TOKENS, json=credentials).status_code == 401
