"""Passwords and tokens never appear in a log or a response (issue 5, item 5).

One scenario uses every way a password or a token reaches userhub: registering (the page, §5's
JSON route, the API), logging in (the form behind ``/test_post`` and ``/test_request``,
``POST /api/v1/tokens`` with JSON and with HTTP Basic), §3's ``/get_json``, failed log-ins,
refused registrations (too short, too long, confirmation differs), using and revoking tokens,
changing a password on the account page and through the API (each with a wrong and with the
right current one), and the places a careless client puts a password: a query string and the
``X-Request-ID`` header. Every password is distinctive (a random marker), so finding any of
them, in any encoding, is a leak.

The scenario runs against real servers (``userhub serve`` with granian and with gunicorn, and
Flask's development server, the one the tutorial uses) logging at DEBUG, whose whole output is
searched; and
in-process with pytest capturing every logger at DEBUG, SQLAlchemy's statement log included
(statement parameters are logged there: a password hash may appear, a password or a token, of
which only the SHA-256 is stored, must not).

Responses are checked too: no body or header ever carries a password, and a token appears
exactly once, in the body of the 201 that issues it.

And the database, after each run: no table holds a password, a token, an API key (one is made
for the scenario by the service, and used over HTTP) or a browser session's key (each read from
the session cookies the server set); nor an authenticator app's secret (as base32, or as its
raw bytes in any encoding) or a recovery code: the scenario sets up an app through the API
(confirmed with a code computed from the secret it was given) and asks for new recovery codes,
which are shown once, in the answer that makes them, and are never logged. ``user_session``
keeps only a SHA-256 of each session key, ``api_token`` only that of each token and key, and
the security log, which recorded the scenario's log-ins, failed log-ins, password changes and
the key's creation, none of them.

The account's data export (issue 22) is taken twice, after the authenticator app and the
recovery codes are set up: through the API (with a token) and as the account page's ZIP (with
the session cookie), whose files the transports unpack, so every check above reads the
exported document too; and neither export holds any hash or digest the database keeps (the
password's, a session key's, a token's, a recovery code's, a mailed link's) or the sealed
authenticator secret.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import re
import secrets
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import quote, quote_plus, urlsplit

import pyotp
import pytest
import requests
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from itsdangerous import URLSafeSerializer

from tests.helpers import csrf_token, dispose, make_app
from tests.live_server import ServerProcess, running_server
from userhub.extensions import db
from userhub.services import api_keys, security_log, users

REQUEST_ID = re.compile(r"[0-9a-f]{16}")
LOG_FIELDS = {"time", "level", "logger", "message"}
# The production servers' own start and stop lines: granian "[INFO] Starting granian ...",
# gunicorn "[2026-01-01 12:00:00 +0000] [123] [INFO] Booting worker with pid: 124".
SERVER_LINE = re.compile(r"(\[[^]]+\] )*\[(INFO|WARNING)\] ")
ACCESS_FIELDS = {"method", "path", "status", "duration_ms", "user_id", "request_id"}


@dataclass(frozen=True)
class Exchange:
    """One request of the scenario and what came back."""

    step: str
    method: str
    path: str
    request_id: str | None  # the X-Request-ID sent, when it is one the log line can be found by
    status: int
    headers: list[tuple[str, str]]
    body: str


EXPORTS = {"/api/v1/users/me/export", "/account/export"}


def readable(content_type: str, body: bytes) -> str:
    """A response's body as text to search: a ZIP (the account page's export) as the text of
    its files, anything else decoded."""
    if content_type.startswith("application/zip"):
        with zipfile.ZipFile(io.BytesIO(body)) as archive:
            return "\n".join(archive.read(name).decode() for name in archive.namelist())
    return body.decode("utf-8", errors="replace")


class Transport(Protocol):
    def __call__(
        self,
        method: str,
        path: str,
        *,
        headers: dict[str, str],
        json_body: Any = None,
        form: dict[str, str] | None = None,
        query: dict[str, str] | None = None,
    ) -> tuple[int, list[tuple[str, str]], str]: ...


def live_transport(base: str) -> Transport:
    """Requests to a running server, with a cookie jar like a browser's or Postman's."""
    session = requests.Session()

    def send(
        method: str,
        path: str,
        *,
        headers: dict[str, str],
        json_body: Any = None,
        form: dict[str, str] | None = None,
        query: dict[str, str] | None = None,
    ) -> tuple[int, list[tuple[str, str]], str]:
        response = session.request(
            method,
            base + path,
            headers=headers,
            json=json_body,
            data=form,
            params=query,
            allow_redirects=False,
            timeout=60,
        )
        body = readable(response.headers.get("Content-Type", ""), response.content)
        return response.status_code, list(response.headers.items()), body

    return send


def flask_transport(client: FlaskClient) -> Transport:
    """The same requests through Flask's test client (in-process, same cookie handling)."""

    def send(
        method: str,
        path: str,
        *,
        headers: dict[str, str],
        json_body: Any = None,
        form: dict[str, str] | None = None,
        query: dict[str, str] | None = None,
    ) -> tuple[int, list[tuple[str, str]], str]:
        response = client.open(
            path,
            method=method,
            headers=headers,
            json=json_body,
            data=form,
            query_string=query,
        )
        body = readable(response.content_type or "", response.get_data())
        return response.status_code, list(response.headers.items()), body

    return send


