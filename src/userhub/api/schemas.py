"""Pydantic schemas of ``/api/v1``: what a client sends and what it gets back.

The constraints here are the service's rules (``services/account_rules.py``) written as JSON Schema
(``web/rule_schemas.py``), so the OpenAPI document tells clients the rules up front; the service
still checks every write (and words its own errors: the patterns are documentation, not what
Pydantic enforces).
Bodies are strict: ``"username": 5`` is an error, not the string ``"5"``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer

from ..models import DISPLAY_NAME_MAX_LENGTH, EMAIL_MAX_LENGTH, USERNAME_MAX_LENGTH, utc_iso
from ..services.account_rules import PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH
from ..web.rule_schemas import (
    PASSWORD_RULES,
    document_display_name,
    document_email,
    document_username,
)

UtcDateTime = Annotated[
    datetime,
    PlainSerializer(utc_iso, return_type=str, when_used="json"),
    Field(json_schema_extra={"format": "date-time"}),
]


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
            json_schema_extra=document_display_name,
        ),
    ]
    | None,
    Field(
        description="Shown instead of the username; null removes it. At most 50 characters, "
        "not blank, no control or invisible (Unicode category C) characters.",
        examples=["Zhang San"],
    ),
]


Email = Annotated[
    Annotated[str, Field(max_length=EMAIL_MAX_LENGTH, json_schema_extra=document_email)] | None,
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


# ``POST /tokens``: a username and password (or HTTP Basic, with no body). A comment, not a
# docstring: Pydantic would put a docstring into the OpenAPI document.
class TokenRequest(StrictBody):
    model_config = ConfigDict(title="Credentials")  # its name in the OpenAPI document

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
    email_verified: bool = Field(
        examples=[True],
        description="Whether the owner followed the link mailed to `email` (false without one).",
    )
    pending_email: str | None = Field(
        examples=[None],
        description="A new address asked for and not confirmed yet: `email` stays in use until "
        "the link mailed to it is followed.",
    )
    is_admin: bool = Field(examples=[False])
    created_at: UtcDateTime
    updated_at: UtcDateTime


MailedToken = Annotated[
    str,
    Field(
        min_length=1,
        max_length=200,
        description="The `token` parameter of the link in the mail.",
        examples=["qR4m0n9Xk2vLs8YtG1cHbWz7eJpA5dNf3uIoKxE6rTy"],
    ),
]


class LinkToken(StrictBody):
    token: MailedToken


class AccountNamed(StrictBody):
    model_config = ConfigDict(
        # Exactly one of them, as a string (a null one is as good as absent).
        json_schema_extra={
            "oneOf": [
                {"required": [name], "properties": {name: {"type": "string"}}}
                for name in ("email", "username")
            ]
        }
    )

    email: str | None = Field(
        default=None, max_length=EMAIL_MAX_LENGTH, examples=["zhangsan@example.com"]
    )
    username: str | None = Field(default=None, max_length=USERNAME_MAX_LENGTH, examples=["张三"])


class PasswordResetCompletion(StrictBody):
    token: MailedToken
    password: Password


class Accepted(BaseModel):
    detail: str = Field(description="What happens next, in the reader's language.")


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


class UserListQuery(PageQuery):
    q: str | None = Field(
        default=None,
        max_length=EMAIL_MAX_LENGTH,
        description="Only the accounts whose username or e-mail address contains this text, "
        "ignoring case (`%`, `_` and `\\` match themselves). Empty: every account.",
        examples=["zhang"],
    )


class PageLinks(BaseModel):
    self: str
    first: str
    last: str
    prev: str | None
    next: str | None


class UserPage(BaseModel):
    items: list[UserOut]
    total: int = Field(description="Accounts in all pages (those that match `q`, if given).")
    page: int
    per_page: int
    pages: int
    links: PageLinks


class Health(BaseModel):
    status: str = Field(examples=["ok"], description="`ok`, or `unavailable`.")
    database: str = Field(examples=["ok"], description="`ok`, or `unreachable`.")
