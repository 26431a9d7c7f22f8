"""API tokens: issued at log-in through the API, stored only as a SHA-256, expiring, revocable.

A token is ``uh_`` followed by 32 random bytes in URL-safe base64 (256 bits). The prefix lets
secret scanners and people recognise a leaked userhub token; the database never holds the token
itself, so a copy of the database grants nothing.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from flask import current_app
from sqlalchemy import bindparam, delete, select
from sqlalchemy.orm import joinedload

from .. import transactions
from ..extensions import db
from ..models import ApiToken, utcnow

if TYPE_CHECKING:
    from ..models import User

TOKEN_PREFIX = "uh_"  # noqa: S105 (a public prefix, not a secret)
TOKEN_BYTES = 32

# Built once: this runs on every token-authenticated request, and building the statement
# (with its eager load: one query for the token and its user) cost more than running it.
FIND_LIVE_TOKEN = (
    select(ApiToken)
    .options(joinedload(ApiToken.user))
    .where(ApiToken.token_hash == bindparam("token_hash"), ApiToken.expires_at > bindparam("now"))
)


@dataclass(frozen=True)
class IssuedToken:
    """What the client receives once: the token itself and when it stops working (UTC)."""

    token: str
    expires_at: datetime


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def issue(user: User, *, before_commit: Callable[[IssuedToken], None] | None = None) -> IssuedToken:
    """A new token for ``user``, committed. The user's expired tokens are swept at the same
    time, so the table does not grow without bound. ``before_commit`` is called with the token
    inside the transaction, so what it writes commits with it (the API's idempotency record)."""
    now = utcnow()
    token = TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)
    issued = IssuedToken(
        token=token,
        expires_at=now + timedelta(seconds=current_app.config["USERHUB_TOKEN_TTL_SECONDS"]),
    )

    def insert() -> IssuedToken:
        db.session.execute(
            delete(ApiToken).where(ApiToken.user_id == user.id, ApiToken.expires_at <= now)
        )
        db.session.add(
            ApiToken(user_id=user.id, token_hash=token_hash(token), expires_at=issued.expires_at)
        )
        if before_commit is not None:
            before_commit(issued)
        return issued

    return transactions.committed(insert)


def find(token: str) -> ApiToken | None:
    """The live (unexpired) token row for this token, with its user loaded."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    return db.session.scalar(FIND_LIVE_TOKEN, {"token_hash": token_hash(token), "now": utcnow()})


def revoke(api_token: ApiToken) -> None:
    """Revoke one token, committed. A statement, not ``session.delete``: a token already gone
    (a password change on another node revoked it) is revoked all the same."""
    token_id = api_token.id
    transactions.committed(
        lambda: db.session.execute(delete(ApiToken).where(ApiToken.id == token_id))
    )


def revoke_all(user: User, *, keep: ApiToken | None = None) -> None:
    """Revoke every token of ``user`` but ``keep``. The caller commits."""
    statement = delete(ApiToken).where(ApiToken.user_id == user.id)
    if keep is not None:
        statement = statement.where(ApiToken.id != keep.id)
    db.session.execute(statement)