@dataclass
class Scenario:
    """The secrets a run uses, and everything it sent and got back."""

    marker: str = field(default_factory=lambda: secrets.token_hex(4))
    passwords: dict[str, str] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)  # API keys, never shown over HTTP here
    basic_headers: list[str] = field(default_factory=list)
    exchanges: list[Exchange] = field(default_factory=list)
    totp_secrets: list[str] = field(default_factory=list)  # base32, as the API shows them
    recovery_codes: list[str] = field(default_factory=list)

    def session_keys(self) -> set[str]:
        """The keys of the browser sessions the server started: what its session cookies
        carried (signed, not encrypted: readable without the secret)."""
        found = set()
        for exchange in self.exchanges:
            for name, value in exchange.headers:
                if name.lower() == "set-cookie":
                    found |= {
                        key
                        for cookie in SESSION_COOKIE.findall(value)
                        if (key := session_key(cookie))
                    }
        return found

    def password(self, tag: str, length: int | None = None) -> str:
        """A distinctive password: non-ASCII, spaces, and an ASCII core ``<tag>-<marker>``
        that survives JSON escaping and URL encoding, so a leak in any of them is found."""
        value = f"Pä ss {tag}-{self.marker} wörd"
        if length is not None and length < len(value):
            value = ("ä" + secrets.token_hex(length))[:length]  # too short for the core
        elif length is not None:
            value += "x" * (length - len(value))
        self.passwords[tag] = value
        return value

    def needles(self, *, include: set[str] | None = None) -> dict[str, str]:
        """Every form in which a secret could leak, named for the failure message."""
        found: dict[str, str] = {}
        for tag, password in self.passwords.items():
            if include is not None and tag not in include:
                continue
            forms = {
                password,
                json.dumps(password)[1:-1],  # JSON with \\u escapes
                quote(password),
                quote_plus(password),
                password.encode().decode("latin-1"),  # UTF-8 read as Latin-1
            }
            if len(password) >= 16:
                forms.add(f"{tag}-{self.marker}")
            for form in forms:
                found[form] = f"password {tag!r} as {form!r}"
        if include is None:
            for tag, token in self.tokens.items():
                found[token] = f"token {tag!r}"
                found[token.removeprefix("uh_")] = f"token {tag!r} without its prefix"
            for tag, key in self.keys.items():
                found[key] = f"API key {tag!r}"
                found[key.removeprefix("uh_")] = f"API key {tag!r} without its prefix"
            for key in self.session_keys():
                found[key] = f"session key {key[:6]}…"
            for header in self.basic_headers:
                found[header.removeprefix("Basic ")] = f"HTTP Basic credentials {header!r}"
            found.update(self.factor_needles())
        return found

    def factor_needles(self) -> dict[str, str]:
        """The authenticator secrets (base32, and the raw bytes as hex, base64 and a bytes
        repr's escapes) and the recovery codes (as shown, without the dash, in capitals)."""
        found: dict[str, str] = {}
        for secret in self.totp_secrets:
            raw = base64.b32decode(secret)
            found[secret] = "TOTP secret (base32)"
            found[raw.hex()] = "TOTP secret (hex)"
            found[base64.b64encode(raw).decode()] = "TOTP secret (base64)"
            found[repr(raw)[2:-1]] = "TOTP secret (raw bytes)"
        for code in self.recovery_codes:
            for form in (code, code.replace("-", ""), code.upper()):
                found[form] = f"recovery code {code[:2]}…"
        return found


