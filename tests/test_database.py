"""The engine: SQLite shared safely by several workers, MySQL pooled with pre-ping."""

from __future__ import annotations

import sqlalchemy as sa
from flask import Flask

from userhub.database import engine_options
from userhub.extensions import db


def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(app: Flask, backend: str) -> None:
    with app.app_context():
        if backend != "sqlite":
            assert db.engine.pool._pre_ping  # type: ignore[attr-defined]
            charset = db.session.execute(sa.text("SELECT @@character_set_connection")).scalar()
            assert charset == "utf8mb4"
            return
        with db.engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 5000


def test_mysql_engines_pool_and_pre_ping() -> None:
    options = engine_options("mysql+pymysql://u:p@127.0.0.1/db?charset=utf8mb4", pool_size=7)
    assert options["pool_pre_ping"] is True
    assert options["pool_size"] == 7
