"""Pydantic schemas of ``/api/v1``: what a client sends and what it gets back.

The constraints here are the service's rules (``users.py``) written as JSON Schema, so the
OpenAPI document tells clients the rules up front; the service still checks every write.
Bodies are strict: ``"username": 5`` is an error, not the string ``"5"``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer

from ..models import DISPLAY_NAME_MAX_LENGTH, EMAIL_MAX_LENGTH, USERNAME_MAX_LENGTH
from ..users import PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH


def _utc_iso(value: datetime) -> str:
    """Stored times are naive UTC; clients get RFC 3339 with an explicit ``Z``."""
    return value.replace(tzinfo=UTC).isoformat().replace("+00:00", "Z")


UtcDateTime = Annotated[
    datetime,
    PlainSerializer(_utc_iso, return_type=str, when_used="json"),
    Field(json_schema_extra={"format": "date-time"}),
]

Username = Annotated[
    str,
    Field(
        min_length=1,
        max_length=USERNAME_MAX_LENGTH,
        description="1–20 characters; no leading or trailing spaces, no control characters, "
        'no ":". Unique, compared case-insensitively.',
        examples=["张三"],
    ),
]
Password = Annotated[
    str,
    Field(
        min_length=PASSWORD_MIN_LENGTH,
        max_length=PASSWORD_MAX_LENGTH,
        description=f"{PASSWORD_MIN_LENGTH}–{PASSWORD_MAX_LENGTH} characters, any characters.",
        examples=["a-long-password"],
    ),
]
DisplayName = Annotated[
    str | None,
    Field(
        max_length=DISPLAY_NAME_MAX_LENGTH,
        description="Shown instead of the username; null removes it.",
        examples=["Zhang San"],
    ),
]
Email = Annotated[
    str | None,
    Field(
        max_length=EMAIL_MAX_LENGTH,
        description="Unique when set; stored in lower case; null removes it.",
        examples=["zhangsan@example.com"],
        json_schema_extra={"format": "email"},
    ),
]


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

    display_name: DisplayName = None
    email: Email = None
    password: Password | None = None
    current_password: str | None = Field(
        default=None,
        max_length=PASSWORD_MAX_LENGTH,
        description="Required with `password`.",
    )


class AdminUpdate(StrictBody):
    """``PATCH /users/{id}``: an administrator may also reset the password and the admin flag."""

    display_name: DisplayName = None
    email: Email = None
    password: Password | None = None
    is_admin: bool | None = None


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
