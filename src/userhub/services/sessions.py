"""Browser sessions, stored server-side: a log-in makes a row, and the cookie carries only the
row's random key (32 bytes; the table keeps its SHA-256, like a token's). Deleting the row logs
that browser out wherever its cookie is, on every instance: log-out, ending one session from
another device, "log out everywhere", a new password.

A session lives ``USERHUB_SESSION_IDLE_SECONDS`` past its last use and never more than
``USERHUB_SESSION_MAX_SECONDS`` after its log-in. "Last seen" is written at most once per
``USERHUB_LAST_USED_INTERVAL_SECONDS`` (a conditional UPDATE: two requests at once, on two
nodes, write it once), so a logged-in page view is a read. Rows past either lifetime are
pruned by the workers' housekeeping (``housekeeping.py``) or ``flask --app userhub prune``.
"""

from __future__ import annotations

import contextlib
import secrets
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import ColumnElement, bindparam, delete, or_, select, update
from sqlalchemy.orm import joinedload

from .. import transactions
from ..extensions import db
from ..models import BrowserSession, User, utcnow
from . import log_ins, origin, security_log
from .tokens import token_hash

KEY_BYTES = 32
MAX_KEY_LENGTH = 100  # a real key is 43 characters
PRUNE_BATCH = 1000

PASSWORD = "password"  # noqa: S105 (a method, not a secret) how a session was authenticated

# Built once: this runs on every request of a logged-in browser.
FIND_SESSION = (
    select(BrowserSession)
    .options(joinedload(BrowserSession.user))
    .where(
        BrowserSession.key_hash == bindparam("key_hash"),
        BrowserSession.expires_at > bindparam("now"),
        BrowserSession.last_seen_at > bindparam("idle_since"),
    )
)


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
    """The live session behind a cookie's key, with its user (bound to the key); its
    "last seen" written if it is older than the interval."""
    if not key or len(key) > MAX_KEY_LENGTH:
        return None
    now = utcnow()
    row: BrowserSession | None = db.session.scalar(
        FIND_SESSION, {"key_hash": token_hash(key), "now": now, "idle_since": now - _idle()}
    )
    if row is None:
        return None
    if row.last_seen_at <= now - _interval():
        _touch(row.id, now)
        row.last_seen_at = now
    row.user.bind_session(key)
    return row


def _touch(session_id: int, now: datetime) -> None:
    """Write "last seen", once per interval whoever else tries at the same moment."""
    statement = (
        update(BrowserSession)
        .where(BrowserSession.id == session_id, BrowserSession.last_seen_at <= now - _interval())
        .values(last_seen_at=now)
        .execution_options(synchronize_session=False)
    )
    with contextlib.suppress(transactions.RowVanished):
        transactions.committed(lambda: db.session.execute(statement))


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


def log_out(row: BrowserSession) -> None:
    """This browser logs out: its session ends, committed."""

    def end() -> None:
        if _delete(BrowserSession.id == row.id):
            security_log.record(security_log.LOGGED_OUT, row.user_id, session_id=row.id)

    transactions.committed(end)


def end(user: User, session_id: int, *, by: User | None = None) -> bool:
    """End one of ``user``'s sessions (from another of theirs, or an admin ``by``),
    committed; False if there was no such live session."""

    def end_it() -> bool:
        if not _delete(
            BrowserSession.id == session_id, BrowserSession.user_id == user.id, *_live()
        ):
            return False
        security_log.record(
            security_log.SESSION_ENDED,
            user.id,
            actor_id=by.id if by else None,
            ended_session_id=session_id,
        )
        return True

    return transactions.committed(end_it)


def end_all(user: User, *, keep: int | None = None) -> None:
    """End every session of ``user`` but ``keep`` (the caller commits).

    Found by a plain read, then deleted by primary key: an InnoDB DELETE by ``user_id`` that
    finds nothing locks the index's gap, and concurrent log-ins then deadlock."""
    ids = db.session.scalars(
        select(BrowserSession.id).where(BrowserSession.user_id == user.id)
    ).all()
    doomed = [session_id for session_id in ids if session_id != keep]
    if doomed:
        _delete(BrowserSession.id.in_(doomed))


def _delete(*conditions: ColumnElement[bool]) -> int:
    result = db.session.execute(
        delete(BrowserSession).where(*conditions).execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def prune() -> int:
    """Forget sessions past either lifetime; how many went."""
    gone = 0
    while True:
        now = utcnow()
        ids = db.session.scalars(
            select(BrowserSession.id)
            .where(
                or_(
                    BrowserSession.expires_at <= now,
                    BrowserSession.last_seen_at <= now - _idle(),
                )
            )
            .limit(PRUNE_BATCH)
        ).all()
        if not ids:
            db.session.rollback()
            return gone
        doomed = BrowserSession.id.in_(ids)
        transactions.committed(lambda: _delete(doomed))  # noqa: B023 (run at once)
        gone += len(ids)
