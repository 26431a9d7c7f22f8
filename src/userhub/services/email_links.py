"""Links mailed to an account's owner: made, stored as a hash, redeemed once.

A link carries 32 random bytes (URL-safe base64); the table keeps only their SHA-256, like an
API token's, so a copy of the database opens nothing. Each link has a purpose (it opens nothing
else), an expiry, and is spent by one conditional UPDATE in the transaction of what it does: two
clicks at once, on two nodes, do it once. A reset link also carries a digest of the password
hash it was made under, so it dies when the password changes any other way.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from flask import current_app
from sqlalchemy import delete, select, update

from ..extensions import db
from ..models import EmailLink, User, utcnow
from . import tokens  # a module, not its function: tokens imports this module in turn (log_ins)
from .errors import ExpiredLink, InvalidLink

VERIFY = "verify-email"
RESET = "reset-password"
CHANGE = "change-email"
UNDO = "undo-email-change"
UNLOCK = "unlock"
END_SESSION = "end-session"  # from the new-device mail: ends that browser session
END_TOKEN = "end-token"  # noqa: S105 (a purpose) from the new-device mail: revokes that log-in token
CANCEL_DELETION = "cancel-deletion"  # from the deletion notice: keeps the account, until it is due
LINK_BYTES = 32
MAX_TOKEN_LENGTH = 100  # a real one is 43 characters; anything longer is not worth hashing
UNDO_LIFETIME = timedelta(days=7)  # the old address may read its mail late


def lifetime(purpose: str) -> timedelta:
    """How long a link of ``purpose`` works."""
    config = current_app.config
    if purpose == UNDO:
        return UNDO_LIFETIME
    if purpose in (END_SESSION, END_TOKEN):
        return UNDO_LIFETIME  # as long as the mail may sit unread
    if purpose == CANCEL_DELETION:
        return timedelta(days=config["USERHUB_DELETION_GRACE_DAYS"])  # as long as there is a choice
    if purpose in (RESET, UNLOCK):
        return timedelta(seconds=config["USERHUB_PASSWORD_RESET_TTL_SECONDS"])
    return timedelta(seconds=config["USERHUB_EMAIL_LINK_TTL_SECONDS"])


def password_stamp(user: User) -> str:
    """A digest of the current password hash: changes whenever the password does."""
    return hashlib.sha256(user.password_hash.encode()).hexdigest()


def make(
    user: User, purpose: str, *, email: str | None = None, target_id: int | None = None
) -> str:
    """A new link's token, its row added to the current transaction (the caller commits).
    Earlier unspent links of the same purpose for the user are dropped: only the newest works
    (except links that each end their own session or token, ``target_id``)."""
    now = utcnow()
    token = secrets.token_urlsafe(LINK_BYTES)
    if target_id is None:
        drop(user, purpose)
    db.session.add(
        EmailLink(
            user_id=user.id,
            purpose=purpose,
            token_hash=tokens.token_hash(token),
            email=email,
            password_stamp=password_stamp(user) if purpose == RESET else None,
            target_id=target_id,
            created_at=now,
            expires_at=now + lifetime(purpose),
        )
    )
    return token


def peek(purpose: str, token: str) -> EmailLink:
    """The live link of ``purpose`` behind ``token``, not spent (a page shows what the button
    will do). InvalidLink or ExpiredLink otherwise."""
    if not token or len(token) > MAX_TOKEN_LENGTH:
        raise InvalidLink()
    link: EmailLink | None = db.session.scalar(
        select(EmailLink).where(
            EmailLink.token_hash == tokens.token_hash(token), EmailLink.purpose == purpose
        )
    )
    if link is None or link.used_at is not None:
        raise InvalidLink()
    if link.expires_at <= utcnow():
        raise ExpiredLink()
    if purpose == RESET:
        user = db.session.get(User, link.user_id)
        if user is None or link.password_stamp != password_stamp(user):
            raise InvalidLink()
    return link


def spend(purpose: str, token: str) -> EmailLink:
    """``peek``, then mark the link used, in the current transaction: of two requests with the
    same link, one spends it and the other gets InvalidLink."""
    link = peek(purpose, token)
    spent: int = db.session.execute(
        update(EmailLink)
        .where(EmailLink.id == link.id, EmailLink.used_at.is_(None))
        .values(used_at=utcnow())
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]
    if spent != 1:
        raise InvalidLink()
    return link


def drop(user: User, *purposes: str) -> None:
    """Unspent links of ``purposes`` for ``user`` stop working (the caller commits).

    Found by a plain read, then deleted by primary key: on InnoDB a DELETE by ``user_id`` that
    finds nothing (every new account) locks the gap at the end of that index, and two
    registrations at once then deadlock on their INSERTs, again and again."""
    ids = db.session.scalars(
        select(EmailLink.id).where(EmailLink.user_id == user.id, EmailLink.purpose.in_(purposes))
    ).all()
    if ids:
        db.session.execute(
            delete(EmailLink)
            .where(EmailLink.id.in_(ids))
            .execution_options(synchronize_session=False)
        )
