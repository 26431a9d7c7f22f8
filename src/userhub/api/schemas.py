"""Pydantic schemas of ``/api/v1``: what a client sends and what it gets back.

The constraints here are the service's rules (``users.py``) written as JSON Schema, so the
OpenAPI document tells clients the rules up front; the service still checks every write (and
words its own errors: the patterns below are documentation, not what Pydantic enforces).
Bodies are strict: ``"username": 5`` is an error, not the string ``"5"``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import datetime
from functools import cache
from typing import Annotated, Any

from email_validator import SPECIAL_USE_DOMAIN_NAMES
from pydantic import BaseModel, ConfigDict, Field, PlainSerializer

from ..models import DISPLAY_NAME_MAX_LENGTH, EMAIL_MAX_LENGTH, USERNAME_MAX_LENGTH, utc_iso
from ..services.users import PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH, is_invisible

UtcDateTime = Annotated[
    datetime,
    PlainSerializer(utc_iso, return_type=str, when_used="json"),
    Field(json_schema_extra={"format": "date-time"}),
]


def _is_visible(char: str) -> bool:
    """A character ``users.py`` allows in names, judged by this Python's Unicode database."""
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
    """``users.username_problems`` as a regex: 1–20 characters of category other than C and
    not ``:``, the first and last not white space (``str.strip`` would remove them)."""
    inner = _char_class(lambda char: _is_visible(char) and char != ":")
    edge = _char_class(lambda char: _is_visible(char) and char != ":" and not char.isspace())
    return f"^{edge}(?:{inner}{{0,{USERNAME_MAX_LENGTH - 2}}}{edge})?$"


@cache
def display_name_pattern() -> str:
    """``users.display_name_problems`` as a regex: characters of category other than C, at
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


def _document_display_name(schema: dict[str, Any]) -> None:
    schema["pattern"] = display_name_pattern()


Username = Annotated[
    str,
    Field(
        min_length=1,
        max_length=USERNAME_MAX_LENGTH,
        examples=["张三"],
        json_schema_extra=document_username,
    ),
]
Password = Annotated[
    str,
    Field(
        min_length=PASSWORD_MIN_LENGTH,
        max_length=PASSWORD_MAX_LENGTH,
        description=PASSWORD_RULES,
        examples=["a-long-password"],
    ),
]
DisplayName = Annotated[
    Annotated[
        str,
        Field(
            max_length=DISPLAY_NAME_MAX_LENGTH,
            json_schema_extra=_document_display_name,
        ),
    ]
    | None,
    Field(
        description="Shown instead of the username; null removes it. At most 50 characters, "
        "not blank, no control or invisible (Unicode category C) characters.",
        examples=["Zhang San"],
    ),
]


def _case_insensitive(word: str) -> str:
    return "".join(f"[{char.upper()}{char}]" for char in word)


@cache
def email_pattern() -> str:
    """What ``email-validator`` (``users.normalise_email``) refuses beyond the ``idn-email``
    format: a quoted local part, a bracketed IP address, a domain without a period, a top-level
    domain that does not end with a letter, and special-use domains (``.test``, ``.local`` ...).
    """
    special_use = "|".join(_case_insensitive(name) for name in SPECIAL_USE_DOMAIN_NAMES)
    top_level = r"[^.@]*(?:[A-Za-z]|[^\u0000-\u007F][^.@]*)"
    return rf'^(?!.*\.(?:{special_use})$)[^"@][^@]*@[^\[@]*\.{top_level}$'


def _document_email(schema: dict[str, Any]) -> None:
    schema.update(format="idn-email", pattern=email_pattern())


Email = Annotated[
    Annotated[str, Field(max_length=EMAIL_MAX_LENGTH, json_schema_extra=_document_email)] | None,
    Field(
        description="Unique when set; stored in lower case; null removes it. Checked as "
        "email-validator does without a DNS lookup: internationalized addresses are fine; a "
        "quoted local part, an IP address, a domain without a period and special-use domains "
        "(`.test`, `.local`, `.localhost`, `.invalid`, `.onion`, `.arpa`) are refused.",
        examples=["zhangsan@example.com"],
    ),
]


def _without_default(schema: dict[str, Any]) -> None:
    """For a field whose absence means "keep", which no default value can state."""
    schema.pop("default", None)


class StrictBody(BaseModel):
    """A JSON body: exact types, and unknown fields are an error (a typo is not ignored)."""

    model_config = ConfigDict(strict=True, extra="forbid")

    def given(self) -> dict[str, Any]:
        """Only the fields the client sent, so ``null`` (clear) and absent (keep) differ."""
        return {name: getattr(self, name) for name in self.model_fields_set}


class NewUser(StrictBody):
    username: Username
    password: Password
    display_name: DisplayName = None
    email: Email = None


class Credentials(StrictBody):
    username: str = Field(min_length=1, max_length=USERNAME_MAX_LENGTH, examples=["张三"])
    password: str = Field(
        min_length=1, max_length=PASSWORD_MAX_LENGTH, examples=["a-long-password"]
    )


class ProfileUpdate(StrictBody):
    """``PATCH /users/me``: a new password needs the current one."""

    model_config = ConfigDict(
        json_schema_extra={
            # A new password (a string; null keeps the old one) needs `current_password`.
            "if": {"required": ["password"], "properties": {"password": {"type": "string"}}},
            "then": {
                "required": ["current_password"],
                "properties": {"current_password": {"type": "string"}},
            },
        }
    )

    display_name: DisplayName = None
    email: Email = None
    password: Password | None = None
    current_password: str | None = Field(
        default=None,
        max_length=PASSWORD_MAX_LENGTH,
        description="Required with a new `password`: the account's password now.",
    )


class AdminUpdate(StrictBody):
    """``PATCH /users/{id}``: an administrator may also reset the password and the admin flag."""

    display_name: DisplayName = None
    email: Email = None
    password: Password | None = None
    # Absent keeps the flag; null is refused (it would otherwise read as false).
    is_admin: bool = Field(default=False, json_schema_extra=_without_default)


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int = Field(examples=[1])
    username: str = Field(examples=["张三"])
    display_name: str | None = Field(examples=["Zhang San"])
    email: str | None = Field(examples=["zhangsan@example.com"])
    is_admin: bool = Field(examples=[False])
    created_at: UtcDateTime
    updated_at: UtcDateTime


class TokenOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    token: str = Field(
        description="Send as `Authorization: Bearer <token>`. Shown only once.",
        examples=["uh_7fJ3kq0m2Xo9c1nV8bQeZr4TgYwLd5HsA6uPiEjKfMo"],
    )
    expires_at: UtcDateTime


class PageQuery(BaseModel):
    page: int = Field(default=1, ge=1, le=1_000_000, description="1 is the first page.")
    per_page: int = Field(default=20, ge=1, le=100, description="At most 100.")


class PageLinks(BaseModel):
    self: str
    first: str
    last: str
    prev: str | None
    next: str | None


class UserPage(BaseModel):
    items: list[UserOut]
    total: int = Field(description="Accounts in all pages.")
    page: int
    per_page: int
    pages: int
    links: PageLinks


class Health(BaseModel):
    status: str = Field(examples=["ok"], description="`ok`, or `unavailable`.")
    database: str = Field(examples=["ok"], description="`ok`, or `unreachable`.")
