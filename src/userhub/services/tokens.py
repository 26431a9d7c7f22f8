"""API tokens: issued at log-in through the API, stored only as a SHA-256, expiring, revocable.

A token is ``uh_`` followed by 32 random bytes in URL-safe base64 (256 bits). The prefix lets
secret scanners and people recognise a leaked userhub token; the database never holds the token
itself, so a copy of the database grants nothing. Personal API keys (``api_keys.py``) are
tokens too, with a name and scopes: this module finds both, and writes when each was last used
(at most once per ``USERHUB_LAST_USED_INTERVAL_SECONDS``, so an API read stays a read).
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from flask import current_app
from sqlalchemy import ColumnElement, bindparam, select, update
from sqlalchemy.orm import load_only

from .. import transactions
from ..extensions import db
from ..metrics import LOG_IN_TOKEN_ISSUED
from ..models import ApiToken, utcnow, with_its_account
from . import log_ins, security_log

if TYPE_CHECKING:
    from ..models import User

log = logging.getLogger("userhub")

TOKEN_PREFIX = "uh_"  # noqa: S105 (a public prefix, not a secret)
TOKEN_BYTES = 32

# Built once: this runs on every token-authenticated request, and building the statement
# (with its eager load: one query for the token and its user) cost more than running it.
# Only the columns a request uses (the rest load if ever read): PyMySQL decodes each column of
# the reply in Python, and the token row's others (hash, times, prefix) cost ~4% of the read.
FIND_LIVE_TOKEN = (
    select(ApiToken)
    .options(
        load_only(ApiToken.user_id, ApiToken.name, ApiToken.scopes, ApiToken.last_used_at),
        with_its_account(ApiToken.user),
    )
    .where(ApiToken.token_hash == bindparam("token_hash"), ApiToken.expires_at > bindparam("now"))
)


@dataclass(frozen=True)
class IssuedToken:
    """What the client receives once: the token itself and when it stops working (UTC)."""

    token: str
    expires_at: datetime


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def new_secret() -> str:
    """A new token or API key: the prefix and 256 random bits."""
    return TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)


def issue(
    user: User,
    *,
    known_device: bool = True,
    method: str = "password",
    before_commit: Callable[[IssuedToken], None] | None = None,
) -> IssuedToken:
    """A new log-in token for ``user``, committed with its ``logged-in`` event (and the
    new-device mail unless ``known_device``: ``log_ins.logged_in``). The user's expired tokens
    are swept at the same time, so the table does not grow without bound. ``before_commit`` is
    called with the token inside the transaction, so what it writes commits with it (the API's
    idempotency record)."""
    now = utcnow()
    token = new_secret()
    issued = IssuedToken(
        token=token,
        expires_at=now + timedelta(seconds=current_app.config["USERHUB_TOKEN_TTL_SECONDS"]),
    )

    def insert() -> IssuedToken:
        sweep_expired(user)
        row = ApiToken(
            user_id=user.id,
            token_hash=token_hash(token),
            expires_at=issued.expires_at,
            last_used_at=now,  # the log-in is its first use
            authenticated_at=now,
        )
        db.session.add(row)
        db.session.flush()  # its id, for the event
        log_ins.logged_in(user, method=method, known_device=known_device, token=row)
        if before_commit is not None:
            before_commit(issued)
        return issued

    transactions.committed(insert)
    LOG_IN_TOKEN_ISSUED.inc()
    return issued


def sweep_expired(user: User) -> None:
    """Delete ``user``'s expired tokens and keys (the caller commits). Found first, then deleted
    by primary key: a DELETE by ``user_id`` that finds nothing locks InnoDB's gap."""
    ids = db.session.scalars(
        select(ApiToken.id).where(ApiToken.user_id == user.id, ApiToken.expires_at <= utcnow())
    ).all()
    if ids:
        delete_rows(ApiToken.id.in_(ids))


def prune() -> int:
    """Forget every expired token and key, a batch at a time; how many went. (A user's own
    are swept too when they get a new one; this finds those of users who never come back.)"""
    return transactions.delete_in_batches(ApiToken, ApiToken.expires_at <= utcnow())


def find(token: str) -> ApiToken | None:
    """The live (unexpired) token row for this token, with its (active) user loaded. A read only:
    ``stale`` says whether "last used" is due."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    row: ApiToken | None = db.session.scalar(
        FIND_LIVE_TOKEN, {"token_hash": token_hash(token), "now": utcnow()}
    )
    # An inactive account's tokens are revoked with it; this refuses one issued meanwhile.
    return row if row is not None and row.user.is_active else None


def _stale_before() -> datetime:
    interval = current_app.config["USERHUB_LAST_USED_INTERVAL_SECONDS"]
    return utcnow() - timedelta(seconds=interval)


def stale(row: ApiToken) -> bool:
    """Whether the token's "last used" is older than the interval (``touch`` it)."""
    return row.last_used_at is None or row.last_used_at <= _stale_before()


def touch(token_id: int) -> None:
    """Write "last used", once per interval however many requests try at the same moment;
    committed. Bookkeeping: a failure is logged, never an error of the request."""
    before = _stale_before()
    statement = (
        update(ApiToken)
        .where(
            ApiToken.id == token_id,
            (ApiToken.last_used_at.is_(None)) | (ApiToken.last_used_at <= before),
        )
        .values(last_used_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    transactions.bookkeeping(statement, f"when token {token_id} was last used")


def revoke(api_token: ApiToken) -> None:
    """Revoke the log-in token a client logs out with, committed, with its ``logged-out``
    event. A statement, not ``session.delete``: a token already gone (a password change on
    another node revoked it) is revoked all the same."""
    token_id, user_id = api_token.id, api_token.user_id

    def delete_it() -> None:
        if delete_rows(ApiToken.id == token_id):
            security_log.record(security_log.LOGGED_OUT, user_id, api_key_id=token_id)

    transactions.committed(delete_it)


def end_one(user_id: int, token_id: int, **details: Any) -> bool:
    """Revoke one of the account's log-in tokens from elsewhere (the new-device mail's link),
    with its ``token-revoked`` event (and ``details``), in the caller's transaction; False if it
    was gone already."""
    if not delete_rows((ApiToken.id == token_id) & (ApiToken.user_id == user_id)):
        return False
    security_log.record(security_log.TOKEN_REVOKED, user_id, revoked_token_id=token_id, **details)
    return True


def is_live(row: ApiToken) -> bool:
    """Whether a token (found, so not revoked) still works."""
    return row.expires_at > utcnow()


def revoke_all(user: User, *, keep: ApiToken | None = None) -> None:
    """Revoke every token and API key of ``user`` but ``keep`` (the caller commits): a thief's
    key dies with the password they stole."""
    ids = db.session.scalars(select(ApiToken.id).where(ApiToken.user_id == user.id)).all()
    doomed = [token_id for token_id in ids if keep is None or token_id != keep.id]
    if doomed:
        delete_rows(ApiToken.id.in_(doomed))


def delete_rows(condition: ColumnElement[bool]) -> int:
    """Delete the tokens that match; how many there were (the caller commits)."""
    return transactions.delete_where(ApiToken, condition)