SESSION_COOKIE = re.compile(r"(?:^|[\s,;])session=([^;,\s]+)")


def session_key(cookie: str) -> str | None:
    """The session key a session cookie carries (Flask-Login's ``_user_id``), if any."""
    payload = cookie.rsplit(".", 2)[0]
    data = URLSafeSerializer("not needed to read").load_payload(payload.encode())
    key = data.get("_user_id") if isinstance(data, dict) else None
    return key if isinstance(key, str) else None


# Makes an API key for a username, returns it (the service's, until the API has endpoints).
KeyMaker = Callable[[str], str]


def key_maker(app: Flask) -> KeyMaker:
    """API keys made by the service, on the database of the server under test."""

    def make(username: str) -> str:
        with app.app_context():
            user = users.find_user(username)
            assert user is not None
            return api_keys.create(user, f"script of {username}", [api_keys.READ]).secret

    return make


def run_scenario(send: Transport, make_key: KeyMaker) -> Scenario:
    """Register, log in, fail to log in, use tokens and an API key, change a password, as a
    user would."""
    s = Scenario()
    count = iter(range(1, 1000))

    def call(
        step: str,
        method: str,
        path: str,
        *,
        expect: int,
        headers: dict[str, str] | None = None,
        request_id: str | None = "auto",
        **kwargs: Any,
    ) -> Exchange:
        headers = dict(headers or {})
        if request_id == "auto":
            request_id = f"ns-{s.marker}-{next(count)}"
            headers["X-Request-ID"] = request_id
        status, response_headers, body = send(method, path, headers=headers, **kwargs)
        exchange = Exchange(step, method, path, request_id, status, response_headers, body)
        s.exchanges.append(exchange)
        assert status == expect, f"{step}: {status} {body[:300]}"
        return exchange

    def csrf(path: str) -> str:
        return csrf_token(call(f"GET {path} for its form", "GET", path, expect=200).body)

    def basic(username: str, password: str) -> dict[str, str]:
        credentials = base64.b64encode(f"{username}:{password}".encode()).decode()
        s.basic_headers.append(f"Basic {credentials}")
        return {"Authorization": f"Basic {credentials}"}

    def bearer(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    def issued(exchange: Exchange, tag: str) -> str:
        token: str = json.loads(exchange.body)["token"]
        s.tokens[tag] = token
        return token

    m = s.marker
    form_user, json_user, api_user = f"form{m}", f"json{m}", f"api{m}"

    # Registering: the page, §5's JSON route, the API; and three refusals.
    pw = s.password("form")
    call(
        "register (page)",
        "POST",
        "/register",
        expect=302,
        form={
            "username": form_user,
            "password": pw,
            "confirm": pw,
            "csrf_token": csrf("/register"),
        },
    )
    call(
        "register, confirmation differs (page)",
        "POST",
        "/register",
        expect=422,
        form={
            "username": f"other{m}",
            "password": s.password("mismatch"),
            "confirm": s.password("confirm"),
            "csrf_token": csrf("/register"),
        },
    )
    call(
        "register (§5)",
        "POST",
        "/save_data_to_mysql",
        expect=200,
        json_body={"username": json_user, "password": s.password("json")},
    )
    call(
        "register, password too short (§5)",
        "POST",
        "/save_data_to_mysql",
        expect=422,
        json_body={"username": f"short{m}", "password": s.password("short", 7)},
    )
    call(
        "register (API)",
        "POST",
        "/api/v1/users",
        expect=201,
        json_body={"username": api_user, "password": s.password("api")},
    )
    call(
        "register, password too long (API)",
        "POST",
        "/api/v1/users",
        expect=422,
        json_body={"username": f"long{m}", "password": s.password("long", 129)},
    )

    # Logging in through the forms, §3's JSON route, and failing to log in.
    call(
        "log in (/test_post)",
        "POST",
        "/test_post",
        expect=302,
        form={"username": form_user, "password": s.passwords["form"], "csrf_token": csrf("/login")},
    )
    call("greeting of the logged-in user", "GET", "/success", expect=200)
    call(
        "new password, wrong current one (page)",
        "POST",
        "/account/password",
        expect=422,
        form={
            "current_password": s.password("wrong_page_current"),
            "password": s.password("refused_page_new"),
            "confirm": s.passwords["refused_page_new"],
            "csrf_token": csrf("/account/password"),
        },
    )
    call(
        "new password (page)",
        "POST",
        "/account/password",
        expect=302,
        form={
            "current_password": s.passwords["form"],
            "password": s.password("page_new"),
            "confirm": s.passwords["page_new"],
            "csrf_token": csrf("/account/password"),
        },
    )
    call(
        "log in (/test_request)",
        "POST",
        "/test_request",
        expect=302,
        form={"username": json_user, "password": s.passwords["json"], "csrf_token": csrf("/login")},
    )
    call(
        "§3 JSON",
        "POST",
        "/get_json",
        expect=200,
        json_body={"username": api_user, "password": s.password("get_json")},
    )
    call(
        "wrong password (form)",
        "POST",
        "/test_post",
        expect=200,
        form={
            "username": form_user,
            "password": s.password("wrong_form"),
            "csrf_token": csrf("/login"),
        },
    )
    call(
        "wrong password (token, JSON)",
        "POST",
        "/api/v1/tokens",
        expect=401,
        json_body={"username": api_user, "password": s.password("wrong_api")},
    )
    call(
        "wrong password (token, Basic)",
        "POST",
        "/api/v1/tokens",
        expect=401,
        headers=basic(json_user, s.password("wrong_basic")),
    )

    # Tokens: issue (JSON and Basic), use, change the password, revoke.
    first = issued(
        call(
            "token (JSON)",
            "POST",
            "/api/v1/tokens",
            expect=201,
            json_body={"username": api_user, "password": s.passwords["api"]},
        ),
        "json",
    )
    second = issued(
        call(
            "token (Basic)",
            "POST",
            "/api/v1/tokens",
            expect=201,
            headers=basic(json_user, s.passwords["json"]),
        ),
        "basic",
    )
    call("me (token)", "GET", "/api/v1/users/me", expect=200, headers=bearer(first))

    # An authenticator app and its recovery codes (the Basic-issued token's account).
    enrolment = call(
        "authenticator app set up",
        "POST",
        "/api/v1/users/me/totp",
        expect=201,
        headers=bearer(second),
    )
    secret = json.loads(enrolment.body)["secret"]
    s.totp_secrets.append(secret)
    right = pyotp.TOTP(secret).now()
    call(
        "authenticator app, a wrong first code",
        "POST",
        "/api/v1/users/me/totp/confirm",
        expect=422,
        headers=bearer(second),
        json_body={"code": f"{(int(right) + 500_000) % 1_000_000:06d}"},
    )
    confirmed = call(
        "authenticator app confirmed",
        "POST",
        "/api/v1/users/me/totp/confirm",
        expect=200,
        headers=bearer(second),
        json_body={"code": right},
    )
    s.recovery_codes += json.loads(confirmed.body)["recovery_codes"]
    renewed = call(
        "new recovery codes",
        "POST",
        "/api/v1/users/me/recovery-codes",
        expect=201,
        headers=bearer(second),
    )
    s.recovery_codes += json.loads(renewed.body)["recovery_codes"]
    call(
        "recovery codes left",
        "GET",
        "/api/v1/users/me/recovery-codes",
        expect=200,
        headers=bearer(second),
    )
    # The account's data, by the API and (the browser is logged in to the same account since
    # /test_request) as the account page's ZIP.
    call("export (API)", "GET", "/api/v1/users/me/export", expect=200, headers=bearer(second))
    call(
        "export (page)",
        "POST",
        "/account/export",
        expect=200,
        form={"csrf_token": csrf("/account")},
    )
    call(
        "new password, wrong current one",
        "PATCH",
        "/api/v1/users/me",
        expect=422,
        headers=bearer(first),
        json_body={
            "current_password": s.password("wrong_current"),
            "password": s.password("refused_new"),
        },
    )
    call(
        "new password",
        "PATCH",
        "/api/v1/users/me",
        expect=200,
        headers=bearer(first),
        json_body={"current_password": s.passwords["api"], "password": s.password("new")},
    )
    third = issued(
        call(
            "token with the new password",
            "POST",
            "/api/v1/tokens",
            expect=201,
            json_body={"username": api_user, "password": s.passwords["new"]},
        ),
        "after change",
    )
    s.keys["read"] = key = make_key(api_user)
    call("me (API key)", "GET", "/api/v1/users/me", expect=200, headers=bearer(key))
    call(
        "a write with a read-only key",
        "PATCH",
        "/api/v1/users/me",
        expect=403,
        headers=bearer(key),
        json_body={"display_name": "refused"},
    )
    call("revoke (token)", "DELETE", "/api/v1/tokens", expect=204, headers=bearer(first))
    call("revoked token", "GET", "/api/v1/users/me", expect=401, headers=bearer(first))
    call("me (Basic-issued token)", "GET", "/api/v1/users/me", expect=200, headers=bearer(second))
    call(
        "revoke (Basic-issued token)",
        "DELETE",
        "/api/v1/tokens",
        expect=204,
        headers=bearer(second),
    )
    call("revoke (new token)", "DELETE", "/api/v1/tokens", expect=204, headers=bearer(third))
    s.tokens["made up"] = f"uh_{secrets.token_urlsafe(32)}"
    call(
        "unknown token", "GET", "/api/v1/users/me", expect=401, headers=bearer(s.tokens["made up"])
    )

    # Where careless clients put passwords: a query string, a request-id header.
    call(
        "password in a query string",
        "GET",
        "/test_get",
        expect=200,
        query={"user_name": "x", "password": s.password("query")},
    )
    echoed = call(
        "password as X-Request-ID",
        "GET",
        "/response_json",
        expect=200,
        request_id=None,
        headers={"X-Request-ID": s.password("request_id")},
    )
    [sent_back] = [v for k, v in echoed.headers if k.lower() == "x-request-id"]
    assert REQUEST_ID.fullmatch(sent_back), "replaced, not echoed"
    return s


def leaks(text: str, needles: dict[str, str]) -> list[str]:
    return sorted(name for needle, name in needles.items() if needle in text)


def assert_responses_keep_secrets(scenario: Scenario) -> None:
    """No response shows a password; a token is shown once, in the 201 that issued it."""
    passwords = scenario.needles(include=set(scenario.passwords))
    issued_in: dict[str, str | None] = {token: None for token in scenario.tokens.values()}
    for exchange in scenario.exchanges:
        header_text = "\n".join(f"{name}: {value}" for name, value in exchange.headers)
        assert leaks(exchange.body + header_text, passwords) == [], exchange.step
        for tag, token in scenario.tokens.items():
            assert token not in header_text, f"token {tag!r} in the headers of {exchange.step}"
            if token in exchange.body:
                assert exchange.status == 201 and exchange.path == "/api/v1/tokens"
                assert exchange.body.count(token) == 1, exchange.step
                assert issued_in[token] is None, f"token {tag!r} shown twice"
                issued_in[token] = exchange.step
    never_shown = {tag for tag, token in scenario.tokens.items() if issued_in[token] is None}
    assert never_shown == {"made up"}, "an issued token was not in its 201"
    issuers = {
        "POST /api/v1/users/me/totp",
        "POST /api/v1/users/me/totp/confirm",
        "POST /api/v1/users/me/recovery-codes",
    }
    factor_needles = scenario.factor_needles()
    assert factor_needles, "the scenario set up an authenticator app"
    for exchange in scenario.exchanges:
        found = leaks(exchange.body, factor_needles)
        header_text = "\n".join(f"{name}: {value}" for name, value in exchange.headers)
        assert leaks(header_text, factor_needles) == [], exchange.step
        if found:
            assert f"{exchange.method} {exchange.path}" in issuers, (exchange.step, found)
            assert exchange.status in {200, 201}, exchange.step
            cache = [v for k, v in exchange.headers if k.lower() == "cache-control"]
            assert cache == ["no-store"], exchange.step
    unseen = {**scenario.keys, **{k: k for k in scenario.session_keys()}}
    for exchange in scenario.exchanges:
        text = exchange.body + "\n".join(f"{name}: {value}" for name, value in exchange.headers)
        assert [tag for tag, key in unseen.items() if key in text] == [], exchange.step


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def assert_database_keeps_secrets(url: str, scenario: Scenario) -> None:
    """No row of any table holds a secret of the scenario in any encoding; the tables of
    sessions and tokens hold their SHA-256 only, and the security log has the scenario's
    events (so the search was of the real thing)."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            tables = {
                table.name: [dict(row) for row in connection.execute(sa.select(table)).mappings()]
                for table in db.metadata.sorted_tables
            }
    finally:
        engine.dispose()
    for name, rows in tables.items():
        assert leaks(repr(rows), scenario.needles()) == [], f"secrets in table {name}"

    session_keys = scenario.session_keys()
    stored_sessions = {row["key_hash"] for row in tables["user_session"]}
    assert len(session_keys) >= 3 and len(stored_sessions) >= 2  # two users, a new password
    assert stored_sessions <= {sha256(key) for key in session_keys}
    issued = [*scenario.tokens.values(), *scenario.keys.values()]
    [stored_key] = tables["api_token"]  # the tokens were revoked; the key is alive
    assert stored_key["token_hash"] == sha256(scenario.keys["read"])
    assert stored_key["prefix"] == scenario.keys["read"][: api_keys.PREFIX_LENGTH]
    assert {row["token_hash"] for row in tables["api_token"]} <= {sha256(t) for t in issued}
    assert len(tables["totp_factor"]) == 1 and tables["totp_factor"][0]["confirmed_at"]
    assert len(tables["recovery_code"]) == 10  # the second set; the first was replaced
    kinds = {row["type"] for row in tables["security_event"]}
    assert {
        security_log.TOTP_ENABLED,
        security_log.RECOVERY_CODES_GENERATED,
        security_log.LOGGED_IN,
        security_log.LOGIN_FAILED,
        security_log.PASSWORD_CHANGED,
        security_log.API_KEY_CREATED,
        security_log.LOGGED_OUT,
        security_log.DATA_EXPORTED,
    } <= kinds
    assert_exports_keep_stored_secrets(tables, scenario)


# What the database keeps instead of a secret: each a way to check or find one.
STORED_SECRETS = [
    ("user", "password_hash"),
    ("user", "passkey_handle"),
    ("user_session", "key_hash"),
    ("api_token", "token_hash"),
    ("recovery_code", "code_hash"),
    ("email_link", "token_hash"),
    ("email_link", "password_stamp"),
    ("totp_factor", "secret"),
]


def assert_exports_keep_stored_secrets(
    tables: dict[str, list[dict[str, Any]]], scenario: Scenario
) -> None:
    """The two exports of the scenario are whole documents and hold none of the hashes,
    digests or sealed secrets the database keeps (in hex and base64 for bytes), nor the
    SHA-256 of a token, key or session key the scenario was given (some are deleted since)."""
    exports = [e for e in scenario.exchanges if urlsplit(e.path).path in EXPORTS]
    assert [e.status for e in exports] == [200, 200]
    assert all('"format"' in e.body and "userhub-export/1" in e.body for e in exports)
    stored: dict[str, str] = {}
    for table, column in STORED_SECRETS:
        for row in tables[table]:
            value = row[column]
            if isinstance(value, bytes):
                stored[value.hex()] = stored[base64.b64encode(value).decode()] = table
            elif value:
                stored[value] = f"{table}.{column}"
    assert stored, "the scenario stored hashes"
    issued = [*scenario.tokens.values(), *scenario.keys.values(), *scenario.session_keys()]
    stored.update(
        {sha256(secret): "the SHA-256 of a token, key or session key" for secret in issued}
    )
    for exchange in exports:
        assert leaks(exchange.body, stored) == [], exchange.step


def assert_no_secret_in(text: str, scenario: Scenario, where: str) -> None:
    found = leaks(text, scenario.needles())
    assert found == [], f"secrets in {where}: {found}"


# --- Live servers --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerRun:
    kind: str
    scenario: Scenario
    log: str
    database_url: str


SERVERS = [
    pytest.param(("production", "granian"), id="granian"),
    pytest.param(("production", "gunicorn"), id="gunicorn"),
    pytest.param(("development", "flask-run"), id="flask-run"),
]


@pytest.fixture(scope="module", params=SERVERS)
def server_run(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerRun]:
    """The scenario against a real server logging at DEBUG, on SQLite; its whole output."""
    kind, server_name = request.param
    workdir = tmp_path_factory.mktemp(f"no-secrets-{server_name}")
    url = f"sqlite:///{workdir / 'userhub.sqlite3'}"
    limits_off = {"USERHUB_RATELIMIT_ENABLED": "false"}
    server: ServerProcess
    with pytest.MonkeyPatch.context() as environment:  # the key maker's own instance folder
        environment.setenv("USERHUB_INSTANCE_PATH", str(workdir / "key-maker"))
        keys = make_app(url)
    with running_server(
        kind, url, workdir, server=server_name, log_level="DEBUG", env=limits_off
    ) as server:
        scenario = run_scenario(live_transport(server.base), key_maker(keys))
        server.stop()  # every line written and flushed before the log is read
        log = server.log()
    dispose(keys)
    yield ServerRun(kind, scenario, log, url)


def json_lines(log: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.splitlines() if line.startswith("{")]


def test_no_password_or_token_reaches_the_server_log(server_run: ServerRun) -> None:
    """The server's whole output (its own lines, the app's JSON lines, stderr and stdout)
    holds no password, token or Basic credentials, in any encoding. (A password in a query
    string is checked on its own below.)"""
    scenario = server_run.scenario
    query = set(scenario.needles(include={"query"}))
    needles = {k: v for k, v in scenario.needles().items() if k not in query}
    assert leaks(server_run.log, needles) == []


def test_a_password_in_a_query_string_stays_out_of_the_server_log(
    server_run: ServerRun,
) -> None:
    """The app logs paths without their query string; the server must not add it back."""
    assert leaks(server_run.log, server_run.scenario.needles(include={"query"})) == []


def test_no_response_shows_a_password_and_a_token_only_once_when_issued(
    server_run: ServerRun,
) -> None:
    assert_responses_keep_secrets(server_run.scenario)


def test_no_table_holds_a_password_token_key_or_session_key(server_run: ServerRun) -> None:
    assert_database_keeps_secrets(server_run.database_url, server_run.scenario)


def test_the_server_logs_each_request_once_as_a_json_line_with_its_fields(
    server_run: ServerRun,
) -> None:
    """The log that was searched is the real one: every JSON line has the common fields, and
    each request of the scenario has exactly one access line with its method, its path
    without the query string, and the status the client got. In production, nothing else is
    written but the server's own start and stop lines."""
    lines = json_lines(server_run.log)
    assert lines, server_run.log
    for line in lines:
        assert line.keys() >= LOG_FIELDS, line
    access = [line for line in lines if line["logger"] == "userhub.access"]
    for line in access:
        assert line.keys() >= ACCESS_FIELDS, line
    for exchange in server_run.scenario.exchanges:
        if exchange.request_id is None:
            continue
        [line] = [a for a in access if a["request_id"] == exchange.request_id]
        assert (line["method"], line["path"], line["status"]) == (
            exchange.method,
            urlsplit(exchange.path).path,
            exchange.status,
        )
    if server_run.kind == "production":
        others = [
            line
            for line in server_run.log.splitlines()
            if line and not line.startswith("{") and not SERVER_LINE.match(line)
        ]
        assert others == []


