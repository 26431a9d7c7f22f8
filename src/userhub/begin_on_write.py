"""MySQL: reads run outside a transaction, and a transaction begins with the first write.

PyMySQL, like every DB-API driver, runs with autocommit off: the first SELECT opens a
transaction, and the request must end it with a ROLLBACK, a second round trip that cost as much
as the read itself (a profile of ``GET /api/v1/users/me`` under load: 40% of the request's time
in the SELECT, 42% in the ROLLBACK). So userhub's MySQL connections run in autocommit mode, and
the transaction is begun where it is needed, just before the first statement that writes or
locks (``begin_before_writing``) — the rule Python's own sqlite3 module has always followed:
``BEGIN`` before INSERT, UPDATE, DELETE, not before SELECT. COMMIT and ROLLBACK are sent only
when a transaction is open (``commit_if_open``, ``rollback_if_open``); the server reports that
in every reply, so knowing it costs nothing.

What this changes, and why it is safe here:
- A request that only reads makes one round trip per query, and none to end.
- A write's transaction starts at its first write, not at the read before it. Within a
  transaction nothing changes; across, each read sees the latest committed data. userhub's
  writes never depend on a snapshot taken by an earlier read in the same transaction: they
  write by primary key or rely on UNIQUE constraints, and ``transactions.committed`` reruns the
  whole body when the server aborts it. A ``SELECT … FOR UPDATE`` (or ``FOR SHARE``) counts as
  a write: its lock must last until the commit.
- Galera's causal reads (``wsrep_sync_wait``) are a session setting, applied with or without a
  transaction.
"""

from __future__ import annotations

import re
from typing import Any

from pymysql.constants import SERVER_STATUS

IN_TRANSACTION = SERVER_STATUS.SERVER_STATUS_IN_TRANS
# A statement that reads without locking: it may run outside a transaction.
PLAIN_READ = re.compile(r"\s*(SELECT|SHOW|SET|DESCRIBE|EXPLAIN)\b", re.IGNORECASE)
LOCKING_READ = re.compile(r"\bFOR\s+(UPDATE|SHARE)\b|\bLOCK\s+IN\s+SHARE\s+MODE\b", re.IGNORECASE)


def transaction_open(dbapi_connection: Any) -> bool:
    """Whether the server said, in its last reply, that a transaction is open. A driver that
    does not say (not PyMySQL) is assumed to have one."""
    status = getattr(dbapi_connection, "server_status", None)
    return status is None or bool(status & IN_TRANSACTION)


def writes(statement: str) -> bool:
    """Whether a statement must run inside a transaction: anything but a plain read."""
    return not PLAIN_READ.match(statement) or bool(LOCKING_READ.search(statement))


def begin_before_writing(
    connection: Any, cursor: Any, statement: str, *_args: Any, **_kwargs: Any
) -> None:
    """``before_cursor_execute``: BEGIN before the first write of a transaction."""
    dbapi_connection = cursor.connection
    if connection.in_transaction() and writes(statement) and not transaction_open(dbapi_connection):
        dbapi_connection.begin()


def commit_if_open(dbapi_connection: Any) -> None:
    """The dialect's ``do_commit``: nothing was written, so there is nothing to commit."""
    if transaction_open(dbapi_connection):
        dbapi_connection.commit()


def rollback_if_open(dbapi_connection: Any) -> None:
    """The dialect's ``do_rollback``, and the pool's reset: nothing to undo unless a
    transaction is open."""
    if transaction_open(dbapi_connection):
        dbapi_connection.rollback()


def install(engine: Any) -> None:
    """Make ``engine`` (MySQL through PyMySQL, connected with ``autocommit=True``) begin
    transactions on the first write."""
    from sqlalchemy import event

    event.listen(engine, "before_cursor_execute", begin_before_writing)
    engine.dialect.do_commit = commit_if_open
    engine.dialect.do_rollback = rollback_if_open
