"""An account's data export (issue 22): ``GET /api/v1/users/me/export`` and the account page's
"Download my data" (``POST /account/export``, a ZIP).

One account is given one record of every kind userhub keeps (a session logged in through the
form, a log-in token, a named key, mailed links and their mails with a change of address, a
confirmed authenticator app and its recovery codes, a passkey, and the events of all that), and
so is a second account. The export must hold each of the first's records, none of the second's,
and none of the first's secrets in any form; the page's ZIP must hold the API's document. The
per-account limit is shared by the two ways, in the limits' default storage and in Redis.
"""

from __future__ import annotations

import base64
import email
import email.policy
import hashlib
import io
import json
import re
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pyotp
import pytest
import redis
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from itsdangerous import URLSafeSerializer
from werkzeug.test import TestResponse

from tests.helpers import (
    PASSWORD,
    PROBLEM_MIMETYPE,
    REDIS_URL,
    AppBuilder,
    assert_problem,
    bearer,
    browser_of,
    csrf_token,
    needs_redis,
)
from tests.webauthn_support import SoftAuthenticator
from userhub.extensions import db
from userhub.models import (
    ApiToken,
    BrowserSession,
    EmailLink,
    OutboxMessage,
    Passkey,
    RecoveryCode,
    SecurityEvent,
    TotpFactor,
    User,
)
from userhub.services import api_keys, passkeys, security_log, totp, users

EXPORT = "/api/v1/users/me/export"
PAGE_EXPORT = "/account/export"
ORIGIN = "http://localhost:5000"
MINE, THEIRS = "张三", "lisi"
SECTIONS = {
    "format",
    "exported_at",
    "profile",
    "email_history",
    "sessions",
    "api_keys",
    "tokens",
    "security_events",
    "second_factors",
}


@pytest.fixture
def app(build_app: AppBuilder, database_url: str) -> Flask:
    return build_app(database_url, USERHUB_PUBLIC_URL=ORIGIN)


@dataclass
class Holder:
    """An account with one record of every kind, the browser logged in to it, and its
    secrets (to look for in the export)."""

    id: int
    username: str
    browser: FlaskClient
    token: str
    key: str
    key_name: str
    passkey_name: str
    addresses: list[str]
    secrets: dict[str, str] = field(default_factory=dict)


def session_key(browser: FlaskClient) -> str:
    """The session key the browser's (signed, not encrypted) session cookie carries."""
    cookie = browser.get_cookie("session")
    assert cookie is not None
    payload = cookie.value.rsplit(".", 2)[0]
    key: str = URLSafeSerializer("not needed to read").load_payload(payload.encode())["_user_id"]
    return key


def encodings(name: str, raw: bytes) -> dict[str, str]:
    """Bytes as an export could spell them: hex, base64, base64url, the bytes' repr."""
    return {
        raw.hex(): f"{name} (hex)",
        base64.b64encode(raw).decode(): f"{name} (base64)",
        base64.urlsafe_b64encode(raw).decode().rstrip("="): f"{name} (base64url)",
        repr(raw)[2:-1]: f"{name} (bytes)",
    }


