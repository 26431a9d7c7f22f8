"""Personal API keys: named, scoped, expiring tokens a user makes for a script or a service,
shown once, listed with when each was last used, revocable one by one.

A key is a token (``tokens.py``: the same ``uh_`` format, the same SHA-256 look-up, the same
table) with a name and scopes:

* ``read``: only safe methods (GET, HEAD, OPTIONS);
* ``write``: every method (it includes reading);
* ``admin``: the administrators' operations, on top of ``read`` or ``write`` (only an
  administrator can make such a key, and it stops working as one when they stop being one).

A log-in token (``POST /api/v1/tokens``) has no scopes: it does whatever its user may. The
list shows a key's first characters (``prefix``) so its owner can tell which one leaked.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from flask_babel import gettext as _
from sqlalchemy import select

from .. import transactions
from ..extensions import db
from ..models import ApiToken, User, utcnow
from . import security_log, tokens
from .account_rules import raise_if_any

READ, WRITE, ADMIN = "read", "write", "admin"
SCOPES = (READ, WRITE, ADMIN)
PREFIX_LENGTH = 11  # "uh_" and 8 characters: enough to tell keys apart, useless to a guesser
DEFAULT_LIFETIME = timedelta(days=90)
MAX_LIFETIME = timedelta(days=366)
MIN_LIFETIME = timedelta(minutes=1)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class NewKey:
    """A key as its owner sees it once: the row, and the secret itself."""

    row: ApiToken
    secret: str


def allows(scopes: frozenset[str] | None, method: str) -> bool:
    """Whether a token with ``scopes`` (None: a log-in token) may make a ``method`` call."""
    if scopes is None or WRITE in scopes:
        return True
    return READ in scopes and method in SAFE_METHODS


def acts_as_admin(user: User, scopes: frozenset[str] | None) -> bool:
    """Whether a call by ``user`` with these scopes may use the administrators' operations."""
    return user.is_admin and (scopes is None or ADMIN in scopes)


def create(user: User, name: str, scopes: Iterable[str], expires_in: int | None = None) -> NewKey:
    """Make a key, committed with its ``api-key-created`` event. InvalidUserInput names the
    field to fix: an empty or long name, no scope, an unknown scope, ``admin`` for a user who is
    not an administrator, a lifetime out of range."""
    name = name.strip()
    chosen = sorted(set(scopes), key=SCOPES.index) if set(scopes) <= set(SCOPES) else None
    errors: dict[str, list[str]] = {}
    if not name:
        errors["name"] = [_("Give the key a name, e.g. the script or service that will use it.")]
    elif len(name) > 100:
        errors["name"] = [_("At most 100 characters.")]
    if chosen is None:
        errors["scopes"] = [_("Each scope is one of: read, write, admin.")]
    elif not chosen:
        errors["scopes"] = [_("Choose at least one scope: read, write or admin.")]
    elif ADMIN in chosen and not user.is_admin:
        errors["scopes"] = [_("Only an administrator can make a key with the admin scope.")]
    lifetime = DEFAULT_LIFETIME if expires_in is None else timedelta(seconds=expires_in)
    if not MIN_LIFETIME <= lifetime <= MAX_LIFETIME:
        errors["expires_in"] = [_("Between 60 seconds and 366 days (31622400 seconds).")]
    raise_if_any(errors)
    assert chosen is not None
    secret = tokens.new_secret()
    now = utcnow()
    row = ApiToken(
        user_id=user.id,
        token_hash=tokens.token_hash(secret),
        created_at=now,
        expires_at=now + lifetime,
        name=name,
        scopes=" ".join(chosen),
        prefix=secret[:PREFIX_LENGTH],
    )

    def insert() -> ApiToken:
        tokens.sweep_expired(user)
        db.session.add(row)
        db.session.flush()
        security_log.record(
            security_log.API_KEY_CREATED, user.id, key_id=row.id, name=name, scopes=chosen
        )
        return row

    return NewKey(transactions.committed(insert), secret)


def listed(user: User) -> list[ApiToken]:
    """The user's live keys (not log-in tokens), the newest first."""
    rows = db.session.scalars(
        select(ApiToken)
        .where(
            ApiToken.user_id == user.id,
            ApiToken.name.is_not(None),
            ApiToken.expires_at > utcnow(),
        )
        .order_by(ApiToken.created_at.desc(), ApiToken.id.desc())
    )
    return list(rows)


def revoke(user: User, key_id: int, *, by: User | None = None) -> bool:
    """Revoke one of ``user``'s keys, committed with its event; False if there is none."""

    def delete_it() -> bool:
        row = db.session.get(ApiToken, key_id)
        if row is None or row.user_id != user.id or not row.is_key:
            return False
        name = row.name
        tokens.delete_rows(ApiToken.id == key_id)
        security_log.record(
            security_log.API_KEY_REVOKED,
            user.id,
            actor_id=by.id if by else None,
            key_id=key_id,
            name=name,
        )
        return True

    return transactions.committed(delete_it)
