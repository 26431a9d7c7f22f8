"""The database engine: pooled, pre-pinged, utf8mb4 on MySQL; WAL and a busy timeout on SQLite.

The tutorial opened a new PyMySQL connection (and an SSL context) per request; here each worker
process keeps a small pool, and schema changes are a command (``flask db upgrade``), never a
side effect of starting the app.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Flask
from sqlalchemy import event
from sqlalchemy.engine import make_url

from .extensions import db, migrate

MIGRATIONS = Path(__file__).parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 5000


def engine_options(url: str, pool_size: int) -> dict[str, Any]:
    """Options that make each backend behave under several workers."""
    backend = make_url(url).get_backend_name()
    if backend == "sqlite":
        return {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}}
    return {
        "pool_pre_ping": True,  # a connection MySQL closed while idle is replaced, not used
        "pool_recycle": 3600,
        "pool_size": pool_size,
        "max_overflow": pool_size,
    }


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def init_app(app: Flask) -> None:
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    pool_size = app.config["USERHUB_DB_POOL_SIZE"]
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = engine_options(url, pool_size)
    sqlite_file = make_url(url).database if make_url(url).get_backend_name() == "sqlite" else None
    if sqlite_file and sqlite_file != ":memory:":
        Path(sqlite_file).parent.mkdir(parents=True, exist_ok=True)
    db.init_app(app)
    migrate.init_app(app, db, directory=str(MIGRATIONS), render_as_batch=True)
    with app.app_context():
        if db.engine.dialect.name == "sqlite":
            event.listen(db.engine, "connect", _sqlite_pragmas)
