"""The engine: SQLite shared safely by several workers; MySQL pooled, and a pooled connection
the server closed while it sat idle is replaced before a request uses it."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from tests.helpers import needs_mysql
from userhub import database
from userhub.database import engine_options
from userhub.extensions import db


def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(app: Flask, backend: str) -> None:
    with app.app_context():
        if backend != "sqlite":
            charset = db.session.execute(sa.text("SELECT @@character_set_connection")).scalar()
            assert charset == "utf8mb4"
            return
        with db.engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 5000


@needs_mysql
@pytest.mark.parametrize("backend", ["mysql"])
def test_mysql_connections_ask_for_causal_reads(app: Flask) -> None:
    """On Galera, every read waits for writes committed on other nodes (the scale-out test
    shows the effect); on one MariaDB server the setting is accepted and costs nothing."""
    with app.app_context():
        for _ in range(2):  # a fresh connection, then one from the pool
            assert db.session.execute(sa.text("SELECT @@SESSION.wsrep_sync_wait")).scalar() == 1
            db.session.remove()


def test_mysql_engines_keep_a_pool_of_the_configured_size() -> None:
    options = engine_options("mysql+pymysql://u:p@127.0.0.1/db?charset=utf8mb4", pool_size=7)
    assert options["pool_size"] == 7


@needs_mysql
@pytest.mark.parametrize("backend", ["mysql"])
def test_a_pooled_connection_the_server_closed_while_idle_is_replaced(
    app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(database, "PING_AFTER_IDLE_SECONDS", 0.2)
    with app.app_context():
        victim = db.session.execute(sa.text("SELECT CONNECTION_ID()")).scalar_one()
        db.session.remove()  # back to the pool, idle
    admin = sa.create_engine(app.config["SQLALCHEMY_DATABASE_URI"])  # not from the app's pool
    with admin.connect() as connection:
        connection.exec_driver_sql(f"KILL CONNECTION {int(victim)}")
    admin.dispose()
    time.sleep(0.3)
    response = client.get("/api/v1/health")
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json() == {"status": "ok", "database": "ok"}


INSERT_USER = (
    "INSERT INTO user (username, username_key, password_hash, is_admin, session_version, "
    "created_at, updated_at) VALUES ('open', 'open', 'x', 0, 1, '2026-01-01', '2026-01-01')"
)


def test_work_left_uncommitted_is_rolled_back_when_the_connection_returns_to_the_pool(
    app: Flask,
) -> None:
    with app.app_context():
        raw = db.engine.raw_connection()  # bypasses the ORM session and its own rollback
        raw.cursor().execute(INSERT_USER)
        raw.close()  # back to the pool with the transaction still open
        with db.engine.connect() as connection:
            assert connection.exec_driver_sql("SELECT COUNT(*) FROM user").scalar() == 0
        db.session.execute(sa.text(INSERT_USER))
        db.session.remove()  # the ORM's way: never committed
        assert db.session.execute(sa.text("SELECT COUNT(*) FROM user")).scalar() == 0


@needs_mysql
@pytest.mark.parametrize("backend", ["mysql"])
def test_a_connection_that_died_under_a_request_is_a_503(app: Flask) -> None:
    """PyMySQL reports a socket that is gone as InterfaceError, not OperationalError (seen once
    when a Galera node was killed under load): still the database going away, so 503."""

    def lose_the_connection() -> str:
        db.session.execute(sa.text("SELECT 1"))
        db.session.connection().connection.dbapi_connection.close()  # type: ignore[union-attr]
        db.session.execute(sa.text("SELECT 1"))
        return "unreachable"

    app.add_url_rule("/lose-the-connection", view_func=lose_the_connection)
    app.config["TESTING"] = False  # answered by the error handlers, as in production
    response = app.test_client().get("/lose-the-connection")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"


@needs_mysql
@pytest.mark.parametrize("backend", ["mysql"])
def test_a_connection_lost_after_the_answer_does_not_undo_it(app: Flask) -> None:
    """The server drops the connection after the view has answered (a Galera node killed):
    ending the session cannot roll back, and the answer stands, never a bare 500."""

    def answer_then_lose_the_connection() -> str:
        connection_id = db.session.execute(sa.text("SELECT CONNECTION_ID()")).scalar_one()
        admin = sa.create_engine(app.config["SQLALCHEMY_DATABASE_URI"])
        with admin.connect() as connection:
            connection.exec_driver_sql(f"KILL CONNECTION {int(connection_id)}")
        admin.dispose()
        return "answered"

    app.add_url_rule("/answer-then-lose", view_func=answer_then_lose_the_connection)
    app.config["TESTING"] = False
    response = app.test_client().get("/answer-then-lose")
    assert response.status_code == 200
    assert response.get_data(as_text=True) == "answered"