def mailed_tokens(rows: list[OutboxMessage]) -> set[str]:
    """The link tokens the outbox's mails carry (43 characters of base64url)."""
    found: set[str] = set()
    for row in rows:
        assert row.message is not None
        message = email.message_from_bytes(row.message, policy=email.policy.default)
        text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        found |= set(re.findall(r"(?<![\w-])[\w-]{43}(?![\w-])", text))
    return found


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def give_everything(app: Flask, username: str, address: str) -> Holder:
    """An account with a record of every kind, made through the log-in form, the token
    operation and the services (as the pages and the API would): logged in first, as a
    second factor would then ask for a second step."""
    new_address, pending = f"new-{address}", f"later-{address}"
    with app.test_request_context():
        user = users.register_user(username, PASSWORD, email=address)
        users.update_user(user, {"email": None})  # removed: an event and a mail with an undo link
        users.update_user(user, {"email": new_address})  # a first address again: verify it
        users.update_user(user, {"email": pending})  # a change waiting for its link
        user_id = user.id
    browser = browser_of(app, username, user_agent="Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0")
    token = browser.post("/api/v1/tokens", json={"username": username, "password": PASSWORD})
    assert token.status_code == 201, token.get_data(as_text=True)
    with app.test_request_context():
        again = db.session.get(User, user_id)
        assert again is not None
        user = again
        key = api_keys.create(user, f"backup of {username}", [api_keys.READ])
        enrolment = totp.begin(user)
        codes = totp.confirm(user, pyotp.TOTP(enrolment.secret).now())
        options_key, options = passkeys.registration_options(user)
        passkey = passkeys.register(
            user, options_key, SoftAuthenticator(ORIGIN).create(options), f"laptop of {username}"
        )
        key_name, passkey_name = str(key.row.name), passkey.name
    holder = Holder(
        id=user_id,
        username=username,
        browser=browser,
        token=token.get_json()["token"],
        key=key.secret,
        key_name=key_name,
        passkey_name=passkey_name,
        addresses=[address, new_address, pending],
    )
    with app.app_context():
        collect_secrets(holder, enrolment.secret, codes)
    return holder


def collect_secrets(holder: Holder, totp_secret: str, codes: list[str]) -> None:
    """Every secret of the account, and every hash or digest of one, as the database holds
    them (needs an app context)."""
    user = db.session.get(User, holder.id)
    assert user is not None and user.passkey_handle
    found = holder.secrets
    found[PASSWORD] = "the password"
    found[user.password_hash] = "the password hash"
    found[user.passkey_handle] = "the passkey handle"
    for secret, name in [(holder.token, "the log-in token"), (holder.key, "the API key")]:
        found[secret] = name
        found[secret.removeprefix("uh_")] = f"{name} without its prefix"
        found[sha256(secret)] = f"the SHA-256 of {name}"
    found[session_key(holder.browser)] = "the session key"
    for row in db.session.scalars(sa.select(BrowserSession).filter_by(user_id=holder.id)):
        found[row.key_hash] = "a session key's SHA-256"
    for row in db.session.scalars(sa.select(ApiToken).filter_by(user_id=holder.id)):
        found[row.token_hash] = "a token's SHA-256"
    found[totp_secret] = "the TOTP secret (base32)"
    found.update(encodings("the TOTP secret", base64.b32decode(totp_secret)))
    factor = db.session.get(TotpFactor, holder.id)
    assert factor is not None
    found.update(encodings("the sealed TOTP secret", factor.secret))
    for code in codes:
        found[code] = found[code.replace("-", "")] = "a recovery code"
    for row in db.session.scalars(sa.select(RecoveryCode).filter_by(user_id=holder.id)):
        found[row.code_hash] = "a recovery code's digest"
    for row in db.session.scalars(sa.select(Passkey).filter_by(user_id=holder.id)):
        found.update(encodings("the passkey's credential id", row.credential_id))
        found.update(encodings("the passkey's public key", row.public_key))
        found[row.credential_key] = "the passkey's credential key"
    links = list(db.session.scalars(sa.select(EmailLink).filter_by(user_id=holder.id)))
    for row in links:
        found[row.token_hash] = "a mailed link's SHA-256"
        if row.password_stamp:
            found[row.password_stamp] = "a reset link's password stamp"
    mails = db.session.scalars(
        sa.select(OutboxMessage).where(OutboxMessage.recipient.in_(holder.addresses))
    )
    tokens = mailed_tokens(list(mails))
    assert {sha256(token) for token in tokens} >= {row.token_hash for row in links}
    found.update({token: "a mailed link's token" for token in tokens})


@pytest.fixture
def mine(app: Flask) -> Holder:
    return give_everything(app, MINE, "zhangsan@example.com")


@pytest.fixture
def theirs(app: Flask) -> Holder:
    return give_everything(app, THEIRS, "lisi@example.com")


def api_export(client: FlaskClient, headers: dict[str, str] | None = None) -> dict[str, Any]:
    response = client.get(EXPORT, headers=headers or {})
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    assert response.headers["Cache-Control"] == "no-store"
    exported: dict[str, Any] = response.get_json()
    return exported


