"""Personal API keys: named, scoped, expiring tokens a user makes for a script or a service,
shown once, listed with when each was last used, revocable one by one.

A key is a token (``tokens.py``: the same ``uh_`` format, the same SHA-256 look-up, the same
table) with a name and scopes:

* ``read``: only safe methods (GET, HEAD, OPTIONS);
* ``write``: every method (it includes reading);
* ``admin``: the staff operations in its owner's role (``roles.py``), on top of ``read`` or
  ``write``: an administrator's key reads and changes other accounts, a support account's
  reads them. Only staff (admin or support) can make such a key, and it acts in whatever role
  its owner has at each call: none once they lose it. A key without ``admin`` acts as an
  ordinary account's, whoever owns it, so a leaked script key exposes only its owner.

A log-in token (``POST /api/v1/tokens``) has no scopes: it does whatever its user may. The
list shows a key's first characters (``prefix``) so its owner can tell which one leaked.

A key may make keys (with ``write``), but never one with a scope it lacks itself
(``grantable``): a stolen ``write`` key cannot mint an ``admin`` key. A log-in token or a browser
session may give any scope its user may have.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from flask_babel import gettext as _
from sqlalchemy import select

from .. import transactions
from ..extensions import db
from ..metrics import API_KEY_ISSUED
from ..models import API_KEY_NAME_MAX_LENGTH, ApiToken, User, utcnow
from . import roles, security_log, tokens
from .account_rules import is_invisible, raise_if_any
from .errors import InsufficientScope

READ, WRITE, ADMIN = "read", "write", "admin"
SCOPES = (READ, WRITE, ADMIN)
PREFIX_LENGTH = 11  # "uh_" and 8 characters: enough to tell keys apart, useless to a guesser
DEFAULT_LIFETIME = timedelta(days=90)
MAX_LIFETIME_SECONDS = 366 * 24 * 60 * 60
MIN_LIFETIME_SECONDS = 60
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


def acting_role(user: User, scopes: frozenset[str] | None) -> str | None:
    """The role (``roles.ADMIN``, ``roles.SUPPORT``) a call by ``user`` with these scopes acts
    in: the user's own with a log-in token or a session (None) or the ``admin`` scope; else
    None, an ordinary account's."""
    return roles.role_of(user) if scopes is None or ADMIN in scopes else None


def grantable(held: frozenset[str] | None) -> frozenset[str]:
    """The scopes a call made with ``held`` may give a new key: a key only those it has
    (``write`` includes ``read``); a log-in token or a browser session (None), any."""
    if held is None:
        return frozenset(SCOPES)
    return held | {READ} if WRITE in held else held


def _name_problems(name: str) -> list[str]:
    if not name.strip():
        return [_("Give the key a name, e.g. the script or service that will use it.")]
    if len(name) > API_KEY_NAME_MAX_LENGTH:
        return [_("At most 100 characters.")]
    if any(map(is_invisible, name)):
        return [_("A key's name must not contain control or invisible characters.")]
    return []


def _scope_problems(user: User, chosen: list[str] | None) -> list[str]:
    if chosen is None:
        return [_("Each scope is one of: read, write, admin.")]
    if not chosen:
        return [_("Choose at least one scope: read, write or admin.")]
    if ADMIN in chosen and not roles.can_view_users(user):
        return [
            _("Only an administrator or a support account can make a key with the admin scope.")
        ]
    if chosen == [ADMIN]:  # it could make no call at all (``allows``)
        return [_("The admin scope goes with read or write: add one of them.")]
    return []


def _check_grant(chosen: list[str], held: frozenset[str] | None) -> None:
    """InsufficientScope if a key (``held``) asks for a key stronger than itself."""
    if beyond := set(chosen) - grantable(held):
        raise InsufficientScope(
            _(
                "An API key can give a new key only the scopes it has itself, and this one "
                "lacks %(scopes)s. Make this key with a log-in token (POST /api/v1/tokens).",
                scopes=", ".join(sorted(beyond, key=SCOPES.index)),
            ),
            {"scopes": [_("More than the API key making it has.")]},
        )


def create(
    user: User,
    name: str,
    scopes: Iterable[str],
    expires_in: int | None = None,
    *,
    held: frozenset[str] | None = None,
) -> NewKey:
    """Make a key, committed with its ``api-key-created`` event. InvalidUserInput names the
    field to fix: a blank or long name or one with control characters, no scope, an unknown
    scope, ``admin`` alone or for a user who is not staff (admin or support), a lifetime out
    of range (checked before it becomes a ``timedelta``, which a huge number would overflow).
    ``held``: the scopes of the key making this one (None: a log-in token or a browser
    session); asking for more is InsufficientScope. The name is stored without surrounding
    white space."""
    wanted = set(scopes)
    chosen = sorted(wanted, key=SCOPES.index) if wanted <= set(SCOPES) else None
    seconds = int(DEFAULT_LIFETIME.total_seconds()) if expires_in is None else expires_in
    lifetime_problems = (
        []
        if MIN_LIFETIME_SECONDS <= seconds <= MAX_LIFETIME_SECONDS
        else [_("Between 60 seconds and 366 days (31622400 seconds).")]
    )
    problems = {
        "name": _name_problems(name),
        "scopes": _scope_problems(user, chosen),
        "expires_in": lifetime_problems,
    }
    raise_if_any({field: found for field, found in problems.items() if found})
    assert chosen is not None
    _check_grant(chosen, held)
    name = name.strip()
    lifetime = timedelta(seconds=seconds)
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

    key = NewKey(transactions.committed(insert), secret)
    API_KEY_ISSUED.inc()
    return key


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
