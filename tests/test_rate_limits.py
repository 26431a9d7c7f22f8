"""Rate limits: per client IP on log-in and register, per account on failed log-ins (with
the device cookies that keep the owner's own browsers and clients out of strangers' count), and
a wrong current password counted like a failed log-in.

In process on SQLite and MySQL, counted in each storage: the default SQLite file,
``memory://`` and the real Redis (``USERHUB_TEST_REDIS_URL``, which CI sets); and against a
real two-worker server, where only a storage the workers share can make the count exact. The
storage itself (its windows, threads, processes) is tested in ``test_limit_storage.py``.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol, cast

import pytest
import redis
import requests
from flask import Flask
from flask.testing import FlaskClient
from itsdangerous import URLSafeTimedSerializer
from werkzeug.test import TestResponse

from tests.helpers import (
    ME,
    NEW_PASSWORD,
    PASSWORD,
    PROBLEM_MIMETYPE,
    REDIS_URL,
    TEST_SECRET,
    AppBuilder,
    AuthActions,
    bearer,
    cpu_ticks,
    csrf_token,
    needs_redis,
    worker_pids,
)
from tests.live_server import running_server
from userhub import create_app
from userhub.extensions import db
from userhub.services import users
from userhub.services.passwords import EXTENSION_KEY
from userhub.web import devices

GENEROUS = "1000 per minute"
UNKNOWN = "nobody-by-this-name"
WRONG = "not the password at all"


# Where the limits are counted: the default (a SQLite file in the instance folder, which every
# worker of a host shares), one process's memory, and Redis (several hosts).
STORAGES = ["file", "memory", pytest.param("redis", marks=needs_redis)]


class LimitedApps(Protocol):
    """The ``make_limited`` fixture: ``make_limited(**config)``."""

    def __call__(self, **config: Any) -> Flask: ...


@pytest.fixture(params=STORAGES)
def storage_uri(request: pytest.FixtureRequest) -> str | None:
    """The storage's URI; None for the default file."""
    if request.param == "redis":
        request.getfixturevalue("empty_redis")
        return REDIS_URL
    return None if request.param == "file" else "memory://"


@pytest.fixture
def make_limited(build_app: AppBuilder, database_url: str, storage_uri: str | None) -> LimitedApps:
    """Build apps with limits on (generous unless a test says otherwise), in each storage."""

    def build(**config: Any) -> Flask:
        limits_on = {
            "RATELIMIT_ENABLED": True,
            "USERHUB_RATELIMIT_LOGIN": GENEROUS,
            "USERHUB_RATELIMIT_REGISTER": GENEROUS,
            "USERHUB_RATELIMIT_ACCOUNT": "1000 per hour",
        }
        if storage_uri:
            limits_on["RATELIMIT_STORAGE_URI"] = storage_uri
        app: Flask = build_app(database_url, **{**limits_on, **config})
        return app

    return build


def add_user(app: Flask, username: str = "张三") -> None:
    with app.app_context():
        users.register_user(username, PASSWORD)


def token_attempt(client: FlaskClient, username: str, password: str, ip: str = "127.0.0.1") -> Any:
    return client.post(
        "/api/v1/tokens",
        json={"username": username, "password": password},
        environ_overrides={"REMOTE_ADDR": ip},
    )


def assert_429_problem(response: TestResponse) -> int:
    """A 429 problem+json with a usable Retry-After; returns the seconds."""
    assert response.status_code == 429, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM_MIMETYPE
    body = response.get_json()
    assert body["status"] == 429 and body["title"] == "Too Many Requests"
    retry_after = int(response.headers["Retry-After"])
    assert retry_after >= 1
    assert f"{retry_after} seconds" in body["detail"]
    return retry_after


# --- per client IP -------------------------------------------------------------------------


