"""The rules of an account's fields: what a username, a password, a display name and an
e-mail address may be, and the words that say what is wrong.

Registration, profile changes and the bulk import apply the same rules (``users.py``,
``bulk_import.py``); the OpenAPI document states them as JSON Schema (``web/rule_schemas.py``).
Uniqueness is not a rule here: the database's UNIQUE indexes decide it when a row is written.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from email_validator import EmailNotValidError, validate_email
from flask_babel import gettext as _

from ..models import (
    DISPLAY_NAME_MAX_LENGTH,
    EMAIL_MAX_LENGTH,
    USERNAME_KEY_MAX_LENGTH,
    USERNAME_MAX_LENGTH,
)
from .errors import InvalidUserInput

PASSWORD_MIN_LENGTH = 8
PASSWORD_MAX_LENGTH = 128


def username_key(username: str) -> str:
    """The form in which two usernames are compared: NFKC, then case-folded."""
    return unicodedata.normalize("NFKC", username).casefold()


def is_invisible(char: str) -> bool:
    """Unicode category C (control, format, surrogate, private use, unassigned): never
    allowed in a name."""
    return unicodedata.category(char)[0] == "C"


def username_problems(username: str) -> list[str]:
    """What is wrong with a new username, in words a user can act on (empty: nothing)."""
    if not username:
        return [_("Username is required.")]
    problems = []
    if len(username) > USERNAME_MAX_LENGTH:
        problems.append(_("Username must be at most %(max)d characters.", max=USERNAME_MAX_LENGTH))
    if username != username.strip():
        problems.append(_("Username must not start or end with spaces."))
    if any(map(is_invisible, username)):
        problems.append(_("Username must not contain control or invisible characters."))
    if ":" in username:
        problems.append(_('Username must not contain ":".'))
    if not problems and len(username_key(username)) > USERNAME_KEY_MAX_LENGTH:
        problems.append(_("Username is too long once normalised."))
    return problems


def password_problems(password: str) -> list[str]:
    """What is wrong with a new password (empty: nothing). Any characters are allowed."""
    if len(password) < PASSWORD_MIN_LENGTH:
        return [_("Password must be at least %(min)d characters.", min=PASSWORD_MIN_LENGTH)]
    if len(password) > PASSWORD_MAX_LENGTH:
        return [_("Password must be at most %(max)d characters.", max=PASSWORD_MAX_LENGTH)]
    return []


def display_name_problems(display_name: str) -> list[str]:
    """What is wrong with a display name (empty: nothing). ``None`` clears it and is fine."""
    if not display_name.strip():
        return [_("Display name must not be blank; send null to remove it.")]
    if len(display_name) > DISPLAY_NAME_MAX_LENGTH:
        return [_("Display name must be at most %(max)d characters.", max=DISPLAY_NAME_MAX_LENGTH)]
    if any(map(is_invisible, display_name)):
        return [_("Display name must not contain control or invisible characters.")]
    return []


def normalise_email(email: str) -> tuple[str | None, list[str]]:
    """The address as stored (normalised, lower case), or the problems with it.

    Syntax only: no DNS lookup, so validation is fast and works offline."""
    if len(email) > EMAIL_MAX_LENGTH:
        return None, [_("E-mail address must be at most %(max)d characters.", max=EMAIL_MAX_LENGTH)]
    try:
        # Lower case before the check, so its length limits apply to the address as stored
        # ("İ" lower-cases to two characters) and a stored address is valid itself.
        checked = validate_email(email.lower(), check_deliverability=False)
    except EmailNotValidError as exc:
        return None, [_("E-mail address is not valid: %(reason)s", reason=exc)]
    return checked.normalized.lower(), []


def raise_if_any(errors: dict[str, list[str]]) -> None:
    """InvalidUserInput naming every field in ``errors``, if there is any."""
    if errors:
        first = next(iter(errors.values()))[0]
        raise InvalidUserInput(first, errors)


def profile_fields(changes: Mapping[str, Any], errors: dict[str, list[str]]) -> dict[str, Any]:
    """Check ``display_name`` and ``email`` if present (``None`` clears); the values to store.
    The problems go into ``errors``."""
    values: dict[str, Any] = {}
    if "display_name" in changes:
        name = changes["display_name"]
        if name is not None and (problems := display_name_problems(name)):
            errors["display_name"] = problems
        values["display_name"] = name
    if "email" in changes:
        email = changes["email"]
        if email is not None:
            email, problems = normalise_email(email)
            if problems:
                errors["email"] = problems
        values["email"] = email
    return values


@dataclass(frozen=True)
class AccountValues:
    """A new account's values as they will be stored, once every rule is met. The password is
    not kept here: the caller hashes it."""

    username: str
    username_key: str
    display_name: str | None
    email: str | None

    def row(self, password_hash: str, *, is_admin: bool = False) -> dict[str, Any]:
        """The user table's columns for this account."""
        return {
            "username": self.username,
            "username_key": self.username_key,
            "password_hash": password_hash,
            "is_admin": is_admin,
            "display_name": self.display_name,
            "email": self.email,
        }


def check_new_account(
    username: str,
    password: str | None,
    *,
    display_name: str | None = None,
    email: str | None = None,
) -> AccountValues:
    """Apply the rules for a new account (registration, bulk import); the values to store.

    ``password`` None: the account comes with a hash already (an imported one, checked by
    ``passwords.hash_problem``), so there is no password to check. Raises InvalidUserInput
    naming every field that breaks a rule. Uniqueness is not checked here: the database's
    UNIQUE indexes decide it when the row is written."""
    errors = {
        field: problems
        for field, problems in (
            ("username", username_problems(username)),
            ("password", [] if password is None else password_problems(password)),
        )
        if problems
    }
    profile = profile_fields({"display_name": display_name, "email": email}, errors)
    raise_if_any(errors)
    return AccountValues(
        username=username,
        username_key=username_key(username),
        display_name=profile["display_name"],
        email=profile["email"],
    )
