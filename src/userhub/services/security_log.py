"""The security log: what happened to each account, stored, for its owner and the admins to
read (``/account/activity``, ``GET /api/v1/users/me/events``, ``GET /api/v1/events``).

An event is added in the transaction of what it tells (``record``), so the log holds exactly
what was committed; a failed log-in, which commits nothing else, is committed on its own
(``record_now``). Each event has its time, the client's address and browser summary, the session
or API key the request came with (``origin.py``), and, when an administrator acted on someone
else's account, the administrator's id (``actor_id``). Never a password, token, key or link:
``details`` holds only the names the code passes (a method, a key's name, the fields changed).

Rows are never updated. Events older than ``USERHUB_SECURITY_LOG_RETENTION_DAYS`` are pruned
by the housekeeping of every ``userhub serve`` worker (``housekeeping.py``), or by
``flask --app userhub prune``.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import ColumnElement, and_, func, select, true

from .. import transactions
from ..extensions import db
from ..models import DETAILS_MAX_LENGTH, SecurityEvent, utcnow
from . import origin

REGISTERED = "registered"
LOGGED_IN = "logged-in"
LOGIN_FAILED = "login-failed"  # a wrong password, or a refused passkey, of an account that exists
LOGGED_OUT = "logged-out"
SESSION_ENDED = "session-ended"  # another session of the account (or an admin ended one)
LOGGED_OUT_EVERYWHERE = "logged-out-everywhere"
PASSWORD_CHANGED = "password-changed"  # noqa: S105 (an event type, as are those below)
PASSWORD_RESET = "password-reset"  # noqa: S105
EMAIL_CHANGED = "email-changed"
API_KEY_CREATED = "api-key-created"
API_KEY_REVOKED = "api-key-revoked"
TOKEN_REVOKED = "token-revoked"  # noqa: S105 (a log-in token ended from the new-device mail)
ACCOUNT_LOCKED = "account-locked"
ACCOUNT_UNLOCKED = "account-unlocked"
ACCOUNT_UPDATED = "account-updated"  # an admin changed the profile or the admin flag
ACCOUNT_DELETED = "account-deleted"  # by an admin, or at the end of the grace period: the id only
ACCOUNT_DEACTIVATED = "account-deactivated"  # by an admin
ACCOUNT_REACTIVATED = "account-reactivated"  # by an admin
DELETION_REQUESTED = "deletion-requested"  # by the owner: deleted for good after the grace period
DELETION_CANCELLED = "deletion-cancelled"  # by the owner (log-in and confirm, or the mailed link)
DATA_EXPORTED = "data-exported"  # the owner downloaded everything userhub holds about them
PASSWORD_RESET_SENT = "password-reset-sent"  # noqa: S105 (an admin mailed a reset link)
TOTP_ENABLED = "totp-enabled"  # an authenticator app confirmed by its first code
TOTP_DISABLED = "totp-disabled"
RECOVERY_CODES_GENERATED = "recovery-codes-generated"
RECOVERY_CODE_USED = "recovery-code-used"
PASSKEY_ADDED = "passkey-added"
PASSKEY_REMOVED = "passkey-removed"
SECOND_FACTOR_FAILED = "second-factor-failed"  # a wrong code (or passkey) after the password
REAUTHENTICATED = "reauthenticated"
FACTORS_RESET = "factors-reset"  # by an admin: every second factor removed

TYPES = (
    REGISTERED,
    LOGGED_IN,
    LOGIN_FAILED,
    LOGGED_OUT,
    SESSION_ENDED,
    LOGGED_OUT_EVERYWHERE,
    PASSWORD_CHANGED,
    PASSWORD_RESET,
    EMAIL_CHANGED,
    API_KEY_CREATED,
    API_KEY_REVOKED,
    TOKEN_REVOKED,
    ACCOUNT_LOCKED,
    ACCOUNT_UNLOCKED,
    ACCOUNT_UPDATED,
    ACCOUNT_DELETED,
    ACCOUNT_DEACTIVATED,
    ACCOUNT_REACTIVATED,
    DELETION_REQUESTED,
    DELETION_CANCELLED,
    DATA_EXPORTED,
    PASSWORD_RESET_SENT,
    TOTP_ENABLED,
    TOTP_DISABLED,
    RECOVERY_CODES_GENERATED,
    RECOVERY_CODE_USED,
    PASSKEY_ADDED,
    PASSKEY_REMOVED,
    SECOND_FACTOR_FAILED,
    REAUTHENTICATED,
    FACTORS_RESET,
)


def record(
    kind: str,
    user_id: int,
    *,
    actor_id: int | None = None,
    session_id: int | None = None,
    api_key_id: int | None = None,
    **details: Any,
) -> None:
    """Add an event to the current transaction (the caller commits). ``actor_id``: who acted,
    when not the account's owner. ``session_id`` and ``api_key_id`` default to the request's."""
    assert kind in TYPES, kind
    where = origin.current()
    db.session.add(
        SecurityEvent(
            user_id=user_id,
            type=kind,
            created_at=utcnow(),
            actor_id=actor_id if actor_id != user_id else None,
            ip=where.ip,
            user_agent=where.user_agent,
            session_id=session_id if session_id is not None else where.session_id,
            api_key_id=api_key_id if api_key_id is not None else where.api_key_id,
            details=_as_json(details),
        )
    )


def _as_json(details: dict[str, Any]) -> str | None:
    """``details`` as a JSON object that fits its column: the longest value is shortened until
    it does (a name of escaped characters takes up to six times its length), never the text
    cut, which would leave JSON that ``details_of`` cannot read."""
    while details:
        text = json.dumps(details, ensure_ascii=False, sort_keys=True)
        if len(text) <= DETAILS_MAX_LENGTH:
            return text
        name = max(details, key=lambda key: len(json.dumps(details[key], ensure_ascii=False)))
        value = details[name]
        if value is None:
            return None  # only the names are left, and they do not fit: nothing to keep
        shorter = value[: len(value) // 2] if isinstance(value, str) and value else None
        details = {**details, name: shorter}
    return None


def record_now(kind: str, user_id: int, **fields: Any) -> None:
    """``record`` in a transaction of its own, committed."""
    transactions.committed(lambda: record(kind, user_id, **fields))


def has_logged_in(user_id: int) -> bool:
    """Whether the account has logged in before (a first log-in is no new device)."""
    found = db.session.scalar(
        select(SecurityEvent.id)
        .where(SecurityEvent.user_id == user_id, SecurityEvent.type == LOGGED_IN)
        .limit(1)
    )
    return found is not None


def log_in_event(
    user_id: int,
    *,
    until: datetime,
    session_id: int | None = None,
    api_key_id: int | None = None,
) -> SecurityEvent | None:
    """The ``logged-in`` event of a session or of a log-in token (the newest ``until``: SQLite
    may give a later one the same id), unless it has been pruned since."""
    if session_id is not None:
        which = SecurityEvent.session_id == session_id
    else:
        which = SecurityEvent.api_key_id == api_key_id
    event: SecurityEvent | None = db.session.scalar(
        select(SecurityEvent)
        .where(
            SecurityEvent.user_id == user_id,
            SecurityEvent.type == LOGGED_IN,
            which,
            SecurityEvent.created_at <= until,
        )
        .order_by(SecurityEvent.id.desc())
        .limit(1)
    )
    return event


def details_of(event: SecurityEvent) -> dict[str, Any]:
    return json.loads(event.details) if event.details else {}


def page(
    number: int,
    per_page: int,
    *,
    user_id: int | None = None,
    kind: str | None = None,
    since: datetime | None = None,
) -> tuple[list[SecurityEvent], int]:
    """One page of events, newest first, and how many match."""
    condition: ColumnElement[bool] = true()
    if user_id is not None:
        condition = and_(condition, SecurityEvent.user_id == user_id)
    if kind is not None:
        condition = and_(condition, SecurityEvent.type == kind)
    if since is not None:
        condition = and_(condition, SecurityEvent.created_at >= since)
    total = db.session.scalar(select(func.count()).select_from(SecurityEvent).where(condition))
    rows = db.session.scalars(
        select(SecurityEvent)
        .where(condition)
        .order_by(SecurityEvent.created_at.desc(), SecurityEvent.id.desc())
        .offset((number - 1) * per_page)
        .limit(per_page)
    )
    return list(rows), total or 0


def prune() -> int:
    """Forget events older than the retention; how many went."""
    days = current_app.config["USERHUB_SECURITY_LOG_RETENTION_DAYS"]
    cutoff = utcnow() - timedelta(days=days)
    return transactions.delete_in_batches(SecurityEvent, SecurityEvent.created_at < cutoff)