def test_log_in_routes_share_one_limit_per_ip(make_limited: LimitedApps) -> None:
    app = make_limited(USERHUB_RATELIMIT_LOGIN="3 per minute")
    add_user(app)
    client = app.test_client()
    auth = AuthActions(client)
    assert auth.login().status_code == 302  # form, via /test_post
    assert auth.login(path="/test_request").status_code == 302
    assert token_attempt(client, "张三", PASSWORD).status_code == 201

    retry_after = assert_429_problem(token_attempt(client, "张三", PASSWORD))
    assert retry_after <= 61  # Flask-Limiter rounds the window's end up to the next second
    page = auth.login()
    assert page.status_code == 429 and page.mimetype == "text/html"
    assert "Too many attempts from your address" in page.get_data(as_text=True)
    assert 1 <= int(page.headers["Retry-After"]) <= 61

    # Another address is counted on its own; GET /test_request is not a log-in attempt.
    assert token_attempt(client, "张三", PASSWORD, ip="10.0.0.2").status_code == 201
    assert client.get("/test_request").status_code == 302


def test_register_routes_share_one_limit_per_ip(make_limited: LimitedApps) -> None:
    app = make_limited(USERHUB_RATELIMIT_REGISTER="2 per minute")
    client = app.test_client()
    ok = client.post("/save_data_to_mysql", json={"username": "one", "password": PASSWORD})
    assert ok.status_code == 200
    assert (
        client.post("/api/v1/users", json={"username": "two", "password": PASSWORD}).status_code
        == 201
    )

    refused = client.post("/save_data_to_mysql", json={"username": "three", "password": PASSWORD})
    assert_429_problem(refused)
    assert refused.get_json()["detail"].startswith("Commit Status:Failed, Message:Too many")
    assert_429_problem(
        client.post("/api/v1/users", json={"username": "four", "password": PASSWORD})
    )
    with app.app_context():
        assert users.find_user("three") is None and users.find_user("four") is None
    # The page is limited too, and says so in the layout.
    page = AuthActions(client).register("five")
    assert page.status_code == 429 and "Too many attempts" in page.get_data(as_text=True)


def _login_from(client: FlaskClient, forwarded_for: str) -> int:
    """A log-in sent by nginx at 127.0.0.1 on behalf of ``forwarded_for``."""
    response = client.post(
        "/api/v1/tokens",
        json={"username": "张三", "password": PASSWORD},
        headers={"X-Forwarded-For": forwarded_for},
    )
    return int(response.status_code)


def test_behind_a_trusted_proxy_each_client_has_its_own_count(make_limited: LimitedApps) -> None:
    """USERHUB_TRUSTED_PROXIES=1: the client is the address nginx appended, not nginx."""
    app = make_limited(USERHUB_RATELIMIT_LOGIN="2 per minute", USERHUB_TRUSTED_PROXIES=1)
    add_user(app)
    client = app.test_client()
    assert [_login_from(client, "203.0.113.7") for _ in range(3)] == [201, 201, 429]
    assert _login_from(client, "198.51.100.9") == 201
    # A client cannot pick another bucket by sending the header itself: nginx appends the
    # address it saw, and only that last entry is believed.
    assert _login_from(client, "198.51.100.9, 203.0.113.7") == 429


def test_without_trusted_proxies_the_header_is_ignored(make_limited: LimitedApps) -> None:
    """The default (0): any client could forge X-Forwarded-For, so it counts for nothing."""
    app = make_limited(USERHUB_RATELIMIT_LOGIN="2 per minute")
    add_user(app)
    client = app.test_client()
    assert [_login_from(client, f"203.0.113.{n}") for n in range(3)] == [201, 201, 429]


@pytest.mark.parametrize(("enabled", "expected"), [("false", {401}), ("true", {401, 429})])
def test_the_environment_turns_limits_off(
    database_url: str, monkeypatch: pytest.MonkeyPatch, enabled: str, expected: set[int]
) -> None:
    """``USERHUB_RATELIMIT_ENABLED=false`` (load tests, benchmarks) turns every limit off."""
    monkeypatch.setenv("USERHUB_RATELIMIT_ENABLED", enabled)
    monkeypatch.setenv("USERHUB_RATELIMIT_LOGIN", "2 per minute")
    monkeypatch.setenv("USERHUB_RATELIMIT_ACCOUNT", "2 per hour")
    app = create_app({"SQLALCHEMY_DATABASE_URI": database_url, "SECRET_KEY": TEST_SECRET})
    try:
        client = app.test_client()
        assert {token_attempt(client, UNKNOWN, WRONG).status_code for _ in range(5)} == expected
    finally:
        with app.app_context():
            db.engine.dispose()


