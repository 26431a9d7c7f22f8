"""Fixtures: an app on a real database, its client and CLI runner, and an ``auth`` helper.

Every test that uses ``app`` runs on SQLite, and again on MySQL/MariaDB when
``USERHUB_TEST_DATABASE_URL`` is set (CI sets it). Each test starts from an empty, fully
migrated database. With ``USERHUB_FORBID_SKIPS=1`` a skipped test fails the run, so CI cannot
pass with its MySQL tests quietly skipped.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from flask_migrate import upgrade
from sqlalchemy.engine import make_url

from userhub import create_app
from userhub.extensions import db

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
    return create_app(
        {"SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": TEST_SECRET, "TESTING": True, **config}
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
        connection.exec_driver_sql("ALTER TABLE `user` AUTO_INCREMENT = 1")
    engine.dispose()
    return MYSQL_URL


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