def page_export(browser: FlaskClient) -> TestResponse:
    token = csrf_token(browser.get("/account").get_data(as_text=True))
    return browser.post(PAGE_EXPORT, data={"csrf_token": token})


def zip_document(response: TestResponse) -> tuple[dict[str, Any], str, str]:
    """The ZIP's JSON document, its text, and the README's text."""
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    assert response.mimetype == "application/zip"
    assert response.headers["Cache-Control"] == "no-store"
    with zipfile.ZipFile(io.BytesIO(response.get_data())) as archive:
        assert sorted(archive.namelist()) == ["README.txt", "userhub-export.json"]
        assert {i.compress_type for i in archive.infolist()} == {zipfile.ZIP_DEFLATED}
        text = archive.read("userhub-export.json").decode("utf-8")
        readme = archive.read("README.txt").decode("utf-8")
    return json.loads(text), text, readme


def ids(rows: list[dict[str, Any]]) -> set[int]:
    return {row["id"] for row in rows}


def table_ids(model: Any, *conditions: Any) -> set[int]:
    return set(db.session.scalars(sa.select(model.id).where(*conditions)))


def without_exports(exported: dict[str, Any]) -> dict[str, Any]:
    """The document less what an export itself changes: its time and its own events."""
    events = [e for e in exported["security_events"] if e["type"] != security_log.DATA_EXPORTED]
    return {**exported, "exported_at": None, "security_events": events}


# --- What the export holds ---------------------------------------------------------------------


def test_the_export_holds_every_record_of_the_account(
    app: Flask, mine: Holder, theirs: Holder
) -> None:
    exported = api_export(mine.browser, bearer(mine.token))
    assert set(exported) == SECTIONS and exported["format"] == "userhub-export/1"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", exported["exported_at"])
    profile = exported["profile"]
    assert (profile["id"], profile["username"]) == (mine.id, MINE)
    assert profile["email"] == mine.addresses[1] and profile["pending_email"] == mine.addresses[2]
    assert profile["roles"] == {"is_admin": False, "is_support": False}
    assert profile["status"] == {"state": "active"}

    with app.app_context():
        history = exported["email_history"]
        assert ids(history["links"]) == table_ids(EmailLink, EmailLink.user_id == mine.id)
        assert {link["purpose"] for link in history["links"]} >= {"change-email", "verify-email"}
        # Every mail about the account, to each address it had: the first one, removed since,
        # included (the outbox names the account).
        mails = OutboxMessage.recipient.in_(mine.addresses)
        assert ids(history["mails"]) == table_ids(OutboxMessage, mails) != set()
        assert {m["recipient"] for m in history["mails"]} == set(mine.addresses)
        kinds = {m["kind"] for m in history["mails"]}
        assert kinds == {"verify-email", "email-removed", "change-email", "email-change-requested"}
        changes = [c["details"] for c in history["address_changes"]]
        assert changes == [{"removed": True}, {}]

        [session] = exported["sessions"]
        assert ids(exported["sessions"]) == table_ids(
            BrowserSession, BrowserSession.user_id == mine.id
        )
        assert session["user_agent"] == "Firefox 133 on Linux"
        assert session["auth_method"] == "password" and session["ip"] == "127.0.0.1"
        [key] = exported["api_keys"]
        assert (key["name"], key["scopes"]) == (mine.key_name, ["read"])
        assert key["prefix"] == mine.key[: api_keys.PREFIX_LENGTH]
        [token] = exported["tokens"]
        tokens = table_ids(ApiToken, ApiToken.user_id == mine.id, ApiToken.name.is_(None))
        assert {token["id"]} == tokens

        events = exported["security_events"]
        [after] = table_ids(SecurityEvent, SecurityEvent.user_id == mine.id) - ids(events)
        kind = db.session.scalar(sa.select(SecurityEvent.type).filter_by(id=after))
        assert kind == security_log.DATA_EXPORTED
    kinds = {event["type"] for event in events}
    assert kinds >= {
        security_log.REGISTERED,
        security_log.EMAIL_CHANGED,
        security_log.API_KEY_CREATED,
        security_log.TOTP_ENABLED,
        security_log.PASSKEY_ADDED,
        security_log.LOGGED_IN,
    }
    assert all(isinstance(event["details"], dict) for event in events)
    key_created = next(e for e in events if e["type"] == security_log.API_KEY_CREATED)
    assert key_created["details"]["name"] == mine.key_name

    factors = exported["second_factors"]
    assert factors["authenticator_app"]["confirmed_at"]
    assert factors["recovery_codes"]["made"] == factors["recovery_codes"]["left"] == 10
    [passkey] = factors["passkeys"]
    assert passkey["name"] == mine.passkey_name and passkey["transports"] == ["internal"]