# --- per account ---------------------------------------------------------------------------


def test_failed_log_ins_slow_down_the_account_not_the_owner_forever(
    make_limited: LimitedApps,
) -> None:
    app = make_limited(USERHUB_RATELIMIT_ACCOUNT="3 per 2 minutes")
    add_user(app)
    client = app.test_client()
    for attempt in range(3):  # from three addresses, no device cookie: the account counts
        assert token_attempt(client, "张三", WRONG, ip=f"10.0.1.{attempt}").status_code == 401

    # Now even the right password waits (the password is not checked), with the time to wait.
    refused = token_attempt(client, "张三", PASSWORD, ip="10.0.2.1")
    retry_after = assert_429_problem(refused)
    assert 60 < retry_after <= 120
    assert "failed log-ins for this account" in refused.get_json()["detail"]
    page = AuthActions(client).login("张三", PASSWORD)
    assert page.status_code == 429 and "failed log-ins" in page.get_data(as_text=True)

    # Other accounts are not affected.
    add_user(app, "李四")
    assert token_attempt(client, "李四", PASSWORD, ip="10.0.1.0").status_code == 201


def test_successful_log_ins_do_not_count(make_limited: LimitedApps) -> None:
    app = make_limited(USERHUB_RATELIMIT_ACCOUNT="2 per hour")
    add_user(app)
    client = app.test_client()
    for _ in range(5):
        assert token_attempt(client, "张三", PASSWORD).status_code == 201
    assert token_attempt(client, "张三", WRONG).status_code == 401
    assert token_attempt(client, "张三", PASSWORD).status_code == 201


def test_unknown_and_known_accounts_are_treated_alike(make_limited: LimitedApps) -> None:
    """Same status and words for "no such user" and "wrong password", and the same limit, so
    neither the answer nor the slowdown tells which usernames exist."""
    app = make_limited(USERHUB_RATELIMIT_ACCOUNT="2 per hour")
    add_user(app)
    client = app.test_client()
    answers = {}
    for username in ("张三", UNKNOWN):
        seen = [token_attempt(client, username, WRONG) for _ in range(3)]
        answers[username] = [(r.status_code, r.get_json()["detail"]) for r in seen]
    # Each account's hour began at its own first attempt, a moment apart, so the seconds left
    # may differ by one when a second ticks over between them: the words must not.
    waits = {name: int(re.findall(r"\d+", seen[-1][1])[0]) for name, seen in answers.items()}
    assert abs(waits["张三"] - waits[UNKNOWN]) <= 1
    assert strip_numbers(answers["张三"]) == strip_numbers(answers[UNKNOWN])
    assert [status for status, _ in answers[UNKNOWN]] == [401, 401, 429]

    auth = AuthActions(app.test_client())
    wrong = auth.login("王五", WRONG).get_data(as_text=True)
    add_user(app, "王五")
    also_wrong = auth.login("王五", WRONG).get_data(as_text=True)
    assert "Invalid username or password." in wrong

    def strip(html: str) -> str:
        return html.split('name="csrf_token"')[0]  # the token differs

    assert strip(wrong) == strip(also_wrong)


def strip_numbers(answers: list[tuple[int, str]]) -> list[tuple[int, str]]:
    return [(status, re.sub(r"\d+", "N", detail)) for status, detail in answers]


