"""Write transactions that survive a deadlock: run again, a bounded number of times.

Two transactions that want the same rows can deadlock on one server (InnoDB picks a victim),
and on a Galera cluster two nodes can commit clashing changes at once: the node that loses
certification aborts its transaction with the same error, 1213, at commit. A lock that is not
released in ``innodb_lock_wait_timeout`` gives 1205. In each case nothing was written and the
server's advice is to run the transaction again, which ``committed`` does: it rolls back, waits
a random time (full jitter: between 0 and a cap that doubles each attempt up to
``MAX_DELAY_CAP``, so clashing clients do not clash again in step), and runs the body again, at
most ``MAX_ATTEMPTS`` times. Then the error goes up, and the client gets a 503 with
``Retry-After``.

Why 10 attempts: with three clients writing one row through three Galera nodes without pause,
a retry loses again about one time in three, whatever the wait (the others keep writing), so
5 attempts gave up on 6 of 3,000 such requests; 10 make that about one in a million. The
waits add up to 1.3 s at most, far under nginx's 10 s read timeout.

A body must be safe to run twice: it reads what it needs inside, from the database (a
rollback expires every loaded object, so attributes are read afresh), and keeps slow work that
does not depend on the data, such as hashing a password, outside. When a row it changes was
deleted meanwhile (the object cannot be read afresh, or an UPDATE finds nothing), the body
cannot succeed: ``RowVanished`` tells the caller, which decides what that means (a deleted
account is not found; a token already gone is revoked).

1205 is retried where nothing cuts the wait short first: commands. A web request's connection
gives up reading after 0.7 s (``database.REQUEST_TIMEOUTS``), long before InnoDB's lock wait
timeout (50 s by default), so a request stuck behind a lock is answered 503 at once instead.
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Executable, delete, event, inspect, select
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import ObjectDeletedError, StaleDataError

from .extensions import db

T = TypeVar("T")

DEADLOCK = 1213  # ER_LOCK_DEADLOCK, also Galera's certification failure
LOCK_WAIT_TIMEOUT = 1205  # ER_LOCK_WAIT_TIMEOUT
RETRYABLE_ERRORS = frozenset({DEADLOCK, LOCK_WAIT_TIMEOUT})
MAX_ATTEMPTS = 10
FIRST_DELAY_CAP = 0.01  # seconds; the cap doubles: 10, 20, 40, 80, 160 ms, then stays at
MAX_DELAY_CAP = 0.25  # 250 ms: 1.31 s in all at most

log = logging.getLogger(__name__)
ON_COMMIT = "userhub.on_commit"  # Session.info: what to do once this transaction commits


class RowVanished(Exception):
    """A row the transaction changes was deleted by another transaction; nothing was written."""


def on_commit(action: Callable[[], object]) -> None:
    """Do ``action`` once the current transaction commits, and never if it rolls back: so a
    transaction ``committed`` runs again after a deadlock does it once, and one that fails not
    at all (the outbox wakes its sender for mail really queued; a log-in is counted once)."""
    db.session.info.setdefault(ON_COMMIT, []).append(action)


@event.listens_for(Session, "after_commit")
def _do_on_commit(session: Session) -> None:
    for action in session.info.pop(ON_COMMIT, ()):
        action()


@event.listens_for(Session, "after_rollback")
def _forget_on_rollback(session: Session) -> None:
    session.info.pop(ON_COMMIT, None)


def is_retryable(error: DBAPIError) -> bool:
    """Whether the server aborted the transaction and advises running it again."""
    code = error.orig.args[0] if error.orig is not None and error.orig.args else None
    return code in RETRYABLE_ERRORS


# The operating system's randomness, not the random module's shared state: a retry inside a
# caller that owns that state (a test's property-based generator, which refuses a strategy that
# touches it) must not change it, and forked workers draw different waits. Only retries use it.
_JITTER = random.SystemRandom()


def backoff(attempt: int) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1, 2, ...): full jitter."""
    cap = min(FIRST_DELAY_CAP * 2 ** (attempt - 1), MAX_DELAY_CAP)
    return _JITTER.uniform(0, cap)


PRUNE_BATCH = 1000  # rows per DELETE: short transactions, even on a Galera cluster


def delete_where(model: Any, *conditions: ColumnElement[bool]) -> int:
    """Delete the rows of ``model`` that match, in the current transaction (the caller
    commits); how many there were."""
    statement = delete(model).where(*conditions).execution_options(synchronize_session=False)
    return int(db.session.execute(statement).rowcount)  # type: ignore[attr-defined]


def delete_in_batches(model: Any, condition: ColumnElement[bool]) -> int:
    """Delete every row of ``model`` that matches, ``PRUNE_BATCH`` at a time, each batch found
    by a plain read and deleted by id in a transaction of its own (committed); how many rows
    went. What was deleted, not what was found: another worker may prune the same meanwhile.
    The "id" is the table's primary key (``user_id`` for a table of one row per account)."""
    (key,) = inspect(model).primary_key
    gone = 0
    while True:
        ids = db.session.scalars(select(key).where(condition).limit(PRUNE_BATCH)).all()
        if not ids:
            db.session.rollback()
            return gone
        gone += committed(lambda: delete_where(model, key.in_(ids)))  # noqa: B023 (run now)


def bookkeeping(statement: Executable, what: str) -> None:
    """Run and commit a write that only keeps count ("last seen", "last used"): it must never
    fail the request it rides on, so a failure is logged, and a row gone meanwhile is fine."""
    try:
        with contextlib.suppress(RowVanished):
            committed(lambda: db.session.execute(statement))
    except SQLAlchemyError:
        db.session.rollback()
        log.warning("could not write %s", what, exc_info=True)


def committed(body: Callable[[], T]) -> T:
    """Run ``body``, commit, and return what it returned; run both again when the database
    aborted the transaction as a deadlock or lock timeout. RowVanished when a row it changes
    was deleted meanwhile; other errors roll back and go up."""
    attempt = 1
    while True:
        try:
            result = body()
            db.session.commit()
            return result
        except DBAPIError as error:
            db.session.rollback()
            if attempt >= MAX_ATTEMPTS or not is_retryable(error):
                raise
            log.info(
                "transaction aborted (%s); running it again",
                error.orig.args[0],  # type: ignore[union-attr]
                extra={"attempt": attempt},
            )
            time.sleep(backoff(attempt))
            attempt += 1
        except (ObjectDeletedError, StaleDataError) as error:
            db.session.rollback()
            raise RowVanished() from error
        except BaseException:
            db.session.rollback()
            raise
