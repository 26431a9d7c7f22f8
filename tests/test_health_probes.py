"""``/api/v1/health/live`` and ``/api/v1/health/ready``: what an orchestrator's probes see, on a
real SQLite file and MariaDB, with the rate-limit storage in the default file and in Redis.
(``/api/v1/health`` itself is tested in test_api_misc.py.)"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text

from tests.helpers import REDIS_URL, UNREACHABLE_MYSQL, AppBuilder, needs_redis
from userhub.extensions import db

LIVE = "/api/v1/health/live"
READY = "/api/v1/health/ready"
READY_ANSWER = {
    "status": "ok",
    "database": "ok",
    "migrations": "current",
    "rate_limit_storage": "off",  # the tests' apps count no limits unless they ask
}
FIRST_REVISION = "0001"


@contextlib.contextmanager
def schema_revision(app: Flask, revision: str) -> Iterator[None]:
    """The database's schema said to be at ``revision``, then back (MySQL's database is kept
    from test to test)."""

    def set_to(value: str) -> None:
        with app.app_context():
            db.session.execute(text("UPDATE alembic_version SET version_num = :r"), {"r": value})
            db.session.commit()

    with app.app_context():
        (current,) = db.session.execute(text("SELECT version_num FROM alembic_version")).one()
    set_to(revision)
    try:
        yield
    finally:
        set_to(current)


def test_live_answers_without_asking_anything_else(
    client: FlaskClient, tmp_path: Path, build_app: AppBuilder
) -> None:
    assert client.get(LIVE).get_json() == {"status": "ok"}
    folder = tmp_path / "a-folder.sqlite3"
    folder.mkdir()  # a database that cannot be opened: the process still lives
    response = build_app(f"sqlite:///{folder}").test_client().get(LIVE)
    assert response.status_code == 200 and response.get_json() == {"status": "ok"}


def test_ready_when_the_database_answers_with_this_codes_schema(client: FlaskClient) -> None:
    response = client.get(READY)
    assert response.status_code == 200
    assert response.get_json() == READY_ANSWER


@pytest.mark.parametrize(
    ("revision", "status", "state"),
    [(FIRST_REVISION, 503, "behind"), ("ffffffffffff", 200, "ahead")],
)
def test_ready_follows_the_schema(
    app: Flask, client: FlaskClient, revision: str, status: int, state: str
) -> None:
    """An older schema (``db upgrade`` has not run): not ready. A newer one (the code was
    rolled back): ready, as ``userhub serve`` starts on it."""
    with schema_revision(app, revision):
        response = client.get(READY)
    assert response.status_code == status
    assert response.get_json()["migrations"] == state
    assert response.get_json()["status"] == ("ok" if status == 200 else "unavailable")


def test_not_ready_without_userhub_tables(build_app: AppBuilder, tmp_path: Path) -> None:
    response = build_app(f"sqlite:///{tmp_path / 'empty.db'}").test_client().get(READY)
    assert response.status_code == 503
    assert response.get_json() == {**READY_ANSWER, "status": "unavailable", "migrations": "missing"}


def test_not_ready_when_the_database_cannot_be_reached(build_app: AppBuilder) -> None:
    response = build_app(UNREACHABLE_MYSQL).test_client().get(READY)
    assert response.status_code == 503
    assert response.get_json() == {
        **READY_ANSWER,
        "status": "unavailable",
        "database": "unreachable",
        "migrations": "unknown",
    }


@pytest.mark.parametrize("storage", ["file", pytest.param("redis", marks=needs_redis)])
def test_ready_asks_the_rate_limit_storage(
    build_app: AppBuilder, database_url: str, storage: str
) -> None:
    settings: dict[str, Any] = {"RATELIMIT_ENABLED": True}
    if storage == "redis":
        settings["RATELIMIT_STORAGE_URI"] = REDIS_URL
        redis.Redis.from_url(REDIS_URL).ping()
    response = build_app(database_url, **settings).test_client().get(READY)
    assert response.status_code == 200
    assert response.get_json() == {**READY_ANSWER, "rate_limit_storage": "ok"}


def test_not_ready_when_redis_does_not_answer(build_app: AppBuilder, database_url: str) -> None:
    """Limits fail open when their Redis is down (nobody is locked out), so the instance says
    it is not ready: a load balancer can send the traffic to one that still counts."""
    app = build_app(
        database_url, RATELIMIT_ENABLED=True, RATELIMIT_STORAGE_URI="redis://127.0.0.1:9/0"
    )
    response = app.test_client().get(READY)
    assert response.status_code == 503
    assert response.get_json() == {
        **READY_ANSWER,
        "status": "unavailable",
        "rate_limit_storage": "unreachable",
    }
