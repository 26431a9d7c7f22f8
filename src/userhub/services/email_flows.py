"""What a mailed link does, and the requests that mail one: verify an address, reset a
forgotten password, confirm or undo a change of address, unlock an account, end the log-in a
new-device mail told of.

Each redeeming function spends its link (``email_links.spend``) in the transaction of what it
does, so a link works once, and the effect and the spending commit together.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from flask import current_app
from sqlalchemy import select

from .. import transactions
from ..extensions import db
from ..models import ApiToken, BrowserSession, EmailLink, User, utc_minute
from . import account_mail, email_links, login_limits, security_log, sessions, tokens
from .account_rules import normalise_email, password_problems, raise_if_any
from .account_status import end_access
from .errors import EmailTaken, InvalidLink, NoAddress
from .passwords import passwords
from .users import address_taken, commit_account_change, find_user

# A request that names an account by address or username (a reset, a new verification link) is
# answered no sooner than this after it arrived, whether or not the account exists: the work
# done for a real account (a link and a mail written) is far shorter, so the time of the answer
# tells nothing.
RESET_ANSWER_SECONDS = 0.25
MAIL_ADDRESS_SCOPE = "mail-to-address"


def _within_address_limit(address: str) -> bool:
    """Count a mail of a link to ``address``; False when the address had its share
    (``USERHUB_RATELIMIT_MAIL_ADDRESS``)."""
    limit = current_app.config["USERHUB_RATELIMIT_MAIL_ADDRESS"]
    return login_limits.counted(limit, MAIL_ADDRESS_SCOPE, address)


def request_password_reset(*, email: str | None = None, username: str | None = None) -> None:
    """Mail a reset link to the account named by ``email`` or ``username``, if there is one
    with an address (and the address is under its limit). Returns nothing, and never sooner
    than ``RESET_ANSWER_SECONDS``: the caller answers the same either way."""
    with _answer_no_sooner_than(RESET_ANSWER_SECONDS):
        user = _account_named(email, username)
        if user is not None and user.email is not None and _within_address_limit(user.email):
            commit_account_change(lambda: account_mail.reset_password(user))


def send_reset_by_admin(user: User, *, by: User | None) -> None:
    """An administrator has a reset link mailed to ``user`` (committed), and every session,
    token and key of the account ended, so whoever holds them must log in again; NoAddress
    if the account has none. The password keeps working until a new one is set with the
    link: to stop a log-in at once, deactivate the account (``account_status``)."""
    if user.email is None:
        raise NoAddress()

    def send() -> None:
        account_mail.reset_password(user)
        end_access(user)
        security_log.record(
            security_log.PASSWORD_RESET_SENT, user.id, actor_id=by.id if by else None
        )

    commit_account_change(send)


def request_verification(*, email: str | None = None, username: str | None = None) -> None:
    """A new verification link for an account named by ``email`` or ``username``, for someone
    who cannot log in until the address is verified: mailed only if the account exists with an
    unverified address, and answered alike (and no sooner) either way."""
    with _answer_no_sooner_than(RESET_ANSWER_SECONDS):
        user = _account_named(email, username)
        if user is not None and user.email_unverified:
            send_verification(user)


@contextlib.contextmanager
def _answer_no_sooner_than(seconds: float) -> Iterator[None]:
    started = time.monotonic()
    yield
    time.sleep(max(0.0, seconds - (time.monotonic() - started)))


def _account_named(email: str | None, username: str | None) -> User | None:
    if email:
        address, problems = normalise_email(email)
        if problems or address is None:
            return None
        return db.session.scalar(select(User).where(User.email == address))
    if username:
        return find_user(username)
    return None


def reset_password(token: str, password: str) -> User:
    """Set a new password with a reset link: every session and token of the account ends, a
    notice is mailed, and the address counts as verified (the link reached it)."""
    raise_if_any({"password": problems} if (problems := password_problems(password)) else {})
    email_links.peek(email_links.RESET, token)  # a dead link is told before a hash is spent
    new_hash = passwords().hash(password)

    def apply() -> User:
        link = email_links.spend(email_links.RESET, token)
        user = _user_of(link.user_id)
        user.password_hash = new_hash
        user.confirm_address()  # the link reached it
        end_access(user)
        email_links.drop(user, email_links.RESET, email_links.UNLOCK)
        account_mail.password_changed(user)
        security_log.record(security_log.PASSWORD_RESET, user.id)
        return user

    user = commit_account_change(apply)
    login_limits.unlock(user.username_key)  # strangers' failures no longer stand in the way
    return user


def verify_email(token: str) -> User:
    """Mark the address the link was sent to as verified, if it is still the account's."""

    def apply() -> User:
        link = email_links.spend(email_links.VERIFY, token)
        user = _user_of(link.user_id)
        if user.email != link.email:
            raise InvalidLink()  # the address changed since: this link is about another one
        user.confirm_address()
        return user

    return commit_account_change(apply)


