"""The database engine: pooled, utf8mb4 on MySQL; WAL and a busy timeout on SQLite.

The tutorial opened a new PyMySQL connection (and an SSL context) per request; here each worker
process keeps a small pool, and schema changes are a command (``flask db upgrade``), never a
side effect of starting the app.

Each worker keeps one MySQL connection per request thread, finds a dead one before a request
does, and waits for a free one only as long as it is worth waiting (``connection_pool.py``).
Reads run outside a transaction and writes begin one (``begin_on_write.py``): a read costs one
round trip.

Outages. A server that is down answers at once, but a network that drops packets (or a hung
server) answers never, and PyMySQL waits forever by default. So a connection opened for a web
request waits at most ``REQUEST_TIMEOUTS`` (connect, each read, each write): a checkout waits
at most twice (the idle ping, then one reconnect), and once the database failed a request, the
rest of that request does not wait for it again (the navigation may still ask who is logged in,
and the error page renders). Every request answers within 2 s, 503 when it needs the database.
Connections opened outside a request (``flask db upgrade``, the bulk import and every other
command) have no such limits: a migration may rightly run for minutes. The price: a web
request's query that runs longer than the read timeout is cut off and answered 503. A deployer
who needs longer can set them in the URL (``?read_timeout=3``, whole seconds): those win, and
move the bound.

Galera. On a MariaDB Galera cluster a commit returns once every node has accepted the change,
but another node may apply it a moment later: a token issued through one userhub instance and
used at once through another, on another node, could be refused. So every MySQL connection
sets ``wsrep_sync_wait = 1``: before each read, the node waits until it has applied every
change committed anywhere in the cluster before the read began (a causal read). Outside
Galera the variable does nothing (MariaDB) or does not exist (MySQL, which refuses the
statement; the error is ignored).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import Flask, has_request_context
from sqlalchemy import Connection, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError, InvalidatePoolError

from . import begin_on_write, metrics
from .config.language import gettext
from .config.values import shown
from .connection_pool import (
    PING_AFTER_IDLE_SECONDS,
    POOL_WAIT_SECONDS,
    WaitingPool,
    gave_up_in_this_request,
    idle_for,
    mark_used,
    note_unreachable,
    socket_closed,
)
from .database_errors import DatabaseUnreachable, explained
from .extensions import db, migrate

MIGRATIONS = Path(__file__).parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 5000
# Seconds a web request's connection waits for MySQL; twice this stays under the 2 s bound.
REQUEST_TIMEOUTS = {"connect_timeout": 0.7, "read_timeout": 0.7, "write_timeout": 0.7}

log = logging.getLogger(__name__)


def engine_options(url: str, pool_size: int) -> dict[str, Any]:
    """Options that make each backend behave under several workers."""
    backend = make_url(url).get_backend_name()
    if backend == "sqlite":
        return {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}}
    return {
        "poolclass": WaitingPool,
        "pool_size": pool_size,
        "pool_timeout": POOL_WAIT_SECONDS,
        "pool_reset_on_return": None,  # begin_on_write.rollback_if_open, on the reset event
        "pool_recycle": 3600,
        "connect_args": {"autocommit": True},  # see begin_on_write
    }


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _connect(dialect: Any, _record: Any, cargs: Any, cparams: dict[str, Any]) -> Any:
    """Open a PyMySQL connection, with ``REQUEST_TIMEOUTS`` when it is for a web request."""
    if not has_request_context():
        return None  # a command: SQLAlchemy connects as configured, without limits
    if gave_up_in_this_request():
        raise dialect.loaded_dbapi.OperationalError(2003, "not retried within one request")
    return dialect.connect(*cargs, **{**REQUEST_TIMEOUTS, **cparams})


def _check_alive(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
    """On checkout: a connection the server closed is not handed out (see connection_pool).

    A dead one means the server restarted or cannot be reached, so every connection as old
    is suspect: InvalidatePoolError makes the pool drop them all and reconnect this one."""
    if gave_up_in_this_request():
        raise DisconnectionError()  # reconnects, which fails at once (see _connect)
    if socket_closed(dbapi_connection):
        raise InvalidatePoolError()
    if idle_for(record) > PING_AFTER_IDLE_SECONDS:
        try:
            dbapi_connection.ping(reconnect=False)
        except Exception as exc:  # any driver error means the connection is unusable
            raise InvalidatePoolError() from exc


CAUSAL_READS = "SET SESSION wsrep_sync_wait = 1"
UNKNOWN_SYSTEM_VARIABLE = 1193


def _causal_reads(dbapi_connection: Any, _record: Any) -> None:
    """Reads see every write committed before them on any Galera node (see above)."""
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(CAUSAL_READS)
    except dbapi_connection.OperationalError as exc:
        if exc.args[0] != UNKNOWN_SYSTEM_VARIABLE:  # MySQL has no Galera: nothing to wait for
            raise
    finally:
        cursor.close()


def _end_open_transaction(dbapi_connection: Any, _record: Any, _state: Any) -> None:
    """On return to the pool: roll back a transaction left open (never by the ORM session,
    which has ended its own; by a raw connection, or a connection lost mid-way)."""
    begin_on_write.rollback_if_open(dbapi_connection)


def _end_session(_exc: BaseException | None) -> None:
    """End the request's session, as Flask-SQLAlchemy would, without ever raising.

    Ending it rolls back the read the response may have made (a committed row is read again to
    show it). If the server went away meanwhile (a Galera node killed), that rollback fails;
    raised from a teardown it would escape Flask and turn an answer already made, say a 201
    for a committed account, into the WSGI server's bare 500. SQLAlchemy has already thrown
    the dead connection away; nothing was left to roll back."""
    try:
        db.session.remove()
    except DBAPIError:
        log.warning("the database connection was lost while the request ended")
        db.session.registry.clear()


def _make_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DatabaseUnreachable(
            gettext(
                "USERHUB_DATABASE_URL: cannot create the folder %(folder)s for the SQLite file "
                "(%(reason)s). Make it writable by this user, or name another file in the URL.",
                folder=str(folder),
                reason=exc.strerror or str(exc),
            )
        ) from None


def ready_to_serve(app: Flask) -> None:
    """``check_ready`` before a server starts, rather than answering every request 503 or
    500. The connection is closed before the server forks its workers; each opens its own."""
    with app.app_context():
        try:
            check_ready()
        finally:
            db.engine.dispose()


@functools.cache
def _code_revisions() -> tuple[frozenset[str], frozenset[str]]:
    """The revisions this code's migrations end at, and every revision they know (read once:
    the scripts do not change while the process runs)."""
    scripts = ScriptDirectory(str(MIGRATIONS))
    known = frozenset(revision.revision for revision in scripts.walk_revisions())
    return frozenset(scripts.get_heads()), known


def schema_state(connection: Connection) -> str:
    """``current``; ``ahead`` (revisions this code does not know: the code was rolled back);
    ``behind`` (older than the code); or ``missing`` (no userhub tables)."""
    current = set(MigrationContext.configure(connection).get_current_heads())
    needed, known = _code_revisions()
    if current == needed:
        return "current"
    if current and not current <= known:
        return "ahead"
    return "behind" if current else "missing"


def check_ready() -> None:
    """Connect once, and compare the schema with the one this code needs (in an app context):
    a database out of reach, or tables missing or older than the code, raise
    ``DatabaseUnreachable`` with what to do. A schema newer than the code (the code rolled
    back) is let through: whether the old code can use it is the operator's call."""
    url = db.engine.url
    with explained(url), db.engine.connect() as connection:
        state = schema_state(connection)
    if state == "missing":
        raise DatabaseUnreachable(
            gettext(
                "The database %(url)s has no userhub tables yet. Create them: "
                "flask --app userhub db upgrade",
                url=shown(url),
            )
        )
    if state == "behind":
        raise DatabaseUnreachable(
            gettext(
                "The database %(url)s has an older schema than this userhub needs. Upgrade it: "
                "flask --app userhub db upgrade",
                url=shown(url),
            )
        )