# --- In-process, every logger captured -----------------------------------------------------------


def test_no_password_or_token_reaches_any_logger_in_process(
    app: Flask, client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    """Every logger at DEBUG and SQLAlchemy's statement log at INFO (which prints statement
    parameters) while the scenario runs: the records, their arguments and extra fields hold no
    password and no token. The SQL log is really there (it shows the stored hash), so the
    search is not of an empty log."""
    # Each set_level also sets the capturing handler's level: DEBUG must come last.
    caplog.set_level(logging.INFO, logger="sqlalchemy.engine")
    caplog.set_level(logging.DEBUG, logger="userhub")  # the app set it to INFO
    caplog.set_level(logging.DEBUG)
    scenario = run_scenario(flask_transport(client), key_maker(app))

    records = caplog.records
    texts = [caplog.text]
    for record in records:
        texts.append(record.getMessage())
        texts.append(repr(record.args))
        texts.append(repr({k: v for k, v in vars(record).items() if k not in ("msg", "args")}))
    assert_no_secret_in("\n".join(texts), scenario, "the captured log records")

    assert caplog.handler.level == logging.DEBUG
    sql = "\n".join(r.getMessage() for r in records if r.name.startswith("sqlalchemy.engine"))
    assert "INSERT INTO user" in sql and "$argon2id$" in sql, "no SQL parameters were logged"
    access = [r for r in records if r.name == "userhub.access"]
    assert len(access) == len(scenario.exchanges)
    assert_responses_keep_secrets(scenario)
    assert_database_keeps_secrets(app.config["SQLALCHEMY_DATABASE_URI"], scenario)
