"""Deleting an account: asked for by its owner and done after a grace period, or done at once
by an administrator.

**Asking** (``request``): the account cannot be used from then on (``account_status``), every
session, token and key ends, unfinished log-in steps are dropped, and the owner is mailed the
date with a link that keeps the account (``cancel_by_link``). Until the date the owner may
also keep it from the log-in form (the right password, then a button: ``offer_cancel`` and
``cancel_by_challenge``) or with ``POST /api/v1/tokens`` and ``"cancel_deletion": true``.
Keeping it does not log in: a second factor is still asked for at the next log-in.

**Purging** (``purge``): in one transaction, the account's row goes with everything that
hangs on it (the database's ON DELETE CASCADE: tokens and keys, sessions, the authenticator
app, recovery codes, passkeys, unfinished log-in steps, mailed links); every mail about it in
the outbox, sent or not (each names its account; one queued before revision 0007, to any of
its addresses); and every event of its security log. Housekeeping purges the accounts
whose grace period is over (``purge_due``: hourly in every ``userhub serve`` worker, or
``flask --app userhub prune``); an administrator's ``DELETE /api/v1/users/{id}`` purges at
once. The purge is one conditional DELETE of the account's row, so any number of instances
may run it at once: one deletes the account, the others find nothing and write nothing.

**What is kept, and why:**

* one ``account-deleted`` event naming the account by its id only, no name and no details
  (and, when an administrator deleted it, the administrator's id and request): the admins'
  audit trail that the account existed and was deleted, and by whom;
* the events of other accounts' logs in which this account acted as their administrator: the
  fact that an administrator acted stays, naming them by id only; the address and browser
  their requests came from are erased;
* idempotency records (``idempotency.py``) of its registration or log-ins: linked to no
  account, holding only digests and an answer encrypted with a key derived from the request
  itself (which only its sender has), useless after 24 hours and deleted by the sweep that
  follows each later POST with an ``Idempotency-Key``;
* rate-limit counters (``login_limits.py``, ``email_flows.py``), which are not in the
  database but in the limiter's storage (a file of the host, or Redis): keyed by the account's
  username key, a known device's random id, or a mail address, holding only counts, and gone
  when their window ends (6 minutes for wrong passwords by default, an hour for notices and
  mailed links).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

from flask import current_app
from sqlalchemy import ColumnElement, select, update

from .. import transactions
from ..extensions import db
from ..models import (
    AuthChallenge,
    EmailLink,
    OutboxMessage,
    SecurityEvent,
    User,
    utc_iso,
    utcnow,
)
from . import account_mail, account_status, challenges, email_links, outbox, security_log
from .errors import InvalidLink, NoSuchUser

T = TypeVar("T")
PURGE_BATCH = 100  # accounts read at a time by ``purge_due``; each is purged on its own


class NothingPurged(Exception):
    """The account is gone already, or not due: the purge's transaction writes nothing."""


def request(user: User) -> datetime:
    """The owner asks for the deletion of ``user`` (committed): due after
    ``USERHUB_DELETION_GRACE_DAYS``; until then no log-in, and every session, token and key
    ends now. The owner is mailed the date and a link that keeps the account. When it is due;
    asked again, the first date stands."""
    if user.deletion_due_at is not None:
        return user.deletion_due_at
    grace = timedelta(days=current_app.config["USERHUB_DELETION_GRACE_DAYS"])
    due = (utcnow() + grace).replace(microsecond=0)  # as MySQL keeps it

    def apply() -> datetime:
        user.deletion_due_at = due
        account_status.end_access(user)
        _drop_challenges(user.id)
        security_log.record(security_log.DELETION_REQUESTED, user.id, due=utc_iso(due))
        account_mail.deletion_requested(user, due)
        return due

    return _committed_to_account(apply)


def cancel(user: User) -> bool:
    """The owner keeps ``user`` (committed): its deletion is called off, and its mailed link
    dies. False if no deletion was waiting. Nothing is logged in."""
    if user.deletion_due_at is None:
        return False
    return _committed_to_account(lambda: _call_off(user))


def cancel_by_link(token: str) -> User:
    """The mailed link's button: the link is spent and the deletion called off, together.
    InvalidLink or ExpiredLink for a dead link (used, replaced, or its account deleted)."""

    def apply() -> User:
        link = email_links.spend(email_links.CANCEL_DELETION, token)
        user = db.session.get(User, link.user_id)
        if user is None:
            raise InvalidLink()
        _call_off(user)
        return user

    return _committed_to_account(apply)


def offer_cancel(user_id: int) -> str:
    """The log-in form was given the right password of ``user_id``, which waits to be deleted:
    a proof of that (a challenge: minutes, once) for its "Keep my account" button."""
    return challenges.begin(challenges.CANCEL_DELETION, user_id=user_id)