def test_the_export_holds_no_secret_in_any_form(mine: Holder, theirs: Holder) -> None:
    response = mine.browser.get(EXPORT, headers=bearer(mine.token))
    texts = {"the API's export": response.get_data(as_text=True)}
    _, zipped, readme = zip_document(page_export(mine.browser))
    texts |= {"the ZIP's JSON": zipped, "the README": readme}
    for where, text in texts.items():
        found = sorted({name for secret, name in mine.secrets.items() if secret in text})
        assert found == [], f"{where} holds {found}"
    assert len(mine.secrets) > 40  # the search was for the real thing


# Where the export lists the rows of each table that belongs to an account.
LISTS: dict[Any, Callable[[dict[str, Any]], list[dict[str, Any]]]] = {
    BrowserSession: lambda exported: exported["sessions"],
    ApiToken: lambda exported: exported["api_keys"] + exported["tokens"],
    Passkey: lambda exported: exported["second_factors"]["passkeys"],
    EmailLink: lambda exported: exported["email_history"]["links"],
}


def test_another_accounts_data_never_appears(app: Flask, mine: Holder, theirs: Holder) -> None:
    exported = api_export(mine.browser)  # by the browser's session this time
    text = json.dumps(exported, ensure_ascii=False)
    for value in [THEIRS, theirs.key_name, theirs.passkey_name, *theirs.addresses]:
        assert value not in text
    with app.app_context():
        for model, listed in LISTS.items():
            assert ids(listed(exported)) == table_ids(model, model.user_id == mine.id)
            assert table_ids(model, model.user_id == theirs.id).isdisjoint(ids(listed(exported)))
        their_events = table_ids(SecurityEvent, SecurityEvent.user_id == theirs.id)
    assert their_events and their_events.isdisjoint(ids(exported["security_events"]))


def test_the_zip_holds_the_apis_document_and_a_readme(mine: Holder) -> None:
    from_api = api_export(mine.browser, bearer(mine.token))  # the token is used: nothing moves
    response = page_export(mine.browser)
    from_zip, text, readme = zip_document(response)
    assert without_exports(from_zip) == without_exports(from_api)
    assert "张三" in text and "\\u" not in text and text.startswith('{\n  "format"')
    assert "userhub-export/1" in readme and "docs/export.md" in readme
    disposition = response.headers["Content-Disposition"]
    date = from_zip["exported_at"][:10]
    assert disposition == (
        f'attachment; filename="userhub-export-_-{date}.zip"; '
        f"filename*=UTF-8''userhub-export-%E5%BC%A0%E4%B8%89-{date}.zip"
    )


def test_a_read_only_key_may_export_and_an_ascii_name_needs_no_utf8_name(
    app: Flask, client: FlaskClient
) -> None:
    with app.test_request_context():
        user = users.register_user("zhang_san", PASSWORD)
        key = api_keys.create(user, "reader", [api_keys.READ]).secret
    response = client.get(EXPORT, headers=bearer(key))
    assert response.status_code == 200, response.get_data(as_text=True)
    date = response.get_json()["exported_at"][:10]
    expected = f'attachment; filename="userhub-export-zhang_san-{date}.json"'
    assert response.headers["Content-Disposition"] == expected
    assert response.get_json()["profile"]["username"] == "zhang_san"


def test_an_export_needs_a_log_in(client: FlaskClient) -> None:
    assert_problem(client.get(EXPORT), 401)
    page = client.post(PAGE_EXPORT, data={"csrf_token": csrf_token(client.get("/login").text)})
    assert page.status_code == 302 and page.location.startswith("/login")


