"""Whether an account may log in: active; deactivated by an administrator (its data kept); or
waiting to be deleted, as its owner asked (``account_deletion.py``).

``check_can_log_in`` is asked after the password (or a passwordless passkey) proved the
account's holder, so its refusal tells nothing to a stranger. Every way in ends at a session
or a token, and ``sessions.find`` and ``tokens.find`` refuse an inactive account's too, so a
log-in that was half-way through when the account was deactivated gets nothing.

Deactivating ends every session, token and key at once: they are rows, deleted in the same
transaction, so every instance refuses them on their next request (no cache to expire).
"""

from __future__ import annotations

from .. import transactions
from ..models import ApiToken, User, utcnow
from . import security_log, sessions, tokens
from .errors import AccountDeactivated, AccountPendingDeletion


def check_can_log_in(user: User) -> None:
    """Raise AccountDeactivated or AccountPendingDeletion unless ``user`` may log in."""
    if user.deletion_due_at is not None:
        raise AccountPendingDeletion(user.deletion_due_at, user.id)
    if user.deactivated_at is not None:
        raise AccountDeactivated()


def end_access(
    user: User, *, keep_token: ApiToken | None = None, keep_session: int | None = None
) -> None:
    """End every browser session of ``user`` but ``keep_session`` and revoke its tokens and
    keys but ``keep_token`` (the caller commits): a new password, a deactivation, a deletion."""
    sessions.end_all(user, keep=keep_session)
    tokens.revoke_all(user, keep=keep_token)


def deactivate(user: User, *, by: User | None) -> bool:
    """Deactivate ``user`` (committed): no more log-ins, every session, token and key ended;
    False if they were deactivated already. ``by``: the administrator, named in the log (None:
    the command line, run by whoever runs the server)."""
    if user.deactivated_at is not None:
        return False

    def apply() -> None:
        user.deactivated_at = utcnow()
        end_access(user)
        security_log.record(security_log.ACCOUNT_DEACTIVATED, user.id, actor_id=_id(by))

    transactions.committed(apply)
    return True


def reactivate(user: User, *, by: User | None) -> bool:
    """Let ``user`` log in again (committed); False if they were not deactivated. An account
    waiting to be deleted stays so: only its owner cancels that."""
    if user.deactivated_at is None:
        return False

    def apply() -> None:
        user.deactivated_at = None
        security_log.record(security_log.ACCOUNT_REACTIVATED, user.id, actor_id=_id(by))

    transactions.committed(apply)
    return True


def _id(admin: User | None) -> int | None:
    return admin.id if admin is not None else None
