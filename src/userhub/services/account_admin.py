"""What an administrator sees of another account and does to it, where no other service does it
already: its second factors in numbers, its tokens and keys together, revoking one token or
key, and who acted in its log.

The rest of an administrator's work is in the services that own it (``account_status``,
``users``, ``second_factors``, ``email_flows``, ``sessions``); each records its event naming
the administrator (``actor_id``). Who may do any of it is ``roles.py``'s to say, asked by the
pages and the API before they call here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select

from .. import transactions
from ..extensions import db
from ..models import ApiToken, SecurityEvent, User, utcnow
from . import api_keys, passkeys, recovery_codes, tokens, totp


@dataclass(frozen=True)
class Factors:
    """An account's second factors: the authenticator app, recovery codes left, passkeys."""

    app: bool
    recovery_codes: int
    passkeys: int

    @property
    def any(self) -> bool:
        return self.app or self.recovery_codes > 0 or self.passkeys > 0


def factors(user: User) -> Factors:
    return Factors(totp.enabled(user), recovery_codes.remaining(user), passkeys.count(user))


def credentials(user: User) -> list[ApiToken]:
    """The account's live log-in tokens and API keys, the newest first."""
    rows = db.session.scalars(
        select(ApiToken)
        .where(ApiToken.user_id == user.id, ApiToken.expires_at > utcnow())
        .order_by(ApiToken.created_at.desc(), ApiToken.id.desc())
    )
    return list(rows)


def revoke_credential(user: User, token_id: int, *, by: User) -> bool:
    """Revoke one of ``user``'s log-in tokens or API keys (committed, with an event naming the
    administrator ``by``); False if the account has no such token or key."""
    row = db.session.get(ApiToken, token_id)
    if row is None or row.user_id != user.id:
        return False
    if row.is_key:
        return api_keys.revoke(user, token_id, by=by)
    return transactions.committed(lambda: tokens.end_one(user.id, token_id, actor_id=by.id))


def actor_names(events: Iterable[SecurityEvent]) -> dict[int, str]:
    """The usernames of the administrators who acted in ``events`` (by id); one whose account
    is gone is not among them."""
    ids = {event.actor_id for event in events if event.actor_id is not None}
    if not ids:
        return {}
    rows = db.session.execute(select(User.id, User.username).where(User.id.in_(ids)))
    return {user_id: username for user_id, username in rows}
