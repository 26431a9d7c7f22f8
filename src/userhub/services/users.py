"""The user service: the only code that writes users.

It grew out of the tutorial's ``Database`` class: where that class built SQL from a dict and
returned driver error text, this module validates, hashes, and lets the database's UNIQUE index
decide duplicates (no check-then-insert race). It knows nothing of HTTP.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from flask import current_app
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import ColumnElement, and_, false, func, insert, or_, select, true
from sqlalchemy.exc import IntegrityError

from .. import transactions
from ..extensions import db
from ..metrics import LOGIN_FAILED, LOGIN_LIMITED, REGISTRATIONS
from ..models import (
    ApiToken,
    User,
)
from . import account_deletion, account_mail, account_status, login_limits, roles, security_log
from .account_rules import (
    check_new_account,
    password_problems,
    profile_fields,
    raise_if_any,
    username_key,
)
from .errors import (
    Conflict,
    EmailNotVerified,
    EmailTaken,
    NoSuchUser,
    OwnAccount,
    OwnAdminRights,
    TooManyFailures,
    UsernameTaken,
)
from .passwords import passwords

# What every log-in that ``authenticate`` refuses is told, whether the name or the password was
# wrong (the log-in page and POST /api/v1/tokens alike).
BAD_CREDENTIALS = _l("Invalid username or password.")

T = TypeVar("T")


def _taken_error(exc: IntegrityError) -> Conflict:
    """Which UNIQUE index refused the row (both backends name the column or its index)."""
    return EmailTaken() if "email" in str(exc.orig).lower() else UsernameTaken()


USER_UNIQUE_COLUMNS = ("username_key", "email")


def register_user(
    username: str,
    password: str,
    *,
    is_admin: bool = False,
    display_name: str | None = None,
    email: str | None = None,
    before_commit: Callable[[User], None] | None = None,
) -> User:
    """Create an account and commit it; raises InvalidUserInput, UsernameTaken or EmailTaken.

    ``before_commit`` is called with the new row (its id known) inside the transaction, so
    what it writes commits with the account or not at all (the API's idempotency record)."""
    account = check_new_account(username, password, display_name=display_name, email=email)
    password_hash = passwords().hash(password)  # once: slow, and the same on every attempt

    def insert() -> User:
        user = User(**account.row(password_hash, is_admin=is_admin))
        db.session.add(user)
        db.session.flush()  # the id, for the verification link and the idempotency record
        if user.email is not None:
            account_mail.verify_email(user)
        security_log.record(security_log.REGISTERED, user.id)
        if before_commit is not None:
            before_commit(user)
        return user

    user = commit_account_change(insert)
    REGISTRATIONS.inc()
    return user


def commit_account_change(body: Callable[[], T]) -> T:
    """``transactions.committed``, turning a UNIQUE violation of the user table into the
    Conflict naming the field (another table's, such as an idempotency record's written in the
    same transaction, goes up as it is), and a vanished account into NoSuchUser."""
    try:
        return transactions.committed(body)
    except IntegrityError as exc:
        if not any(column in str(exc.orig) for column in USER_UNIQUE_COLUMNS):
            raise
        raise _taken_error(exc) from exc
    except transactions.RowVanished as exc:
        raise NoSuchUser() from exc


def insert_accounts(rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert many new accounts (each ``AccountValues.row``) in one statement and commit: the
    bulk import's way in. A taken username or address raises IntegrityError, for the caller to
    sort out row by row."""
    transactions.committed(lambda: db.session.execute(insert(User), list(rows)))


def update_user(
    user: User,
    changes: Mapping[str, Any],
    *,
    current_password: str | None = None,
    device: str | None = None,
    by_admin: User | None = None,
    keep_token: ApiToken | None = None,
    keep_session: int | None = None,
) -> User:
    """Apply ``changes`` (``display_name``, ``email``, ``password``, and ``is_admin``,
    ``is_support`` and ``is_active`` for an admin) in one commit: every field is valid and
    written, or nothing is.

    The owner changes a password only with ``current_password``, checked as a log-in is
    (``check_password``, for this client's ``device``): a wrong one counts as a failed log-in,
    and over the limit TooManyFailures is raised before it is checked. An admin
    (``by_admin``) does not need it. A new password ends the user's sessions but
    ``keep_session`` and revokes every token and key but ``keep_token`` (the ones the request
    came with), so a thief holding an old one is locked out. An admin cannot take away their
    own admin rights (that could leave nobody to manage users), nor deactivate their own
    account (``account_status``: ``is_active`` false ends every session, token and key of the
    account). Each change is in the security log; an admin's names the admin.
    """
    errors: dict[str, list[str]] = {}
    values = profile_fields(changes, errors)
    new_password = changes.get("password")
    if new_password is not None:
        if by_admin is None and not (
            current_password
            and check_password(user.username_key, user, current_password, device=device)
        ):
            errors["current_password"] = [
                _("Current password is missing or wrong; it is needed to set a new one.")
            ]
        if problems := password_problems(new_password):
            errors["password"] = problems
    for role in ("is_admin", "is_support"):
        if role not in changes:
            continue
        if by_admin is None:
            errors[role] = [_("Only an administrator can change this.")]
        elif role == "is_admin" and by_admin.id == user.id and not changes[role]:
            raise OwnAdminRights()
        values[role] = bool(changes[role])
    active = changes.get("is_active")
    if active is not None:
        if by_admin is None:
            errors["is_active"] = [_("Only an administrator can change this.")]
        elif not active:
            account_status.check_deactivation(user, by=by_admin)
    raise_if_any(errors)
    new_hash = None if new_password is None else passwords().hash(new_password)

    email_given, new_email = "email" in values, values.pop("email", None)

    def apply() -> User:
        # No flush before the commit: the token query would otherwise write the row early, and
        # a taken e-mail address would escape as IntegrityError (a 500), not EmailTaken (409).
        with db.session.no_autoflush:
            for field, value in values.items():
                setattr(user, field, value)
            if active is not None:
                account_status.set_active(user, bool(active), by=by_admin)
            if email_given:
                _change_email(user, new_email, by_admin=by_admin)
            if new_hash is not None:
                user.password_hash = new_hash
                account_status.end_access(user, keep_token=keep_token, keep_session=keep_session)
                account_mail.password_changed(user)
                security_log.record(security_log.PASSWORD_CHANGED, user.id, actor_id=actor)
            if by_admin is not None and values:
                security_log.record(
                    security_log.ACCOUNT_UPDATED, user.id, actor_id=actor, fields=sorted(values)
                )
        return user

    actor = by_admin.id if by_admin is not None else None

    return commit_account_change(apply)


def _change_email(user: User, new_email: str | None, *, by_admin: User | None) -> None:
    """A new address, as ``update_user`` applies it (inside its transaction):

    * the owner replacing an address: the new one is only ``pending_email`` until the link
      mailed to it is followed (``email_flows.confirm_email_change``); the old one is told,
      with a link that undoes it;
    * the owner adding a first address, or an administrator setting one: it is the account's
      at once, unverified, and a verification link goes to it;
    * removing the address: at once, and the old address is told (with the undo link);
    * the current address again: a pending change is cancelled.
    """
    old_email = user.email
    actor = by_admin.id if by_admin is not None else None
    if new_email == old_email:
        user.pending_email = None
        return
    if new_email is None:
        user.set_address(None, verified=False)
        security_log.record(security_log.EMAIL_CHANGED, user.id, actor_id=actor, removed=True)
        if old_email is not None:
            account_mail.email_removed(user, old_email)
        return
    if address_taken(new_email, user):
        raise EmailTaken()
    if old_email is None or by_admin:
        user.set_address(new_email, verified=False)
        security_log.record(security_log.EMAIL_CHANGED, user.id, actor_id=actor)
        account_mail.verify_email(user)
        return
    user.pending_email = new_email
    account_mail.change_email(user, new_email)


def address_taken(email: str, user: User) -> bool:
    """Whether another account uses ``email`` (the UNIQUE index only guards ``email`` itself,
    not an address still pending)."""
    return (
        db.session.scalar(select(User.id).where(User.email == email, User.id != user.id))
        is not None
    )


def make_admin(user: User) -> bool:
    """Make ``user`` an administrator (the command line's ``create-admin --promote``); False
    if they were one already. Raises NoSuchUser if the account was deleted meanwhile."""
    if user.is_admin:
        return False
    commit_account_change(lambda: setattr(user, "is_admin", True))
    return True


def set_role(user: User, role: str) -> bool:
    """Give ``user`` the role ``admin``, ``support`` or ``none`` (one of ``ROLES``), committed
    with an ``account-updated`` event naming no actor (the command line's ``users set-role``,
    run by whoever runs the server); False if they had it already."""
    wanted = {"is_admin": role == roles.ADMIN, "is_support": role == roles.SUPPORT}
    changed = sorted(field for field, value in wanted.items() if getattr(user, field) != value)
    if not changed:
        return False

    def apply() -> None:
        for field in changed:
            setattr(user, field, wanted[field])
        security_log.record(security_log.ACCOUNT_UPDATED, user.id, fields=changed)

    commit_account_change(apply)
    return True


def log_out_everywhere(user: User) -> None:
    """End every browser session, API token and key of ``user``, and commit."""

    def end_all() -> None:
        account_status.end_access(user)
        security_log.record(security_log.LOGGED_OUT_EVERYWHERE, user.id)

    transactions.committed(end_all)


def delete_user(user: User, *, by_admin: User) -> None:
    """Delete an account for good, at once, with everything of it (``account_deletion.purge``).
    An admin cannot delete their own account here. Deleted meanwhile (on another node) is done
    all the same."""
    if user.id == by_admin.id:
        raise OwnAccount()
    account_deletion.purge(user.id, by_admin=by_admin)


MAX_ID = 2**63 - 1  # BIGINT's range; SQLite cannot even look up a larger integer


def get_user(user_id: int) -> User | None:
    if not 1 <= user_id <= MAX_ID:
        return None
    return db.session.get(User, user_id)


@dataclass(frozen=True)
class UserFilter:
    """Which accounts a list shows (every field None: all of them).

    ``search``: the username or e-mail address contains it, ignoring case; ``role``: ``admin``,
    ``support`` or ``none``; ``status``: ``active``, ``deactivated`` or ``pending-deletion``;
    ``verified``: the address is verified (False: unverified or none); ``created_from`` and
    ``created_to``: created at or after, and before, these times (naive UTC)."""

    search: str | None = None
    role: str | None = None
    status: str | None = None
    verified: bool | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None

    def condition(self) -> ColumnElement[bool]:
        return and_(
            _search_condition(self.search),
            *_role_condition(self.role),
            *_status_condition(self.status),
            *([] if self.verified is None else [_verified_condition(self.verified)]),
            *([] if self.created_from is None else [User.created_at >= self.created_from]),
            *([] if self.created_to is None else [User.created_at < self.created_to]),
        )


ROLES = (roles.ADMIN, roles.SUPPORT, roles.NO_ROLE)
STATUSES = (account_status.ACTIVE, account_status.DEACTIVATED, account_status.PENDING_DELETION)


def _search_condition(search: str | None) -> ColumnElement[bool]:
    """The username is compared by its key (NFKC, case-folded: ``ZHANG`` finds ``zhang``, and
    ``Ａ`` finds ``a``), the address in lower case, as it is stored. ``%``, ``_`` and the
    escape character match themselves (LIKE with ``autoescape``). A substring cannot use an
    index: each search reads the whole table, which is fine for an administrator's look-up."""
    if not search:
        return true()
    if "\0" in search:
        return false()  # in no name or address; SQLite would end the pattern there
    return or_(
        User.username_key.contains(username_key(search), autoescape=True),
        User.email.contains(search.lower(), autoescape=True),
    )


def _role_condition(role: str | None) -> list[ColumnElement[bool]]:
    if role == roles.ADMIN:
        return [User.is_admin.is_(True)]
    if role == roles.SUPPORT:
        return [User.is_support.is_(True), User.is_admin.is_(False)]
    if role == roles.NO_ROLE:
        return [User.is_admin.is_(False), User.is_support.is_(False)]
    return []


def _status_condition(status: str | None) -> list[ColumnElement[bool]]:
    if status == account_status.ACTIVE:
        return [User.deactivated_at.is_(None), User.deletion_due_at.is_(None)]
    if status == account_status.DEACTIVATED:
        return [User.deactivated_at.is_not(None)]
    if status == account_status.PENDING_DELETION:
        return [User.deletion_due_at.is_not(None)]
    return []


def _verified_condition(verified: bool) -> ColumnElement[bool]:
    if verified:
        return and_(User.email.is_not(None), User.email_verified_at.is_not(None))
    return or_(User.email.is_(None), User.email_verified_at.is_(None))


def list_users(
    page: int, per_page: int, *, search: str | None = None, where: UserFilter | None = None
) -> tuple[list[User], int]:
    """One page of accounts in id order, and how many there are, of those ``where`` chooses
    (``search`` alone: as ``UserFilter(search=...)``)."""
    condition = (where or UserFilter(search=search)).condition()
    total = db.session.scalar(select(func.count()).select_from(User).where(condition)) or 0
    rows = db.session.scalars(
        select(User)
        .where(condition)
        .order_by(User.id)
        .offset((page - 1) * per_page)
        .limit(per_page)
    )
    return list(rows), total


def find_user(username: str) -> User | None:
    """The account with this username, compared case-insensitively."""
    return db.session.scalar(select(User).where(User.username_key == username_key(username)))


def authenticate(
    username: str, password: str, *, device: str | None = None, cancel_deletion: bool = False
) -> User | None:
    """The account if the password is right, else None: a log-in, through ``check_password``
    (the account's limit on failures for this client's ``device``; TooManyFailures when
    over it). An unknown username is checked and counted like a wrong password. With
    ``USERHUB_REQUIRE_VERIFIED_EMAIL``, a right password of an account whose address is not
    verified raises EmailNotVerified (an account without an address logs in as before); of an
    account deactivated or waiting to be deleted, AccountInactive (``account_status``), unless
    ``cancel_deletion``: then its owner keeps it (``account_deletion.cancel``) and logs in."""
    user = find_user(username) if username else None
    try:
        passed = check_password(username_key(username), user, password, device=device)
    except TooManyFailures:
        LOGIN_LIMITED.inc()
        raise
    if not passed:
        LOGIN_FAILED.inc()
        return None
    assert user is not None
    if cancel_deletion:
        account_deletion.cancel(user)
    account_status.check_can_log_in(user)
    if current_app.config["USERHUB_REQUIRE_VERIFIED_EMAIL"] and user.email_unverified:
        raise EmailNotVerified()
    return user


def check_password(
    account_key: str, user: User | None, password: str, *, device: str | None = None
) -> bool:
    """Whether ``password`` is ``user``'s: the one way a password is checked, at log-in and
    when it is asked for again, behind the per-account limit (``login_limits.attempt``).

    ``account_key`` is the account the client named (``user`` is None when there is none:
    the same hashing work and the same count, so nothing tells which usernames exist).
    ``device``: a device this account knows (its own bucket), or None. A hash made with
    outdated parameters is replaced."""
    passed = login_limits.attempt(account_key, device, lambda: _password_matches(user, password))
    if not passed and user is not None:
        locked = device is None and login_limits.newly_locked(account_key)
        transactions.committed(lambda: _failed(user, locked=locked))
    return passed


def _failed(user: User, *, locked: bool) -> None:
    """A wrong password for ``user``: in the log; and the owner told when it locked strangers
    out."""
    security_log.record(security_log.LOGIN_FAILED, user.id)
    if locked:
        security_log.record(security_log.ACCOUNT_LOCKED, user.id)
        account_mail.account_locked(user)


def _password_matches(user: User | None, password: str) -> bool:
    if user is None:
        passwords().burn_verification(password)
        return False
    if not passwords().verify(user.password_hash, password):
        return False
    if passwords().needs_rehash(user.password_hash):
        new_hash = passwords().hash(password)
        try:
            transactions.committed(lambda: setattr(user, "password_hash", new_hash))
        except transactions.RowVanished:
            return False  # the account was deleted while its owner logged in
    return True
