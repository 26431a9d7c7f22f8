"""The MySQL connection pool of one worker process: one connection per thread, waits that end
only when the request could not be answered anyway, and dead connections found before use.

Size. A worker runs at most ``USERHUB_THREADS`` requests at once under ``userhub serve``, and a
request uses one connection at a time, so the pool holds that many connections (no overflow:
an overflow connection is closed when it comes back and opened again on the next busy moment,
which under steady load is a connect per request). Under another server with more threads
(plain granian's WSGI default is 256 a worker), requests take turns: a thread waits for a
connection as a thread waits for the GIL, briefly.

Waiting. A fixed short wait (SQLAlchemy's ``pool_timeout``) turns a busy pool into errors: with
0.5 s, 256 threads sharing 10 connections answered one ``users/me`` in three 503. Here a thread
waits up to ``POOL_WAIT_SECONDS``, longer than any healthy queue and shorter than the proxy in
front gives the request (nginx's 10 s). What must not wait is an outage: then every waiter
would in turn spend its own connect timeout, and the answers would come in tens of seconds. So
the pool remembers that connecting failed, and while it did, a waiting thread gives up at once
(503, within the 2 s bound); the first connect that succeeds clears it. Within one request, once
the database failed it, nothing waits for the database again (the error page still asks who is
logged in). Giving up raises the driver's OperationalError, as a failed connect does, so every
caller handles both the same way.

Dead connections. A connection the server closed while it sat in the pool (a restart, a
killed session, ``wait_timeout``) has a readable socket: the server's FIN or RST arrived, and a
healthy idle MySQL connection never has anything to read. Checking that costs one ``poll`` and
no round trip, so every checkout does it, and a dead connection makes the pool drop every
connection as old as it (they went through the same restart) before a request sees one. A
network that silently drops packets sends no FIN: that is what the ping after
``PING_AFTER_IDLE_SECONDS`` of idleness is for.
"""

from __future__ import annotations

import select
import time
from typing import Any

from flask import g, has_request_context
from pymysql.err import OperationalError
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.pool import ConnectionPoolEntry, QueuePool
from sqlalchemy.util import queue as sqla_queue

from . import metrics

POOL_WAIT_SECONDS = 8.0  # under nginx's 10 s proxy_read_timeout (deploy/nginx)
WAIT_SLICE_SECONDS = 0.05  # how often a waiting thread looks whether the database is down
PING_AFTER_IDLE_SECONDS = 1.0
LAST_USED = "userhub.last_used"


class WaitingPool(QueuePool):
    """A QueuePool without overflow whose waits give up early only when the database is down.

    It relies on QueuePool's queue of idle connections (``_pool``) and its count of connections
    not yet opened (``_overflow``, negative until the pool is full), as ``QueuePool._do_get``
    does; SQLAlchemy is pinned by the lock, and ``tests/test_database.py`` covers both ways."""

    _sqla_logger_namespace = "sqlalchemy.pool.impl.QueuePool"  # its log, not userhub's

    def __init__(self, creator: Any, **kwargs: Any) -> None:
        kwargs["max_overflow"] = 0
        super().__init__(creator, **kwargs)
        self.connect_failed: BaseException | None = None  # since the last connect that worked
        invoke_creator = self._invoke_creator

        def connect_and_note(rec: ConnectionPoolEntry) -> DBAPIConnection:
            try:
                connection = invoke_creator(rec)
            except Exception as error:
                self.connect_failed = error
                raise
            self.connect_failed = None
            return connection

        self._invoke_creator = connect_and_note

    def _do_get(self) -> ConnectionPoolEntry:
        deadline = time.monotonic() + self._timeout
        waiting_since: float | None = None  # for the metrics: when this thread began to wait
        try:
            while True:
                if gave_up_in_this_request():
                    raise OperationalError(2003, "not retried within one request")
                if self._overflow < self._max_overflow and self._inc_overflow():
                    try:  # a connection not opened yet: open it
                        return self._create_connection()
                    except BaseException:
                        self._dec_overflow()
                        raise
                try:
                    return self._pool.get(False)
                except sqla_queue.Empty:
                    pass  # every connection is in use: wait for one, unless it is not worth it
                failed = self.connect_failed
                if failed is not None:  # the same error, for this waiter: the database is down
                    raise type(failed)(*failed.args)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise OperationalError(
                        f"no free database connection in {self._timeout:.0f} s "
                        f"(a pool of {self.size()} for more threads)"
                    )
                if waiting_since is None:
                    waiting_since = time.monotonic()
                    metrics.POOL_WAITS.inc()
                try:
                    return self._pool.get(True, min(left, WAIT_SLICE_SECONDS))
                except sqla_queue.Empty:
                    continue
        finally:
            if waiting_since is not None:
                metrics.POOL_WAIT_SECONDS.inc(time.monotonic() - waiting_since)


def gave_up_in_this_request() -> bool:
    """Whether the database already failed this request (``note_unreachable``)."""
    return has_request_context() and g.get("database_unreachable", False)


def note_unreachable(context: ExceptionContext) -> None:
    """The engine's ``handle_error``: after a connection failed (to open, or under a query),
    this request stops waiting for the database."""
    if has_request_context() and (context.connection is None or context.is_disconnect):
        g.database_unreachable = True


def socket_closed(dbapi_connection: Any) -> bool:
    """Whether the server has closed this idle PyMySQL connection (or sent something nobody
    asked for, which leaves it as unusable): its socket is readable."""
    sock = getattr(dbapi_connection, "_sock", None)
    if sock is None:
        return True  # PyMySQL dropped the socket itself after an error
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(sock, select.POLLIN | select.POLLPRI)
        return bool(poller.poll(0))
    readable, _, _ = select.select([sock], [], [], 0)  # Windows: no poll
    return bool(readable)


def mark_used(_dbapi_connection: Any, record: Any) -> None:
    record.info[LAST_USED] = time.monotonic()


def idle_for(record: Any) -> float:
    return time.monotonic() - float(record.info.get(LAST_USED, 0.0))
