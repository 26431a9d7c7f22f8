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
from .errors import AccountDeactivated, AccountPendingDeletion, OwnDeactivation


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


ACTIVE, DEACTIVATED, PENDING_DELETION = "active", "deactivated", "pending-deletion"


def status_of(user: User) -> str:
    """``active``, ``deactivated`` or ``pending-deletion`` (the latter when both: that is what
    a log-in is told), as ``users.UserFilter`` filters them."""
    if user.deletion_due_at is not None:
        return PENDING_DELETION
    return DEACTIVATED if user.deactivated_at is not None else ACTIVE


def check_deactivation(user: User, *, by: User | None) -> None:
    """OwnDeactivation if administrator ``by`` would deactivate their own account (nobody
    could then reactivate it but another administrator, or the command line)."""
    if by is not None and by.id == user.id:
        raise OwnDeactivation()


def deactivate(user: User, *, by: User | None) -> bool:
    """Deactivate ``user`` (committed): no more log-ins, every session, token and key ended;
    False if they were deactivated already. ``by``: the administrator, named in the log (None:
    the command line, run by whoever runs the server); OwnDeactivation if it is ``user``."""
    check_deactivation(user, by=by)
    if user.deactivated_at is not None:
        return False
    transactions.committed(lambda: set_active(user, False, by=by))
    return True


def reactivate(user: User, *, by: User | None) -> bool:
    """Let ``user`` log in again (committed); False if they were not deactivated. An account
    waiting to be deleted stays so: only its owner cancels that."""
    if user.deactivated_at is None:
        return False
    transactions.committed(lambda: set_active(user, True, by=by))
    return True


def set_active(user: User, active: bool, *, by: User | None) -> bool:
    """Reactivate or deactivate ``user`` in the caller's transaction (it commits), with its
    event; False if the account is so already. ``deactivate`` and ``reactivate`` commit it
    alone; ``users.update_user`` with an administrator's other changes."""
    if active == (user.deactivated_at is None):
        return False
    if active:
        user.deactivated_at = None
        security_log.record(security_log.ACCOUNT_REACTIVATED, user.id, actor_id=_id(by))
    else:
        user.deactivated_at = utcnow()
        end_access(user)
        security_log.record(security_log.ACCOUNT_DEACTIVATED, user.id, actor_id=_id(by))
    return True


def _id(admin: User | None) -> int | None:
    return admin.id if admin is not None else None
