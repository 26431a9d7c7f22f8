"""The account rules (``services/account_rules.py``) as JSON Schema, for the OpenAPI document.

Both the tutorial's JSON routes and ``/api/v1`` state the rules of a username, a password, a
display name and an e-mail address up front; the service still checks every write and words
its own errors, so these are documentation, not what Pydantic enforces.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import cache
from typing import Any

from email_validator import SPECIAL_USE_DOMAIN_NAMES

from ..models import USERNAME_MAX_LENGTH
from ..services.account_rules import PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH, is_invisible


def _is_visible(char: str) -> bool:
    """A character ``account_rules`` allows in names, judged by this Python's Unicode database."""
    return not is_invisible(char)


def _char_class(admits: Callable[[str], bool]) -> str:
    r"""A regex character class of every code point ``admits`` accepts.

    BMP code points are written ``\uXXXX`` and the others as themselves, which Python's ``re``,
    ECMA-262 (with the ``u`` flag) and Rust's ``regex`` all read the same way. Unicode property
    escapes (``\p{C}``) would be shorter, but each engine has its own Unicode version, and the
    class has to say exactly what this server accepts."""
    parts: list[str] = []
    start: int | None = None
    for code in range(sys.maxunicode + 2):
        admitted = code <= sys.maxunicode and admits(chr(code))
        if admitted and start is None:
            start = code
        elif not admitted and start is not None:
            end = code - 1
            parts.append(_escape(start) if start == end else f"{_escape(start)}-{_escape(end)}")
            start = None
    return "[" + "".join(parts) + "]"


def _escape(code: int) -> str:
    return f"\\u{code:04X}" if code <= 0xFFFF else chr(code)


@cache
def username_pattern() -> str:
    """``account_rules.username_problems`` as a regex: 1–20 characters of category other than C and
    not ``:``, the first and last not white space (``str.strip`` would remove them)."""
    inner = _char_class(lambda char: _is_visible(char) and char != ":")
    edge = _char_class(lambda char: _is_visible(char) and char != ":" and not char.isspace())
    return f"^{edge}(?:{inner}{{0,{USERNAME_MAX_LENGTH - 2}}}{edge})?$"


@cache
def display_name_pattern() -> str:
    """``account_rules.display_name_problems`` as a regex: characters of category other than C, at
    least one of them not white space (a blank name is refused)."""
    inner = _char_class(_is_visible)
    solid = _char_class(lambda char: _is_visible(char) and not char.isspace())
    return f"^{inner}*{solid}{inner}*$"


USERNAME_RULES = (
    "1–20 characters; no leading or trailing spaces, no control or invisible (Unicode category "
    'C) characters, no ":". Unique, compared case-insensitively (NFKC, case-folded); a name '
    "longer than 255 characters once so normalised is refused (only characters like ﷺ, which "
    "expand to many, can make one)."
)
PASSWORD_RULES = f"{PASSWORD_MIN_LENGTH}–{PASSWORD_MAX_LENGTH} characters, any characters."


def document_username(schema: dict[str, Any]) -> None:
    """``json_schema_extra`` stating the username rules, for a field the service checks: the
    pattern is made when the document is, not at import, and Pydantic does not enforce it."""
    schema.update(
        minLength=1,
        maxLength=USERNAME_MAX_LENGTH,
        pattern=username_pattern(),
        description=USERNAME_RULES,
    )


def document_password(schema: dict[str, Any]) -> None:
    """``json_schema_extra`` stating the password rules, for a field the service checks."""
    schema.update(
        minLength=PASSWORD_MIN_LENGTH, maxLength=PASSWORD_MAX_LENGTH, description=PASSWORD_RULES
    )


def document_display_name(schema: dict[str, Any]) -> None:
    schema["pattern"] = display_name_pattern()


def _case_insensitive(word: str) -> str:
    return "".join(f"[{char.upper()}{char}]" for char in word)


@cache
def email_pattern() -> str:
    """What ``email-validator`` (``account_rules.normalise_email``) refuses beyond the ``idn-email``
    format: a quoted local part, a bracketed IP address, a domain without a period, a top-level
    domain that does not end with a letter, and special-use domains (``.test``, ``.local`` ...).
    """
    special_use = "|".join(_case_insensitive(name) for name in SPECIAL_USE_DOMAIN_NAMES)
    top_level = r"[^.@]*(?:[A-Za-z]|[^\u0000-\u007F][^.@]*)"
    return rf'^(?!.*\.(?:{special_use})$)[^"@][^@]*@[^\[@]*\.{top_level}$'


def document_email(schema: dict[str, Any]) -> None:
    schema.update(format="idn-email", pattern=email_pattern())