def send_verification(user: User) -> None:
    """A new verification link to the account's address (nothing if it is verified already,
    or the address had its share of mail lately)."""
    if user.email is None:
        raise NoAddress()
    if user.email_verified_at is None and _within_address_limit(user.email):
        commit_account_change(lambda: account_mail.verify_email(user))


def confirm_email_change(token: str) -> User:
    """Make the pending address the account's (verified: the link reached it)."""

    def apply() -> User:
        link = email_links.spend(email_links.CHANGE, token)
        user = _user_of(link.user_id)
        if user.pending_email != link.email or link.email is None:
            raise InvalidLink()  # cancelled, or replaced by another change since
        if address_taken(link.email, user):
            raise EmailTaken()
        user.set_address(link.email, verified=True)
        email_links.drop(user, email_links.VERIFY)
        security_log.record(security_log.EMAIL_CHANGED, user.id)
        return user

    return commit_account_change(apply)


def undo_email_change(token: str) -> User:
    """ "This was not me": the address the link was sent to is the account's again (verified),
    a pending change is cancelled, every session and token ends (whoever asked for the change
    was logged in), and a reset link goes to that address so its owner can choose a new
    password."""

    def apply() -> User:
        link = email_links.spend(email_links.UNDO, token)
        user = _user_of(link.user_id)
        if link.email is not None and address_taken(link.email, user):
            raise EmailTaken()
        user.set_address(link.email, verified=True)
        email_links.drop(user, email_links.CHANGE, email_links.VERIFY)
        end_access(user)
        account_mail.reset_password(user)
        security_log.record(security_log.EMAIL_CHANGED, user.id, undone=True)
        return user

    return commit_account_change(apply)


def unlock(token: str) -> User:
    """The owner's way past strangers' failed log-ins: the account's shared bucket is emptied
    (the web layer also makes this browser a known device of the account)."""

    def spend() -> EmailLink:
        link = email_links.spend(email_links.UNLOCK, token)
        security_log.record(security_log.ACCOUNT_UNLOCKED, link.user_id)
        return link

    link = transactions.committed(spend)
    user = _user_of(link.user_id)
    login_limits.unlock(user.username_key)
    return user


@dataclass(frozen=True)
class NewDeviceLogIn:
    """The log-in a new-device mail's link ends, as the link's page tells it."""

    browser: bool  # a browser session; else a log-in token of the API
    live: bool  # its session or token still works
    at: datetime | None  # None once its event has left the security log
    ip: str | None = None
    user_agent: str | None = None  # the browser summary

    @property
    def when(self) -> str | None:
        return utc_minute(self.at) if self.at else None


def log_in_of(link: EmailLink) -> NewDeviceLogIn:
    """What a new-device link (``END_SESSION`` or ``END_TOKEN``) would end: the session or
    token of a log-in, when, where from and with what it logged in, and whether it still
    works."""
    assert link.target_id is not None
    row = _target(link)
    if isinstance(row, BrowserSession):
        live = sessions.is_live(row)
    else:
        live = row is not None and tokens.is_live(row)
    browser = link.purpose == email_links.END_SESSION
    target = {"session_id" if browser else "api_key_id": link.target_id}
    event = security_log.log_in_event(link.user_id, until=link.created_at, **target)
    if event is None:
        return NewDeviceLogIn(browser, live, None)
    return NewDeviceLogIn(browser, live, event.created_at, event.ip, event.user_agent)


def end_by_link(purpose: str, token: str) -> bool:
    """The new-device mail's "this was not me": the session (``END_SESSION``) or log-in token
    (``END_TOKEN``) of that log-in ends at once, with its event, without a log-in; the link is
    spent with it. False if it had ended already (logged out, expired): the link is spent all
    the same."""
    assert purpose in (email_links.END_SESSION, email_links.END_TOKEN), purpose

    def apply() -> bool:
        row = _target(email_links.spend(purpose, token))
        if isinstance(row, BrowserSession):
            return sessions.end_one(row.user_id, row.id, via="new-device-mail")
        return row is not None and tokens.end_one(row.user_id, row.id, via="new-device-mail")

    return transactions.committed(apply)


def _target(link: EmailLink) -> BrowserSession | ApiToken | None:
    """The session or token a new-device link was made for, while the account has it: by id,
    and made no later than the link (SQLite gives a new row the id of a deleted highest one,
    and a later log-in is not the one the mail told of)."""
    row: BrowserSession | ApiToken | None
    if link.purpose == email_links.END_SESSION:
        row = db.session.get(BrowserSession, link.target_id)
    else:
        row = db.session.get(ApiToken, link.target_id)
    if row is None or row.user_id != link.user_id or row.created_at > link.created_at:
        return None
    return row


def _user_of(user_id: int) -> User:
    user = db.session.get(User, user_id)
    if user is None:
        raise InvalidLink()
    return user
