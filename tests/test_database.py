"""The engine: SQLite shared safely by several workers; MySQL pooled, and a pooled connection
the server closed while it sat idle is replaced before a request uses it."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from tests.helpers import PASSWORD, ApiActions, AppBuilder, bearer, needs_mysql
from userhub import database, transactions
from userhub.database import engine_options
from userhub.extensions import db
from userhub.models import User
from userhub.services import users


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
    "INSERT INTO user (username, username_key, password_hash, is_admin, "
    "created_at, updated_at) VALUES ('open', 'open', 'x', 0, '2026-01-01', '2026-01-01')"
)


def test_work_left_uncommitted_is_rolled_back_when_the_connection_returns_to_the_pool(
    app: Flask, backend: str
) -> None:
    with app.app_context():
        raw = db.engine.raw_connection()  # bypasses the ORM session and its own rollback
        if backend == "mysql":
            raw.begin()  # PyMySQL's: its connections autocommit (begin_on_write)
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


def statements_on(app: Flask) -> dict[str, int]:
    """What the app's one pooled connection has sent the server so far (MySQL counts it per
    connection): statements in all, and the transaction commands among them."""
    with app.app_context():
        rows = db.session.execute(
            sa.text(
                "SHOW SESSION STATUS WHERE Variable_name IN "
                "('Questions', 'Com_begin', 'Com_commit', 'Com_rollback')"
            )
        ).all()
        db.session.remove()
    return {name.lower(): int(value) for name, value in rows}


def sent_by(app: Flask, action: Callable[[], object]) -> dict[str, int]:
    before = statements_on(app)
    action()
    after = statements_on(app)
    sent = {name: after[name] - before[name] for name in before}
    sent["questions"] -= 1  # the second SHOW
    return sent


@needs_mysql
@pytest.mark.parametrize("backend", ["mysql"])
def test_a_read_costs_one_statement_and_a_write_one_transaction(
    build_app: AppBuilder, database_url: str
) -> None:
    """``GET /api/v1/users/me`` sends its one SELECT and nothing to end a transaction (there is
    none); a PATCH sends BEGIN, its statements and COMMIT."""
    app = build_app(database_url, USERHUB_DB_POOL_SIZE=1)  # every request on one connection
    api = ApiActions(app, app.test_client())
    account = api.account("reader")

    def me() -> TestResponse:
        return api.client.get("/api/v1/users/me", headers=bearer(account.token))

    assert me().status_code == 200
    assert sent_by(app, me) == {"questions": 1, "com_begin": 0, "com_commit": 0, "com_rollback": 0}

    def rename() -> object:
        patched = api.client.patch(
            "/api/v1/users/me", json={"display_name": "张三"}, headers=bearer(account.token)
        )
        assert patched.status_code == 200, patched.get_data(as_text=True)
        return patched

    sent = sent_by(app, rename)
    assert (sent["com_begin"], sent["com_commit"], sent["com_rollback"]) == (1, 1, 0), sent
    assert api.user_row("reader")["display_name"] == "张三"


@needs_mysql
@pytest.mark.parametrize("backend", ["mysql"])
def test_a_locking_read_holds_its_lock_until_the_commit(app: Flask) -> None:
    """A ``SELECT … FOR UPDATE`` begins the transaction (reads outside one would lock nothing):
    another connection cannot change the row until the first commits."""
    with app.app_context():
        user_id = users.register_user("locked", PASSWORD).id
        db.session.remove()
        db.session.scalar(sa.select(User).where(User.id == user_id).with_for_update())
        other = sa.create_engine(app.config["SQLALCHEMY_DATABASE_URI"])
        with other.connect() as connection:
            connection.exec_driver_sql("SET SESSION innodb_lock_wait_timeout = 1")
            with pytest.raises(sa.exc.OperationalError) as waited:
                connection.exec_driver_sql(
                    f"UPDATE user SET display_name = 'x' WHERE id = {user_id}"
                )
            assert waited.value.orig.args[0] == transactions.LOCK_WAIT_TIMEOUT  # type: ignore[union-attr]
        other.dispose()
        db.session.commit()


@needs_mysql
@pytest.mark.parametrize("backend", ["mysql"])
def test_a_failed_write_leaves_nothing_behind(app: Flask) -> None:
    """Begun on the first write, the transaction still holds every write until COMMIT: a
    failure after the first of two writes undoes both."""

    def two_writes_then_fail() -> None:
        db.session.add(User(username="first", username_key="first", password_hash="x"))
        db.session.flush()
        db.session.execute(sa.text("UPDATE user SET display_name = 'changed'"))
        raise RuntimeError("the second half failed")

    with app.app_context():
        with pytest.raises(RuntimeError):
            transactions.committed(two_writes_then_fail)
        assert db.session.scalar(sa.select(sa.func.count()).select_from(User)) == 0