def cancel_by_challenge(key: str | None) -> bool:
    """The "Keep my account" button: ``cancel`` the deletion of the account ``key`` was
    offered for, spending it. False if the key is unknown, spent or expired (log in again)."""
    challenge = challenges.find(key, challenges.CANCEL_DELETION)
    user = db.session.get(User, challenge.user_id) if challenge and challenge.user_id else None
    if challenge is None or user is None:
        return False

    def apply() -> bool:
        if not challenges.spend(challenge):
            return False
        _call_off(user)
        return True

    return _committed_to_account(apply)


def _call_off(user: User) -> bool:
    """Call off the deletion of ``user`` in the current transaction: one conditional UPDATE, so
    of two at once (the link and the button) one does it and logs it."""
    kept = _update_where(
        User, {"deletion_due_at": None}, User.id == user.id, User.deletion_due_at.is_not(None)
    )
    if not kept:
        return False
    email_links.drop(user, email_links.CANCEL_DELETION)
    security_log.record(security_log.DELETION_CANCELLED, user.id)
    db.session.expire(user, ["deletion_due_at"])
    return True


def purge(user_id: int, *, by_admin: User | None = None, only_if_due: bool = False) -> bool:
    """Delete the account ``user_id`` for good, with everything of it this module's docstring
    lists, in one transaction (committed), and log one ``account-deleted`` event (naming
    ``by_admin``, if an administrator did it). ``only_if_due``: only if its grace period is
    over. False, with nothing written, if there was no such account (deleted meanwhile, by
    another instance) or it was not due (or its deletion was called off)."""
    admin_id = by_admin.id if by_admin is not None else None

    def apply() -> None:
        doomed: list[ColumnElement[bool]] = [User.id == user_id]
        if only_if_due:
            doomed.append(User.deletion_due_at <= utcnow())
        # Locked until the commit: what is read of it stays true until it is gone.
        found = db.session.execute(
            select(User.email, User.pending_email).where(*doomed).with_for_update()
        ).one_or_none()
        if found is None:
            raise NothingPurged()
        addresses = {found.email, found.pending_email, *_link_addresses(user_id)} - {None}
        if transactions.delete_where(User, *doomed) != 1:
            raise NothingPurged()
        _delete_by_id(OutboxMessage, _ids(OutboxMessage, outbox.mail_about(user_id, addresses)))
        _delete_by_id(SecurityEvent, _ids(SecurityEvent, SecurityEvent.user_id == user_id))
        acted = _ids(SecurityEvent, SecurityEvent.actor_id == user_id)
        if acted:
            _update_where(
                SecurityEvent, {"ip": None, "user_agent": None}, SecurityEvent.id.in_(acted)
            )
        security_log.record(security_log.ACCOUNT_DELETED, user_id, actor_id=admin_id)

    try:
        transactions.committed(apply)
    except NothingPurged:
        return False
    return True


def purge_due() -> int:
    """Purge every account whose grace period is over, each in a transaction of its own; how
    many went (not those another instance purged meanwhile, nor those kept at the last
    moment)."""
    purged, after = 0, 0
    while True:
        due: Sequence[int] = db.session.scalars(
            select(User.id)
            .where(User.deletion_due_at <= utcnow(), User.id > after)
            .order_by(User.id)
            .limit(PURGE_BATCH)
        ).all()
        if not due:
            return purged
        purged += sum(purge(user_id, only_if_due=True) for user_id in due)
        after = due[-1]


def _committed_to_account(body: Callable[[], T]) -> T:
    """``transactions.committed``; an account deleted meanwhile is NoSuchUser."""
    try:
        return transactions.committed(body)
    except transactions.RowVanished as exc:
        raise NoSuchUser() from exc


def _drop_challenges(user_id: int) -> None:
    """Log-ins of the account waiting for their second step, and its passkey ceremonies, end."""
    _delete_by_id(AuthChallenge, _ids(AuthChallenge, AuthChallenge.user_id == user_id))


def _link_addresses(user_id: int) -> set[str | None]:
    return set(db.session.scalars(select(EmailLink.email).where(EmailLink.user_id == user_id)))


def _ids(model: Any, condition: ColumnElement[bool]) -> list[int]:
    """The ids of the rows that match, by a plain read (a locking DELETE or UPDATE by a column
    without an index would lock the whole table on InnoDB; one that finds nothing, a gap)."""
    return list(db.session.scalars(select(model.id).where(condition)))


def _delete_by_id(model: Any, ids: Collection[int]) -> None:
    if ids:
        transactions.delete_where(model, model.id.in_(ids))


def _update_where(model: Any, values: dict[str, Any], *conditions: ColumnElement[bool]) -> int:
    """Set ``values`` on the rows of ``model`` that match, in the current transaction; how many
    there were."""
    statement = (
        update(model).where(*conditions).values(values).execution_options(synchronize_session=False)
    )
    return int(db.session.execute(statement).rowcount)  # type: ignore[attr-defined]