def test_account_key_ignores_case_and_width(make_limited: LimitedApps) -> None:
    """``ZhangSan`` and ``ｚｈａｎｇｓａｎ`` are the same account, so they share one count."""
    app = make_limited(USERHUB_RATELIMIT_ACCOUNT="2 per hour")
    add_user(app, "zhangsan")
    client = app.test_client()
    assert token_attempt(client, "ZhangSan", WRONG).status_code == 401
    assert token_attempt(client, "ｚｈａｎｇｓａｎ", WRONG).status_code == 401
    assert_429_problem(token_attempt(client, "zhangsan", PASSWORD))


# --- the owner's devices (device cookies) ----------------------------------------------------

OWASP_DEFAULT = "10 per 6 minutes"  # USERHUB_RATELIMIT_ACCOUNT's default


def known_browser(app: Flask, username: str = "dave") -> FlaskClient:
    """A browser that has logged in to ``username`` before and keeps its cookies."""
    client = app.test_client()
    assert AuthActions(client).login(username, PASSWORD).status_code == 302
    assert client.get_cookie(devices.COOKIE) is not None
    return client


def stranger_guesses(app: Flask, count: int, username: str = "dave") -> list[int]:
    """``count`` wrong passwords for ``username``, each from another address and no cookie."""
    return [
        token_attempt(app.test_client(), username, WRONG, ip=f"203.0.113.{n % 250}").status_code
        for n in range(count)
    ]


def test_strangers_cannot_lock_out_the_owners_known_browser(make_limited: LimitedApps) -> None:
    """Finding 2 of issue 16: 50 wrong passwords from strangers lock the strangers out (every
    spelling of the name, and a new client with the right password), not the owner's browser."""
    app = make_limited(USERHUB_RATELIMIT_ACCOUNT=OWASP_DEFAULT)  # in each storage
    add_user(app, "dave")
    browser = known_browser(app)

    assert stranger_guesses(app, 50) == [401] * 10 + [429] * 40
    stranger = app.test_client()
    for spelling in ("dave", "DAVE", "ｄａｖｅ"):
        retry_after = assert_429_problem(token_attempt(stranger, spelling, PASSWORD))
        assert 300 < retry_after <= 360
    fresh_page = AuthActions(app.test_client()).login("Dave", PASSWORD)
    assert fresh_page.status_code == 429 and "Retry-After" in fresh_page.headers

    # The browser that logged in before still gets in, on the form and on the API, by any
    # spelling of the name, and is told nothing about the attack.
    assert AuthActions(browser).login("DAVE", PASSWORD).status_code == 302
    assert token_attempt(browser, "dave", PASSWORD, ip="198.51.100.1").status_code == 201
    # So does an API client that keeps its cookie jar.
    assert token_attempt(browser, "ｄａｖｅ", PASSWORD, ip="198.51.100.2").status_code == 201


def test_an_api_client_with_a_cookie_jar_is_a_known_device(make_limited: LimitedApps) -> None:
    """``POST /api/v1/tokens`` sets the device cookie too: a client that keeps it (curl -c/-b,
    Postman, requests.Session) has its own budget; one that drops it is a stranger."""
    app = make_limited(USERHUB_RATELIMIT_ACCOUNT="3 per hour")
    add_user(app, "dave")
    jar = app.test_client()
    first = token_attempt(jar, "dave", PASSWORD)
    assert first.status_code == 201
    cookie = next(c for c in first.headers.getlist("Set-Cookie") if c.startswith("userhub_device"))
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Max-Age=31536000" in cookie
    assert stranger_guesses(app, 4) == [401, 401, 401, 429]
    assert token_attempt(jar, "dave", PASSWORD).status_code == 201
    no_jar = app.test_client(use_cookies=False)
    assert_429_problem(token_attempt(no_jar, "dave", PASSWORD))