def test_the_page_needs_its_csrf_token(mine: Holder) -> None:
    refused = mine.browser.post(PAGE_EXPORT)
    assert refused.status_code == 400 and refused.mimetype == "text/html"


def test_the_account_page_offers_the_download_before_logging_out_everywhere(
    mine: Holder,
) -> None:
    html = mine.browser.get("/account").get_data(as_text=True)
    assert html.index('action="/account/export"') < html.index('action="/logout/everywhere"')
    assert "Download my data" in html


def test_an_export_is_in_the_security_log(mine: Holder) -> None:
    api_export(mine.browser, bearer(mine.token))
    assert page_export(mine.browser).status_code == 200
    events = mine.browser.get("/api/v1/users/me/events", headers=bearer(mine.token)).get_json()
    exported = [e for e in events["items"] if e["type"] == security_log.DATA_EXPORTED]
    assert len(exported) == 2
    assert {e["api_key_id"] is not None for e in exported} == {True, False}  # token, then page
    activity = mine.browser.get("/account/activity").get_data(as_text=True)
    assert activity.count("Your data was downloaded") == 2


# --- The limit ---------------------------------------------------------------------------------


@pytest.fixture(params=["file", pytest.param("redis", marks=needs_redis)])
def limited(
    request: pytest.FixtureRequest, build_app: AppBuilder, database_url: str
) -> Iterator[Flask]:
    """An app with limits on (the export's at 5 an hour), counted in the default file or in
    Redis (emptied before and after)."""
    storage: dict[str, Any] = {}
    if request.param == "redis":
        storage["RATELIMIT_STORAGE_URI"] = REDIS_URL
        redis.Redis.from_url(REDIS_URL).flushdb()
    yield build_app(
        database_url,
        USERHUB_PUBLIC_URL=ORIGIN,
        RATELIMIT_ENABLED=True,
        USERHUB_RATELIMIT_EXPORT="5 per hour",
        **storage,
    )
    if request.param == "redis":
        redis.Redis.from_url(REDIS_URL).flushdb()


def test_the_sixth_export_in_an_hour_is_refused_by_either_way(limited: Flask) -> None:
    holder = give_everything(limited, MINE, "zhangsan@example.com")
    other = give_everything(limited, THEIRS, "lisi@example.com")
    browser, headers = holder.browser, bearer(holder.token)
    for _ in range(3):
        api_export(browser, headers)
    for _ in range(2):
        zip_document(page_export(browser))

    # Per account, not per address: another address gets no fresh budget.
    refused = browser.get(EXPORT, headers=headers, environ_overrides={"REMOTE_ADDR": "10.9.8.7"})
    problem = assert_problem(refused, 429)
    assert refused.mimetype == PROBLEM_MIMETYPE
    wait = int(refused.headers["Retry-After"])
    assert 1 <= wait <= 3601
    assert f"downloaded your data too often. Try again in {wait} seconds" in problem["detail"]

    page = page_export(browser)
    assert page.status_code == 429 and page.mimetype == "text/html"
    assert 1 <= int(page.headers["Retry-After"]) <= 3601
    assert "Try again in" in page.get_data(as_text=True)
    assert browser.get(EXPORT, headers=bearer(holder.key)).status_code == 429  # any credential

    api_export(other.browser, bearer(other.token))  # another account has a budget of its own
    with limited.app_context():
        logged = db.session.scalar(
            sa.select(sa.func.count()).where(
                SecurityEvent.user_id == holder.id,
                SecurityEvent.type == security_log.DATA_EXPORTED,
            )
        )
    assert logged == 5  # a refused export is not one


def test_the_refusal_is_in_chinese_for_a_chinese_reader(limited: Flask) -> None:
    holder = give_everything(limited, MINE, "zhangsan@example.com")
    for _ in range(5):
        api_export(holder.browser, bearer(holder.token))
    refused = holder.browser.get(
        EXPORT, headers={**bearer(holder.token), "Accept-Language": "zh-CN"}
    )
    assert "你下载数据的次数过多" in assert_problem(refused, 429)["detail"]
