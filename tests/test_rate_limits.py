"""Rate limits: per client IP on log-in and register, per account on failed log-ins.

In process on SQLite and MySQL with ``memory://`` and with the real Redis
(``USERHUB_TEST_REDIS_URL``, which CI sets), and against a real two-worker server, where only a
shared storage can make the count right.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol, cast

import pytest
import redis
import requests
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from tests.helpers import (
    PASSWORD,
    PROBLEM_MIMETYPE,
    REDIS_URL,
    TEST_SECRET,
    AppBuilder,
    AuthActions,
    needs_redis,
)
from tests.live_server import running_server
from userhub import create_app
from userhub.extensions import db
from userhub.services import users

GENEROUS = "1000 per minute"
UNKNOWN = "nobody-by-this-name"
WRONG = "not the password at all"


class LimitedApps(Protocol):
    """The ``make_limited`` fixture: ``make_limited(**config)``."""

    def __call__(self, **config: Any) -> Flask: ...


@pytest.fixture
def make_limited(build_app: AppBuilder, database_url: str) -> LimitedApps:
    """Build apps with limits on (generous unless a test says otherwise)."""

    def build(**config: Any) -> Flask:
        limits_on = {
            "RATELIMIT_ENABLED": True,
            "USERHUB_RATELIMIT_LOGIN": GENEROUS,
            "USERHUB_RATELIMIT_REGISTER": GENEROUS,
            "USERHUB_RATELIMIT_ACCOUNT": "1000 per hour",
        }
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
    for attempt in range(3):  # from three addresses: the account is what counts
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
    assert answers["张三"] == answers[UNKNOWN]
    assert [status for status, _ in answers[UNKNOWN]] == [401, 401, 429]

    auth = AuthActions(app.test_client())
    wrong = auth.login("王五", WRONG).get_data(as_text=True)
    add_user(app, "王五")
    also_wrong = auth.login("王五", WRONG).get_data(as_text=True)
    assert "Invalid username or password." in wrong

    def strip(html: str) -> str:
        return html.split('name="csrf_token"')[0]  # the token differs

    assert strip(wrong) == strip(also_wrong)


def test_account_key_ignores_case_and_width(make_limited: LimitedApps) -> None:
    """``ZhangSan`` and ``ｚｈａｎｇｓａｎ`` are the same account, so they share one count."""
    app = make_limited(USERHUB_RATELIMIT_ACCOUNT="2 per hour")
    add_user(app, "zhangsan")
    client = app.test_client()
    assert token_attempt(client, "ZhangSan", WRONG).status_code == 401
    assert token_attempt(client, "ｚｈａｎｇｓａｎ", WRONG).status_code == 401
    assert_429_problem(token_attempt(client, "zhangsan", PASSWORD))


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
def test_counts_live_in_redis(make_limited: LimitedApps, empty_redis: redis.Redis) -> None:
    """With Redis storage the counts are in Redis, under userhub's prefix, where every process
    sees them; a fresh app (as a restarted worker would be) still sees them."""
    config = {"RATELIMIT_STORAGE_URI": REDIS_URL, "USERHUB_RATELIMIT_ACCOUNT": "2 per hour"}
    client = make_limited(**config).test_client()
    assert [token_attempt(client, UNKNOWN, WRONG).status_code for _ in range(2)] == [401, 401]
    keys = {key.decode() for key in cast(list[bytes], empty_redis.keys("*"))}
    assert any("userhub" in key and "failed-log-ins" in key for key in keys), keys
    assert any("userhub" in key and "log-in" in key for key in keys), keys

    restarted = make_limited(**config).test_client()
    assert_429_problem(token_attempt(restarted, UNKNOWN, WRONG))


def test_unreachable_storage_fails_open(
    make_limited: LimitedApps, caplog: pytest.LogCaptureFixture
) -> None:
    """A Redis outage must not lock everyone out: limits lapse, and it is logged."""
    app = make_limited(
        RATELIMIT_STORAGE_URI="redis://127.0.0.1:1/0",
        USERHUB_RATELIMIT_LOGIN="1 per minute",
        USERHUB_RATELIMIT_ACCOUNT="1 per hour",
    )
    add_user(app)
    client = app.test_client()
    assert token_attempt(client, "张三", WRONG).status_code == 401
    assert token_attempt(client, "张三", PASSWORD).status_code == 201
    assert "rate limit storage unreachable" in caplog.text


@needs_redis
@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_real_server_counts_across_its_workers(
    database_url: str, tmp_path: Path, empty_redis: redis.Redis
) -> None:
    """``userhub serve`` with 2 workers: with Redis the limit holds exactly, whichever worker
    takes each request (with ``memory://`` each worker would count on its own)."""
    env = {
        "USERHUB_RATELIMIT_STORAGE_URI": REDIS_URL,
        "USERHUB_RATELIMIT_LOGIN": "5 per minute",
    }
    with running_server("production", database_url, tmp_path, env=env) as server:
        statuses = []
        for _ in range(8):  # a new connection each time, so both workers take some
            with requests.Session() as session:
                reply = session.post(
                    f"{server.base}/api/v1/tokens",
                    json={"username": UNKNOWN, "password": WRONG},
                    headers={"Connection": "close"},
                    timeout=10,
                )
                statuses.append(reply.status_code)
        assert statuses == [401] * 5 + [429] * 3
        assert 1 <= int(reply.headers["Retry-After"]) <= 61