def test_a_forged_tampered_or_other_accounts_device_cookie_counts_as_a_stranger(
    make_limited: LimitedApps,
) -> None:
    app = make_limited(USERHUB_RATELIMIT_ACCOUNT="3 per hour")
    add_user(app, "dave")
    add_user(app, "erin")
    genuine = known_browser(app).get_cookie(devices.COOKIE)
    others = known_browser(app, "erin").get_cookie(devices.COOKIE)
    assert genuine is not None and others is not None
    assert stranger_guesses(app, 3) == [401] * 3

    payload, _, signature = genuine.value.rpartition(".")
    # The first character: all six of its bits count (the last one's low bits are padding, and
    # changing only those leaves the signature as it was).
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    forged = URLSafeTimedSerializer("not the app's secret key at all", salt=devices.SALT)
    presented = {
        "tampered signature": f"{payload}.{flipped}",
        "tampered content": payload[:2]
        + ("x" if payload[2] != "x" else "y")
        + payload[3:]
        + f".{signature}",
        "signed with another key": forged.dumps({"d": "mine", "a": ["anything"]}),
        "another account's": others.value,
        "garbage": "not-a-device-cookie",
    }
    for cookie in presented.values():
        client = app.test_client()
        client.set_cookie(devices.COOKIE, cookie)
        assert_429_problem(token_attempt(client, "dave", PASSWORD))
    client = app.test_client()
    client.set_cookie(devices.COOKIE, genuine.value)  # the real one, copied: known
    assert token_attempt(client, "dave", PASSWORD).status_code == 201


def test_a_known_device_that_guesses_spends_only_its_own_budget(make_limited: LimitedApps) -> None:
    """A device cookie is no pass: a known device that keeps failing waits like a stranger,
    but alone; the owner's other devices and even strangers are not affected."""
    app = make_limited(USERHUB_RATELIMIT_ACCOUNT="3 per hour")
    add_user(app, "dave")
    laptop, phone = known_browser(app), known_browser(app)
    assert [token_attempt(laptop, "dave", WRONG).status_code for _ in range(4)] == [401] * 3 + [429]
    page = AuthActions(laptop).login("dave", PASSWORD)
    assert page.status_code == 429 and "failed log-ins" in page.get_data(as_text=True)

    assert AuthActions(phone).login("dave", PASSWORD).status_code == 302
    assert token_attempt(app.test_client(), "dave", PASSWORD).status_code == 201


def test_the_device_cookie_names_accounts_by_keyed_hashes_and_keeps_a_few(
    make_limited: LimitedApps,
) -> None:
    """One device id for every account logged in from a browser; no username in the cookie,
    which is signed but readable; at most ``MAX_ACCOUNTS``, the latest first."""
    app = make_limited()
    names = [f"user{n}" for n in range(devices.MAX_ACCOUNTS + 2)]
    for name in names:
        add_user(app, name)
    browser = app.test_client()
    reader = URLSafeTimedSerializer(TEST_SECRET, salt=devices.SALT)
    values = []
    for name in names:
        assert AuthActions(browser).login(name, PASSWORD).status_code == 302
        cookie = browser.get_cookie(devices.COOKIE)
        assert cookie is not None
        values.append(cookie.value)
    contents = [reader.loads(value) for value in values]
    assert len({content["d"] for content in contents}) == 1
    value, content = values[-1], contents[-1]
    assert len(content["a"]) == devices.MAX_ACCOUNTS
    assert not any(name in value or name in str(content) for name in names)
    with app.test_request_context(headers={"Cookie": f"{devices.COOKIE}={value}"}):
        assert devices.device_for("user11") == content["d"]  # the latest, first
        assert devices.device_for("user2") == content["d"]
        assert devices.device_for("user1") is None  # pushed out


# --- a password asked for again --------------------------------------------------------------


