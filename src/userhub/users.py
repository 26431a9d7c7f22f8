"""The user service: the only code that writes users.

It grew out of the tutorial's ``Database`` class: where that class built SQL from a dict and
returned driver error text, this module validates, hashes, and lets the database's UNIQUE index
decide duplicates (no check-then-insert race). It knows nothing of HTTP.
"""

from __future__ import annotations

import unicodedata

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from .extensions import db
from .models import USERNAME_KEY_MAX_LENGTH, USERNAME_MAX_LENGTH, User
from .passwords import passwords

PASSWORD_MIN_LENGTH = 8
PASSWORD_MAX_LENGTH = 128


class UserError(Exception):
    """A request about users that cannot be carried out; ``errors`` maps field → messages."""

    def __init__(self, message: str, errors: dict[str, list[str]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.errors = errors or {}


class InvalidUserInput(UserError):
    """Some fields break the rules; nothing was written."""


class UsernameTaken(UserError):
    """Another account already has this username (compared case-insensitively)."""

    def __init__(self) -> None:
        message = "Username already exists."
        super().__init__(message, {"username": [message]})


def username_key(username: str) -> str:
    """The form in which two usernames are compared: NFKC, then case-folded."""
    return unicodedata.normalize("NFKC", username).casefold()


def username_problems(username: str) -> list[str]:
    """What is wrong with a new username, in words a user can act on (empty: nothing)."""
    if not username:
        return ["Username is required."]
    problems = []
    if len(username) > USERNAME_MAX_LENGTH:
        problems.append(f"Username must be at most {USERNAME_MAX_LENGTH} characters.")
    if username != username.strip():
        problems.append("Username must not start or end with spaces.")
    if any(unicodedata.category(ch)[0] == "C" for ch in username):
        problems.append("Username must not contain control or invisible characters.")
    if ":" in username:
        problems.append('Username must not contain ":".')
    if not problems and len(username_key(username)) > USERNAME_KEY_MAX_LENGTH:
        problems.append("Username is too long once normalised.")
    return problems


def password_problems(password: str) -> list[str]:
    """What is wrong with a new password (empty: nothing). Any characters are allowed."""
    if len(password) < PASSWORD_MIN_LENGTH:
        return [f"Password must be at least {PASSWORD_MIN_LENGTH} characters."]
    if len(password) > PASSWORD_MAX_LENGTH:
        return [f"Password must be at most {PASSWORD_MAX_LENGTH} characters."]
    return []


def check_new_account(username: str, password: str) -> None:
    """Raise InvalidUserInput listing every rule the new account breaks."""
    errors = {
        field: problems
        for field, problems in (
            ("username", username_problems(username)),
            ("password", password_problems(password)),
        )
        if problems
    }
    if errors:
        first = next(iter(errors.values()))[0]
        raise InvalidUserInput(first, errors)


def register_user(username: str, password: str, *, is_admin: bool = False) -> User:
    """Create an account and commit it; raises InvalidUserInput or UsernameTaken."""
    check_new_account(username, password)
    user = User(
        username=username,
        username_key=username_key(username),
        password_hash=passwords().hash(password),
        is_admin=is_admin,
    )
    db.session.add(user)
    try:
        db.session.commit()
    except IntegrityError as exc:
        db.session.rollback()
        raise UsernameTaken() from exc
    return user


def find_user(username: str) -> User | None:
    """The account with this username, compared case-insensitively."""
    return db.session.scalar(select(User).where(User.username_key == username_key(username)))


def authenticate(username: str, password: str) -> User | None:
    """The account if the password is right, else None.

    An unknown username costs the same hashing work as a wrong password, so response times do
    not tell which usernames exist. A hash made with outdated parameters is replaced.
    """
    user = find_user(username) if username else None
    if user is None:
        passwords().burn_verification(password)
        return None
    if not passwords().verify(user.password_hash, password):
        return None
    if passwords().needs_rehash(user.password_hash):
        user.password_hash = passwords().hash(password)
        db.session.commit()
    return user


def load_session_user(session_id: str) -> User | None:
    """The user a session cookie names, if that session is still valid (see ``User.get_id``)."""
    user_id, _, version = session_id.partition(":")
    if not (user_id.isdigit() and version.isdigit()):
        return None
    user = db.session.get(User, int(user_id))
    if user is None or user.session_version != int(version):
        return None
    return user
