"""Fixtures: an app on a real database, its client and CLI runner, and an ``auth`` helper.

Every test that uses ``app`` runs on SQLite, and again on MySQL/MariaDB when
``USERHUB_TEST_DATABASE_URL`` is set (CI sets it). Each test starts from an empty, fully
migrated database. With ``USERHUB_FORBID_SKIPS=1`` a skipped test fails the run, so CI cannot
pass with its MySQL tests quietly skipped.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from flask_migrate import upgrade
from sqlalchemy.engine import make_url
from werkzeug.http import HTTP_STATUS_CODES

from userhub import create_app
from userhub.extensions import db
from userhub.services import users

MYSQL_URL = os.environ.get("USERHUB_TEST_DATABASE_URL", "")
BACKENDS = ["sqlite"] + (["mysql"] if MYSQL_URL else [])
TEST_SECRET = "test-secret-key-that-is-long-enough-0123456789"
PASSWORD = "correct horse battery"


def pytest_configure(config: pytest.Config) -> None:
    if MYSQL_URL:
        name = make_url(MYSQL_URL).database or ""
        if name in {"", "test", "mysql", "information_schema", "performance_schema", "sys"}:
            raise pytest.UsageError(
                f"USERHUB_TEST_DATABASE_URL names database {name!r}: tests empty their database, "
                "so give them one of their own, e.g. .../userhub_test"
            )


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter else 0
    if os.environ.get("USERHUB_FORBID_SKIPS") == "1" and skipped and exitstatus == 0:
        reporter.write_line(f"USERHUB_FORBID_SKIPS=1: {skipped} test(s) skipped", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def mysql_url(suffix: str = "") -> str:
    """The test MySQL URL, optionally for a sibling database (``userhub_test_<suffix>``)."""
    url = make_url(MYSQL_URL)
    return url.set(database=f"{url.database}{suffix}").render_as_string(hide_password=False)


def recreate_mysql_database(url: str) -> None:
    """Drop and create the database an URL names (only ever a test database)."""
    parsed = make_url(url)
    name = parsed.database or ""
    assert re.fullmatch(r"\w+", name) and name != "test"
    server = sa.create_engine(parsed.set(database=""))
    with server.begin() as connection:
        connection.exec_driver_sql(f"DROP DATABASE IF EXISTS `{name}`")
        connection.exec_driver_sql(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    server.dispose()


def make_app(url: str, **config: Any) -> Flask:
    """An app on ``url``. Rate limits are off unless a test turns them on (test_rate_limits):
    other tests log in and register far more often than any client should."""
    return create_app(
        {
            "SQLALCHEMY_DATABASE_URI": url,
            "SECRET_KEY": TEST_SECRET,
            "TESTING": True,
            "RATELIMIT_ENABLED": False,
            **config,
        }
    )


@pytest.fixture(autouse=True)
def isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No developer's ``.env`` or ``USERHUB_*`` variables leak into a test."""
    for name in list(os.environ):
        if name.startswith("USERHUB_") and name != "USERHUB_TEST_DATABASE_URL":
            monkeypatch.delenv(name)
    instance = tmp_path / "instance"
    monkeypatch.setenv("USERHUB_INSTANCE_PATH", str(instance))
    monkeypatch.chdir(tmp_path)
    return instance


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """One migrated database per backend, made once: SQLite as a file to copy, MySQL in place."""
    templates: dict[str, str] = {}
    folder = tmp_path_factory.mktemp("template")
    sqlite_file = folder / "template.sqlite3"
    targets = {"sqlite": f"sqlite:///{sqlite_file}"}
    if MYSQL_URL:
        recreate_mysql_database(MYSQL_URL)
        targets["mysql"] = MYSQL_URL
    for backend, url in targets.items():
        app = make_app(url)
        with app.app_context():
            upgrade()
            db.engine.dispose()
        templates[backend] = url
    templates["sqlite_file"] = str(sqlite_file)
    yield templates


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database_url(backend: str, migrated_template: dict[str, str], tmp_path: Path) -> str:
    """An empty, migrated database for this test."""
    if backend == "sqlite":
        target = tmp_path / "userhub.sqlite3"
        shutil.copy(migrated_template["sqlite_file"], target)
        return f"sqlite:///{target}"
    engine = sa.create_engine(MYSQL_URL)
    with engine.begin() as connection:
        connection.exec_driver_sql("DELETE FROM `user`")
        connection.exec_driver_sql("DELETE FROM `idempotency_record`")
        connection.exec_driver_sql("ALTER TABLE `user` AUTO_INCREMENT = 1")
    engine.dispose()
    return MYSQL_URL


@pytest.fixture
def apps() -> Iterator[Callable[..., Flask]]:
    """Build apps with ``make_app(url, **config)``; their engines are closed after the test."""
    made: list[Flask] = []

    def make(url: str, **config: Any) -> Flask:
        app = make_app(url, **config)
        made.append(app)
        return app

    yield make
    for app in made:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


@pytest.fixture
def app(database_url: str, isolated_environment: Path) -> Iterator[Flask]:
    app = make_app(database_url)
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: Flask) -> FlaskCliRunner:
    return app.test_cli_runner()


def csrf_token(html: str) -> str:
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html)
    assert match, "page has no CSRF token"
    return match.group(1)