def count_verifications(app: Flask, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record each argon2 verification the app runs (to see that refused ones run none)."""
    hasher = app.extensions[EXTENSION_KEY]
    verified: list[str] = []
    real = hasher.verify

    def verify(password_hash: str, password: str) -> bool:
        verified.append(password)
        return bool(real(password_hash, password))

    monkeypatch.setattr(hasher, "verify", verify)
    return verified


def change_password(
    client: FlaskClient, current: str, *, how: str, token: str = "", ip: str = "127.0.0.1"
) -> TestResponse:
    """Ask for a new password with ``current`` as the current one: through the API (with
    ``token``) or through the page (the client's session)."""
    environ = {"REMOTE_ADDR": ip}
    if how == "api":
        body = {"password": NEW_PASSWORD, "current_password": current}
        return client.patch(ME, json=body, headers=bearer(token), environ_overrides=environ)
    form = {
        "current_password": current,
        "password": NEW_PASSWORD,
        "confirm": NEW_PASSWORD,
        "csrf_token": csrf_token(client.get("/account/password").get_data(as_text=True)),
    }
    return client.post("/account/password", data=form, environ_overrides=environ)


def stolen(app: Flask, owner: FlaskClient, how: str) -> tuple[FlaskClient, str]:
    """What a thief holds: a client without the owner's device cookie, and the owner's token
    (API) or a copy of the owner's session cookie (page)."""
    thief = app.test_client()
    if how == "api":
        reply = token_attempt(owner, "dave", PASSWORD)
        assert reply.status_code == 201
        return thief, str(reply.get_json()["token"])
    session = owner.get_cookie("session")
    assert session is not None
    thief.set_cookie("session", session.value)
    return thief, ""


@pytest.mark.parametrize("how", ["api", "page"])
def test_guessing_the_current_password_is_limited_like_log_ins(
    make_limited: LimitedApps, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """Finding 3 of issue 16: with a stolen token or session, 60 guesses at the current
    password. After the account's limit each is refused with 429 before any hash is spent,
    the right password too; the owner's own device keeps its budget."""
    app = make_limited(USERHUB_RATELIMIT_ACCOUNT=OWASP_DEFAULT)
    add_user(app, "dave")
    owner = known_browser(app)
    thief, token = stolen(app, owner, how)
    verified = count_verifications(app, monkeypatch)

    answers = [change_password(thief, f"guess {n}", how=how, token=token) for n in range(60)]
    assert [a.status_code for a in answers] == [422] * 10 + [429] * 50
    assert len(verified) == 10
    for refused in (answers[10], change_password(thief, PASSWORD, how=how, token=token)):
        assert refused.status_code == 429
        assert 300 < int(refused.headers["Retry-After"]) <= 360
        if how == "api":
            assert refused.get_json()["type"] == "/problems/too-many-failed-log-ins"
        else:
            assert "failed log-ins" in refused.get_data(as_text=True)
    assert len(verified) == 10
    # The guesses were failed log-ins of the account: strangers now wait to log in as well.
    assert_429_problem(token_attempt(app.test_client(), "dave", PASSWORD))
    if how == "api":  # a change that sets no new password is not limited
        rename = thief.patch(ME, json={"display_name": "Dave"}, headers=bearer(token))
        assert rename.status_code == 200

    # The owner's browser is a known device: it still logs in and changes the password.
    assert AuthActions(owner).login("dave", PASSWORD).status_code == 302
    owners_token = token_attempt(owner, "dave", PASSWORD).get_json()["token"]
    changed = change_password(owner, PASSWORD, how=how, token=owners_token)
    assert changed.status_code == (200 if how == "api" else 302)


@pytest.mark.parametrize("how", ["api", "page"])
def test_guessing_the_current_password_spends_the_per_ip_log_in_limit(
    make_limited: LimitedApps, how: str
) -> None:
    """Each password change asked for counts against the address's log-in limit, shared with
    the log-in routes; over it, 429 before anything else."""
    app = make_limited(USERHUB_RATELIMIT_LOGIN="5 per minute")
    add_user(app, "dave")
    owner = app.test_client()
    assert AuthActions(owner).login("dave", PASSWORD).status_code == 302  # from 127.0.0.1
    thief, token = stolen(app, owner, how)

    guesses = [change_password(thief, WRONG, how=how, token=token, ip="10.0.0.2") for _ in range(6)]
    assert [g.status_code for g in guesses] == [422] * 5 + [429]
    assert "Too many attempts from your address" in guesses[-1].get_data(as_text=True)
    assert 1 <= int(guesses[-1].headers["Retry-After"]) <= 61
    assert_429_problem(token_attempt(app.test_client(), "dave", PASSWORD, ip="10.0.0.2"))
    assert token_attempt(app.test_client(), "dave", PASSWORD, ip="10.0.0.3").status_code == 201
    if how == "api":  # a change without a new password is not a log-in attempt
        rename = thief.patch(
            ME,
            json={"display_name": "Dave", "password": None},
            headers=bearer(token),
            environ_overrides={"REMOTE_ADDR": "10.0.0.2"},
        )
        assert rename.status_code == 200


# --- Redis ---------------------------------------------------------------------------------


@pytest.fixture
def empty_redis() -> Iterator[redis.Redis]:
    """The test Redis database (its own number, e.g. ``/15``), emptied before and after."""
    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@needs_redis
@pytest.mark.parametrize("storage_uri", [REDIS_URL], ids=["redis"])
def test_counts_live_in_redis(make_limited: LimitedApps, empty_redis: redis.Redis) -> None:
    """With Redis storage the counts are in Redis, under userhub's prefix, where every process
    sees them; a fresh app (as a restarted worker would be) still sees them."""
    config = {"RATELIMIT_STORAGE_URI": REDIS_URL, "USERHUB_RATELIMIT_ACCOUNT": "2 per hour"}
    app = make_limited(**config)
    client = app.test_client()
    assert [token_attempt(client, UNKNOWN, WRONG).status_code for _ in range(2)] == [401, 401]
    add_user(app)
    assert token_attempt(client, "张三", PASSWORD).status_code == 201  # now a known device
    assert token_attempt(client, "张三", WRONG).status_code == 401
    keys = {key.decode() for key in cast(list[bytes], empty_redis.keys("*"))}
    assert any("userhub" in key and "failed-log-ins/" in key for key in keys), keys
    assert any("userhub" in key and "failed-log-ins-device/" in key for key in keys), keys
    assert any("userhub" in key and "log-in" in key for key in keys), keys

    restarted = make_limited(**config).test_client()
    assert_429_problem(token_attempt(restarted, UNKNOWN, WRONG))


@pytest.mark.parametrize("storage_uri", ["redis://127.0.0.1:1/0", "file-in-a-file"])
def test_unreachable_storage_fails_open(
    make_limited: LimitedApps, caplog: pytest.LogCaptureFixture, storage_uri: str, tmp_path: Path
) -> None:
    """A Redis outage, or a limits file that cannot be written, must not lock everyone out:
    limits lapse, and it is logged."""
    if storage_uri == "file-in-a-file":
        (tmp_path / "not-a-folder").write_text("")
        storage_uri = f"sqlite:///{tmp_path}/not-a-folder/ratelimits.sqlite3"
    app = make_limited(
        RATELIMIT_STORAGE_URI=storage_uri,
        USERHUB_RATELIMIT_LOGIN="1 per minute",
        USERHUB_RATELIMIT_ACCOUNT="1 per hour",
    )
    add_user(app)
    client = app.test_client()
    assert token_attempt(client, "张三", WRONG).status_code == 401
    reply = token_attempt(client, "张三", PASSWORD)
    assert reply.status_code == 201
    assert token_attempt(client, "张三", WRONG).status_code == 401  # a known device's bucket
    token = reply.get_json()["token"]
    for _ in range(2):  # a wrong current password, counted nowhere while the storage is out
        wrong = {"password": NEW_PASSWORD, "current_password": WRONG}
        assert client.patch(ME, json=wrong, headers=bearer(token)).status_code == 422
    assert "rate limit storage unreachable" in caplog.text


def attempt_over_a_new_connection(
    base: str, username: str, password: str = WRONG, forwarded_for: str | None = None
) -> requests.Response:
    """A log-in on a connection of its own, so that either worker may take it."""
    headers = {"Connection": "close"}
    if forwarded_for:
        headers["X-Forwarded-For"] = forwarded_for
    with requests.Session() as session:
        return session.post(
            f"{base}/api/v1/tokens",
            json={"username": username, "password": password},
            headers=headers,
            timeout=30,
        )


ACCOUNT_LIMIT = 10  # USERHUB_RATELIMIT_ACCOUNT's default: 10 per 6 minutes
IP_LIMIT = 5


@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.parametrize("storage", ["file", pytest.param("redis", marks=needs_redis)])
def test_a_real_server_counts_across_its_workers(
    database_url: str, tmp_path: Path, request: pytest.FixtureRequest, storage: str
) -> None:
    """``userhub serve`` with 2 workers, in production mode: on the default storage (no Redis)
    and on Redis, each limit holds exactly, whichever worker takes each attempt (with
    ``memory://`` each worker counted on its own: 18 failures before a 429, and a refused
    client got a token from the other worker)."""
    env = {
        "USERHUB_RATELIMIT_LOGIN": f"{IP_LIMIT} per minute",
        # The account's attempts come "through nginx" from 40 addresses, so that the per-IP
        # limit never answers for it; the per-IP attempts come straight from 127.0.0.1.
        "USERHUB_TRUSTED_PROXIES": "1",
    }
    if storage == "redis":
        request.getfixturevalue("empty_redis")
        env["USERHUB_RATELIMIT_STORAGE_URI"] = REDIS_URL
    with running_server("production", database_url, tmp_path, env=env) as server:
        # Which worker answers is seen in Linux's /proc; elsewhere, 62 fresh connections.
        workers = worker_pids(server) if sys.platform.startswith("linux") else set()
        cpu_before = {pid: cpu_ticks(pid) for pid in workers}
        registered = requests.post(
            f"{server.base}/api/v1/users",
            json={"username": "张三", "password": PASSWORD},
            timeout=30,
        )
        assert registered.status_code == 201, registered.text

        # Per account: exactly 10 wrong passwords are checked, then every attempt is refused,
        # the right password too.
        replies = [
            attempt_over_a_new_connection(server.base, "张三", forwarded_for=f"10.0.0.{n}")
            for n in range(40)
        ]
        replies.append(attempt_over_a_new_connection(server.base, "张三", PASSWORD, "10.0.1.1"))
        assert [r.status_code for r in replies] == [401] * ACCOUNT_LIMIT + [429] * 31
        assert all("failed log-ins for this account" in r.text for r in replies[ACCOUNT_LIMIT:])
        assert 300 < int(replies[-1].headers["Retry-After"]) <= 360

        # Per account, at the same moment: a place in the bucket is taken before the password
        # is checked, so 16 wrong passwords sent at once are not all checked (they were, 16
        # of 16, while the attempt was counted only after its hash).
        with ThreadPoolExecutor(max_workers=16) as pool:
            burst = list(
                pool.map(
                    lambda n: attempt_over_a_new_connection(
                        server.base, "李四", forwarded_for=f"10.0.2.{n}"
                    ),
                    range(16),
                )
            )
        assert sorted(r.status_code for r in burst) == [401] * ACCOUNT_LIMIT + [429] * 6

        # Per client IP: 20 attempts at once, for 20 accounts; exactly 5 get through.
        with ThreadPoolExecutor(max_workers=10) as pool:
            burst = list(
                pool.map(lambda n: attempt_over_a_new_connection(server.base, f"u{n}"), range(20))
            )
        statuses = sorted(r.status_code for r in burst)
        assert statuses == [401] * IP_LIMIT + [429] * (20 - IP_LIMIT)
        refused = [r for r in burst if r.status_code == 429]
        assert all("from your address" in r.text for r in refused)
        assert all(1 <= int(r.headers["Retry-After"]) <= 61 for r in refused)

        # Both workers answered some of them (an idle worker uses no CPU at all).
        if workers:
            assert len(workers) == 2, workers
            busy = {pid for pid in workers if cpu_ticks(pid) > cpu_before[pid]}
            assert busy == workers, (cpu_before, {pid: cpu_ticks(pid) for pid in workers})