MAIL_SENDER_CONNECTIONS = 1  # services/mail_sender.py: its own, so it never makes a request wait


def connections_per_worker(config: Mapping[str, Any]) -> int:
    """The pool of one worker process: ``USERHUB_DB_POOL_SIZE`` when set (the mail sender then
    takes its turn with the requests), else one connection per request thread
    (connection_pool.py) and one for the worker's mail sender."""
    if config["USERHUB_DB_POOL_SIZE"]:
        return int(config["USERHUB_DB_POOL_SIZE"])
    return int(config["USERHUB_THREADS"]) + MAIL_SENDER_CONNECTIONS


def init_app(app: Flask) -> None:
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    pool_size = connections_per_worker(app.config)
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = engine_options(url, pool_size)
    sqlite_file = make_url(url).database if make_url(url).get_backend_name() == "sqlite" else None
    if sqlite_file and sqlite_file != ":memory:":
        _make_folder(Path(sqlite_file).parent)
    db.init_app(app)
    app.teardown_appcontext(_end_session)  # runs before Flask-SQLAlchemy's own (reverse order)
    migrate.init_app(app, db, directory=str(MIGRATIONS), render_as_batch=True)
    with app.app_context():
        if db.engine.dialect.name == "sqlite":
            event.listen(db.engine, "connect", _sqlite_pragmas)
        else:
            if db.engine.dialect.driver == "pymysql":
                event.listen(db.engine, "do_connect", _connect)
            event.listen(db.engine, "handle_error", note_unreachable)
            event.listen(db.engine, "connect", _causal_reads)
            event.listen(db.engine, "connect", mark_used)
            event.listen(db.engine, "checkout", _check_alive)
            event.listen(db.engine, "checkin", mark_used)
            event.listen(db.engine, "reset", _end_open_transaction)
            begin_on_write.install(db.engine)
        # With /metrics on (two listeners per checkout), and last: a checkout the checks above
        # refused is not counted.
        if app.config["USERHUB_METRICS_TOKEN"]:
            metrics.watch_pool(db.engine)