class AuthActions:
    """Register and log in through the real pages, as a browser would."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client

    def token(self, path: str = "/login") -> str:
        return csrf_token(self.client.get(path).get_data(as_text=True))

    def register(self, username: str = "张三", password: str = PASSWORD) -> Any:
        return self.client.post(
            "/register",
            data={
                "username": username,
                "password": password,
                "confirm": password,
                "csrf_token": self.token("/register"),
            },
        )

    def login(
        self,
        username: str = "张三",
        password: str = PASSWORD,
        path: str = "/test_post",
        **extra: str,
    ) -> Any:
        return self.client.post(
            path,
            data={"username": username, "password": password, "csrf_token": self.token(), **extra},
        )

    def logout(self) -> Any:
        return self.client.post("/logout", data={"csrf_token": self.token("/account")})


@pytest.fixture
def auth(client: FlaskClient) -> AuthActions:
    return AuthActions(client)


# --- Helpers for the /api/v1 tests -------------------------------------------------------------

PROBLEM_MIMETYPE = "application/problem+json"
# Words only internals would put in an error: a traceback, a driver, SQL.
INTERNALS = (
    "traceback",
    'file "',
    "sqlalchemy",
    "pymysql",
    "sqlite3",
    "integrityerror",
    "operationalerror",
    "select ",
    "insert into",
    "update user",
)


def assert_problem(response: Any, status: int) -> dict[str, Any]:
    """The response is an RFC 9457 problem with this status and no internals; its body."""
    text = response.get_data(as_text=True)
    assert response.status_code == status, text
    assert response.mimetype == PROBLEM_MIMETYPE
    body: dict[str, Any] = json.loads(text)
    assert {"type", "title", "status", "detail"} <= body.keys(), body
    assert body["status"] == status
    assert body["title"] == HTTP_STATUS_CODES[status]
    assert isinstance(body["detail"], str) and body["detail"]
    assert [word for word in INTERNALS if word in text.lower()] == []
    return body


def error_fields(problem: dict[str, Any]) -> set[str]:
    """The fields a validation problem names."""
    return {error["field"] for error in problem.get("errors", [])}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass(frozen=True)
class Account:
    """A user made for a test, with a token of its own."""

    id: int
    username: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.token)


class ApiActions:
    """Accounts and tokens through ``/api/v1``, and counts of what the database holds."""

    def __init__(self, app: Flask, client: FlaskClient) -> None:
        self.app = app
        self.client = client

    def register(self, username: str = "张三", password: str = PASSWORD, **fields: Any) -> Any:
        return self.client.post(
            "/api/v1/users", json={"username": username, "password": password, **fields}
        )

    def token(self, username: str = "张三", password: str = PASSWORD) -> str:
        response = self.client.post(
            "/api/v1/tokens", json={"username": username, "password": password}
        )
        assert response.status_code == 201, response.get_data(as_text=True)
        token: str = response.get_json()["token"]
        return token

    def account(
        self, username: str = "张三", password: str = PASSWORD, *, is_admin: bool = False
    ) -> Account:
        """A user made by the user service (admins cannot register through the API)."""
        with self.app.app_context():
            user_id = users.register_user(username, password, is_admin=is_admin).id
        return Account(user_id, username, self.token(username, password))

    def count(self, table: str) -> int:
        with self.app.app_context():
            query = sa.select(sa.func.count()).select_from(db.metadata.tables[table])
            return int(db.session.scalar(query) or 0)

    def rows(self, table: str) -> list[dict[str, Any]]:
        """Every row of a table, as dicts of column values."""
        with self.app.app_context():
            result = db.session.execute(sa.select(db.metadata.tables[table]))
            return [dict(row) for row in result.mappings()]

    def user_row(self, username: str) -> dict[str, Any]:
        return next(row for row in self.rows("user") if row["username"] == username)


@pytest.fixture
def api(app: Flask, client: FlaskClient) -> ApiActions:
    return ApiActions(app, client)


@pytest.fixture
def member(api: ApiActions) -> Account:
    """A user with a token."""
    return api.account("member")


@pytest.fixture
def admin(api: ApiActions) -> Account:
    """An administrator with a token."""
    return api.account("admin", is_admin=True)


@pytest.fixture
def app_factory(database_url: str) -> Iterator[Callable[..., Flask]]:
    """Build apps on this test's database with extra settings (disposed of afterwards)."""
    built: list[Flask] = []

    def build(**config: Any) -> Flask:
        built.append(make_app(database_url, **config))
        return built[-1]

    yield build
    for each in built:
        with each.app_context():
            db.session.remove()
            db.engine.dispose()


SECRET_DETAIL = "secret internal detail"
# Nothing listens on port 9 (discard): a MySQL server that cannot be reached.
UNREACHABLE_MYSQL = (
    "mysql+pymysql://root@127.0.0.1:9/userhub_test?charset=utf8mb4&connect_timeout=2"
)


def get_a_crashing_route(app: Flask, path: str, caplog: pytest.LogCaptureFixture) -> Any:
    """GET a route added at ``path`` that raises an exception carrying ``SECRET_DETAIL``,
    answered by the error handlers as in production (not re-raised as in testing)."""

    def explode() -> str:
        raise RuntimeError(SECRET_DETAIL)

    app.add_url_rule(path, view_func=explode)
    app.config["TESTING"] = False
    with caplog.at_level(logging.ERROR, logger="userhub"):
        return app.test_client().get(path)


def own_database(backend: str, workdir: Path, name: str) -> str:
    """An empty database for a live server: a SQLite file in ``workdir``, or the sibling MySQL
    database ``userhub_test_<name>``, dropped and created."""
    if backend == "sqlite":
        return f"sqlite:///{workdir / f'{name}.sqlite3'}"
    url = mysql_url(f"_{name}")
    recreate_mysql_database(url)
    return url
