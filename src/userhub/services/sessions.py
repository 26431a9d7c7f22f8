"""Browser sessions, stored server-side: a log-in makes a row, and the cookie carries only the
row's random key (32 bytes; the table keeps its SHA-256, like a token's). Deleting the row logs
that browser out wherever its cookie is, on every instance: log-out, ending one session from
another device, "log out everywhere", a new password.

A session lives ``USERHUB_SESSION_IDLE_SECONDS`` past its last use and never more than
``USERHUB_SESSION_MAX_SECONDS`` after its log-in. "Last seen" is written at most once per
``USERHUB_LAST_USED_INTERVAL_SECONDS`` (``touch``, which the web layer runs after the
response: a conditional UPDATE, so two requests at once, on two nodes, write it once), so a
logged-in page view is a read. Rows past either lifetime are
pruned by the workers' housekeeping (``housekeeping.py``) or ``flask --app userhub prune``.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from flask import current_app
from sqlalchemy import ColumnElement, bindparam, or_, select, update
from sqlalchemy.orm import load_only

from .. import transactions
from ..extensions import db
from ..models import BrowserSession, User, utcnow, with_its_account
from . import log_ins, origin, security_log
from .tokens import token_hash

log = logging.getLogger("userhub")

KEY_BYTES = 32
MAX_KEY_LENGTH = 100  # a real key is 43 characters

PASSWORD = "password"  # noqa: S105 (a method, not a secret) how a session was authenticated

# Built once: this runs on every request of a logged-in browser.
# Only the columns a request uses (the list reads the rest in a query of its own): PyMySQL
# decodes each column of the reply in Python.
FIND_SESSION = (
    select(BrowserSession)
    .options(
        load_only(BrowserSession.user_id, BrowserSession.last_seen_at),
        with_its_account(BrowserSession.user),
    )
    .where(
        BrowserSession.key_hash == bindparam("key_hash"),
        BrowserSession.expires_at > bindparam("now"),
        BrowserSession.last_seen_at > bindparam("idle_since"),
    )
)


@dataclass(frozen=True)
class Current:
    """What a request keeps of the session it came with: ids, which stay readable after a
    commit expires the row (or another request deletes it)."""

    id: int
    user_id: int

    @classmethod
    def of(cls, row: BrowserSession) -> Current:
        return cls(row.id, row.user_id)


def _idle() -> timedelta:
    return timedelta(seconds=current_app.config["USERHUB_SESSION_IDLE_SECONDS"])


def _interval() -> timedelta:
    return timedelta(seconds=current_app.config["USERHUB_LAST_USED_INTERVAL_SECONDS"])


def start(user: User, *, method: str = PASSWORD, known_device: bool = True) -> BrowserSession:
    """A new session for ``user``, committed with its ``logged-in`` event (and the new-device
    mail, ``log_ins.logged_in``). Binds ``user`` to the new key, the cookie's value."""
    now = utcnow()
    key = secrets.token_urlsafe(KEY_BYTES)
    where = origin.current()
    row = BrowserSession(
        user_id=user.id,
        key_hash=token_hash(key),
        created_at=now,
        last_seen_at=now,
        expires_at=now + timedelta(seconds=current_app.config["USERHUB_SESSION_MAX_SECONDS"]),
        ip=where.ip,
        user_agent=where.user_agent,
        auth_method=method,
        authenticated_at=now,
    )

    def insert() -> BrowserSession:
        db.session.add(row)
        db.session.flush()  # its id, for the event
        log_ins.logged_in(user, method=method, known_device=known_device, session=row)
        return row

    transactions.committed(insert)
    user.bind_session(key)
    return row


def find(key: str) -> BrowserSession | None:
    """The live session behind a cookie's key, with its user (bound to the key). A read only:
    ``stale`` says whether "last seen" is due."""
    if not key or len(key) > MAX_KEY_LENGTH:
        return None
    now = utcnow()
    row: BrowserSession | None = db.session.scalar(
        FIND_SESSION, {"key_hash": token_hash(key), "now": now, "idle_since": now - _idle()}
    )
    if row is None or not row.user.is_active:  # deactivated while this log-in was under way
        return None
    row.user.bind_session(key)
    return row


def stale(row: BrowserSession) -> bool:
    """Whether the session's "last seen" is older than the interval (``touch`` it)."""
    return row.last_seen_at <= utcnow() - _interval()


def touch(session_id: int) -> None:
    """Write "last seen", once per interval however many requests try at the same moment;
    committed. Bookkeeping: a failure is logged, never an error of the request."""
    now = utcnow()
    statement = (
        update(BrowserSession)
        .where(BrowserSession.id == session_id, BrowserSession.last_seen_at <= now - _interval())
        .values(last_seen_at=now)
        .execution_options(synchronize_session=False)
    )
    transactions.bookkeeping(statement, f"when session {session_id} was last seen")


def _live() -> tuple[ColumnElement[bool], ...]:
    """A session that has not ended: before its absolute end, and used within the idle
    lifetime (a row past either waits for the pruning, but is no session any more)."""
    now = utcnow()
    return BrowserSession.expires_at > now, BrowserSession.last_seen_at > now - _idle()


def listed(user: User) -> list[BrowserSession]:
    """The user's live sessions, the most recently used first."""
    rows = db.session.scalars(
        select(BrowserSession)
        .where(BrowserSession.user_id == user.id, *_live())
        .order_by(BrowserSession.last_seen_at.desc(), BrowserSession.id.desc())
    )
    return list(rows)


def is_live(row: BrowserSession) -> bool:
    """Whether a session (found, so not ended) is within both its lifetimes."""
    now = utcnow()
    return row.expires_at > now and row.last_seen_at > now - _idle()


def log_out(current: Current) -> None:
    """This browser logs out: its session ends, committed (if it had not ended already)."""

    def end() -> None:
        if _delete_sessions(BrowserSession.id == current.id):
            security_log.record(security_log.LOGGED_OUT, current.user_id, session_id=current.id)

    transactions.committed(end)


def end(user: User, session_id: int, *, by: User | None = None) -> bool:
    """End one of ``user``'s sessions (from another of theirs, or an admin ``by``),
    committed; False if there was no such live session."""
    actor_id = by.id if by else None
    return transactions.committed(lambda: end_one(user.id, session_id, actor_id=actor_id))


def end_one(user_id: int, session_id: int, *, actor_id: int | None = None, **details: Any) -> bool:
    """End one of the account's sessions, with its ``session-ended`` event (and ``details``),
    in the caller's transaction; False if there was no such session."""
    if not _delete_sessions(
        BrowserSession.id == session_id, BrowserSession.user_id == user_id, *_live()
    ):
        return False
    security_log.record(
        security_log.SESSION_ENDED,
        user_id,
        actor_id=actor_id,
        ended_session_id=session_id,
        **details,
    )
    return True


def end_all(user: User, *, keep: int | None = None) -> int:
    """End every session of ``user`` but ``keep`` (the caller commits); how many rows went.

    Found by a plain read, then deleted by primary key: an InnoDB DELETE by ``user_id`` that
    finds nothing locks the index's gap, and concurrent log-ins then deadlock."""
    ids = db.session.scalars(
        select(BrowserSession.id).where(BrowserSession.user_id == user.id)
    ).all()
    doomed = [session_id for session_id in ids if session_id != keep]
    return _delete_sessions(BrowserSession.id.in_(doomed)) if doomed else 0


def end_many(user: User, *, keep: int | None = None, by: User | None = None) -> int:
    """End every session of ``user`` but ``keep`` (the browser asking: "log out everywhere
    else"), or, without ``keep``, every one of them (an administrator ``by``), committed with
    one ``session-ended`` event that counts them; API tokens stay. How many ended (none: no
    event)."""
    every = {"all_sessions": True} if keep is None else {}

    def end_them() -> int:
        ended = end_all(user, keep=keep)
        if ended:
            security_log.record(
                security_log.SESSION_ENDED,
                user.id,
                actor_id=by.id if by is not None else None,
                ended_sessions=ended,
                **every,
            )
        return ended

    return transactions.committed(end_them)


def prune() -> int:
    """Forget sessions past either lifetime; how many went."""
    now = utcnow()
    expired = or_(BrowserSession.expires_at <= now, BrowserSession.last_seen_at <= now - _idle())
    return transactions.delete_in_batches(BrowserSession, expired)


def _delete_sessions(*conditions: ColumnElement[bool]) -> int:
    return transactions.delete_where(BrowserSession, *conditions)
