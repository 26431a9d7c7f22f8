"""Pydantic schemas of ``/api/v1``: what a client sends and what it gets back.

The constraints here are the service's rules (``services/account_rules.py``) written as JSON Schema
(``web/rule_schemas.py``), so the OpenAPI document tells clients the rules up front; the service
still checks every write (and words its own errors: the patterns are documentation, not what
Pydantic enforces).
Bodies are strict: ``"username": 5`` is an error, not the string ``"5"``.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from flask_babel import gettext as _
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    RootModel,
    WithJsonSchema,
    field_validator,
)
from pydantic_core import PydanticCustomError

from ..models import (
    API_KEY_NAME_MAX_LENGTH,
    DISPLAY_NAME_MAX_LENGTH,
    EMAIL_MAX_LENGTH,
    PASSKEY_NAME_MAX_LENGTH,
    USERNAME_MAX_LENGTH,
    utc_iso,
)
from ..services import api_keys, security_log, users
from ..services.account_rules import PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH
from ..services.users import MAX_ID
from ..web.rule_schemas import (
    PASSWORD_RULES,
    display_name_pattern,
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
    cancel_deletion: bool = Field(
        default=False,
        description="`true`: if the password is right and the account is waiting to be "
        "deleted (its owner asked for it, `DELETE /api/v1/users/me`), keep it, then log in as "
        "usual. Without it such an account's log-in is refused (403 "
        "`/problems/account-pending-deletion`).",
    )


class SecondStepRequest(StrictBody):
    """The second call of a log-in with a second factor: the challenge of the ``mfa-required``
    answer and a code."""

    model_config = ConfigDict(title="Second step")

    challenge: str = Field(min_length=1, max_length=100, examples=["kq3J..."])
    otp: str = Field(
        min_length=1,
        max_length=40,
        description="6 digits from the authenticator app, or a recovery code",
        examples=["123456"],
    )


class Reauthentication(StrictBody):
    """Prove who holds this token or session: the password, or a code."""

    model_config = ConfigDict(
        title="Re-authentication",
        json_schema_extra={"oneOf": [{"required": ["password"]}, {"required": ["otp"]}]},
    )

    password: str | None = Field(default=None, min_length=1, max_length=PASSWORD_MAX_LENGTH)
    otp: str | None = Field(
        default=None,
        min_length=1,
        max_length=40,
        description="6 digits from the authenticator app, or a recovery code",
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
    is_support: bool = Field(
        default=False,
        description="The read-only staff role: sees other accounts and their activity, changes "
        "nothing.",
        json_schema_extra=_without_default,
    )
    is_active: bool = Field(
        default=True,
        description="false deactivates the account (no log-in by any route; every session, "
        "token and key ended at once; its data kept), true reactivates it. Not your own.",
        json_schema_extra=_without_default,
    )


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
    is_support: bool = Field(
        examples=[False],
        description="The read-only staff role: sees other accounts and their activity, changes "
        "nothing.",
    )
    is_active: bool = Field(
        examples=[True],
        description="Whether the account may log in: false while deactivated by an administrator "
        "or waiting to be deleted.",
    )
    deactivated_at: UtcDateTime | None = Field(
        examples=[None], description="When an administrator deactivated it; null: not deactivated."
    )
    deletion_due_at: UtcDateTime | None = Field(
        examples=[None],
        description="When it is deleted for good, as its owner asked; null: no deletion asked.",
    )
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


class DeletionScheduled(Accepted):
    deletion_due_at: UtcDateTime = Field(
        description="When the account is deleted for good, unless its owner keeps it before "
        '(the mailed link, or `POST /api/v1/tokens` with `"cancel_deletion": true`).'
    )


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


# What every page of a list answers (``base.paginated``); each list names its own items.
class Page(BaseModel):
    items: list[Any]
    total: int
    page: int
    per_page: int
    pages: int
    links: PageLinks


class UserPage(Page):
    items: list[UserOut]
    total: int = Field(description="Accounts in all pages (those that match the filters).")


Id = Annotated[int, Field(ge=1, le=MAX_ID)]
DATE = re.compile(r"\d{4}-\d\d-\d\d")
RFC3339 = re.compile(r"\d{4}-\d\d-\d\d[Tt]\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)")


def utc_from_rfc3339(value: object) -> datetime:
    """An RFC 3339 date-time (with its offset: ``Z`` or ``+08:00``) as naive UTC, as times are
    stored. Only that form: not a bare date, nor a number of seconds, which Pydantic would take.
    Times whose UTC falls outside years 1–9999 are the earliest or latest there are."""
    moment = None
    if isinstance(value, str) and RFC3339.fullmatch(value):
        with contextlib.suppress(ValueError):  # a 30 February, a 25th hour
            moment = datetime.fromisoformat(value.upper())
    if moment is None:
        message = _("Not an RFC 3339 date-time with its offset, e.g. 2026-12-01T08:00:00Z.")
        raise PydanticCustomError("rfc3339", message)
    try:
        return moment.astimezone(UTC).replace(tzinfo=None)
    except OverflowError:
        return datetime.min if moment.year == 1 else datetime.max


def event_type(value: str) -> str:
    if value not in security_log.TYPES:
        message = _("Not an event type: %(types)s.", types=", ".join(security_log.TYPES))
        raise PydanticCustomError("event_type", message)
    return value


UtcSince = Annotated[
    datetime,
    BeforeValidator(utc_from_rfc3339),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]
EventType = Annotated[
    str,
    AfterValidator(event_type),
    Field(json_schema_extra={"enum": list(security_log.TYPES)}),
]


def one_of(choices: tuple[str, ...]) -> Callable[[str], str]:
    """A check that a value is one of ``choices``, for a query parameter."""

    def check(value: str) -> str:
        if value not in choices:
            message = _("Not one of: %(choices)s.", choices=", ".join(choices))
            raise PydanticCustomError("one_of", message)
        return value

    return check


def day_or_moment(*, next_day: bool) -> Callable[[object], datetime]:
    """A bound of a time range as naive UTC: an RFC 3339 date-time with its offset, or a date
    (``2026-12-01``, a day in UTC): its start, or with ``next_day`` the start of the next day,
    so that an end bound given as a date includes that whole day."""

    def parse(value: object) -> datetime:
        try:
            if not (isinstance(value, str) and DATE.fullmatch(value)):
                return utc_from_rfc3339(value)
            day = datetime.fromisoformat(value)  # a 30 February: ValueError
        except ValueError:  # PydanticCustomError is one too
            message = _(
                "Not an RFC 3339 date or date-time, e.g. 2026-12-01 or 2026-12-01T08:00:00Z."
            )
            raise PydanticCustomError("rfc3339", message) from None
        if next_day:
            return day + timedelta(days=1) if day < datetime(9999, 12, 31) else datetime.max
        return day

    return parse


DATE_OR_TIME_SCHEMA = {
    "anyOf": [{"type": "string", "format": "date"}, {"type": "string", "format": "date-time"}]
}
CreatedFrom = Annotated[
    datetime, BeforeValidator(day_or_moment(next_day=False)), WithJsonSchema(DATE_OR_TIME_SCHEMA)
]
CreatedTo = Annotated[
    datetime, BeforeValidator(day_or_moment(next_day=True)), WithJsonSchema(DATE_OR_TIME_SCHEMA)
]
RoleName = Annotated[
    str, AfterValidator(one_of(users.ROLES)), Field(json_schema_extra={"enum": list(users.ROLES)})
]
StatusName = Annotated[
    str,
    AfterValidator(one_of(users.STATUSES)),
    Field(json_schema_extra={"enum": list(users.STATUSES)}),
]


class UserListQuery(PageQuery):
    q: str | None = Field(
        default=None,
        max_length=EMAIL_MAX_LENGTH,
        description="Only the accounts whose username or e-mail address contains this text, "
        "ignoring case (`%`, `_` and `\\` match themselves). Empty: every account.",
        examples=["zhang"],
    )
    role: RoleName | None = Field(
        default=None,
        description="Only administrators (`admin`), support accounts (`support`, not also "
        "administrators) or accounts with neither role (`none`).",
    )
    status: StatusName | None = Field(
        default=None,
        description="Only accounts that may log in (`active`), that an administrator "
        "deactivated (`deactivated`) or that wait to be deleted (`pending-deletion`).",
    )
    verified: bool | None = Field(
        default=None,
        description="`true`: only accounts with a verified e-mail address; `false`: only those "
        "with an unverified one or none.",
    )
    created_from: CreatedFrom | None = Field(
        default=None,
        description="Only accounts created at or after this time: an RFC 3339 date-time with its "
        "offset, or a date (its start, UTC).",
        examples=["2026-12-01"],
    )
    created_to: CreatedTo | None = Field(
        default=None,
        description="Only accounts created before this time: an RFC 3339 date-time with its "
        "offset, or a date (the whole day included, UTC).",
        examples=["2026-12-31"],
    )


class EventQuery(PageQuery):
    user_id: Id | None = Field(default=None, description="Only this account's events.")
    type: EventType | None = Field(default=None, description="Only events of this type.")
    since: UtcSince | None = Field(
        default=None,
        description="Only events at or after this time: an RFC 3339 date-time with its offset "
        "(`Z` for UTC).",
        examples=["2026-12-01T00:00:00Z"],
    )


class EventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int = Field(examples=[42])
    type: EventType = Field(examples=[security_log.LOGGED_IN])
    created_at: UtcDateTime
    ip: str | None = Field(examples=["203.0.113.7"], description="The client's address.")
    user_agent: str | None = Field(
        examples=["Firefox 133 on Windows"],
        description="The client's browser or program in a few words (never the whole header).",
    )
    session_id: int | None = Field(description="The browser session the request came with.")
    api_key_id: int | None = Field(description="The log-in token or API key the request came with.")
    actor_id: int | None = Field(
        description="The administrator who did it, when it was not the account's owner."
    )
    details: dict[str, Any] = Field(
        examples=[{"method": "password"}],
        description="What else the event tells: a log-in's method, a key's name and scopes, "
        "the fields an administrator changed. Never a password, token, key or link.",
    )

    @field_validator("details", mode="before")
    @classmethod
    def _parsed(cls, value: object) -> object:
        """Stored as JSON text (``security_log.record``)."""
        return json.loads(value) if isinstance(value, str) else value or {}


class EventPage(Page):
    items: list[EventOut] = Field(description="The newest first.")
    total: int = Field(description="Events in all pages (those that match the filters).")


class SessionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int = Field(examples=[7])
    created_at: UtcDateTime = Field(description="When the browser logged in.")
    last_seen_at: UtcDateTime = Field(
        description="When it was last used (written at most every "
        "`USERHUB_LAST_USED_INTERVAL_SECONDS`, 5 minutes by default)."
    )
    expires_at: UtcDateTime = Field(
        description="Its absolute end; it ends sooner when unused for "
        "`USERHUB_SESSION_IDLE_SECONDS` (7 days by default)."
    )
    ip: str | None = Field(examples=["203.0.113.7"], description="The address it logged in from.")
    user_agent: str | None = Field(
        examples=["Chrome 131 on Linux"], description="Its browser, in a few words."
    )
    auth_method: str = Field(examples=["password"], description="How it logged in.")
    current: bool = Field(
        description="Whether this call came with this session (the browser's own cookie)."
    )


class SessionList(RootModel[list[SessionOut]]):
    pass


ScopeName = Annotated[str, Field(json_schema_extra={"enum": list(api_keys.SCOPES)})]


def _document_key_name(schema: dict[str, Any]) -> None:
    schema.update(minLength=1, maxLength=API_KEY_NAME_MAX_LENGTH, pattern=display_name_pattern())


def _document_scopes(schema: dict[str, Any]) -> None:
    # ``admin`` alone could make no call: a key has read or write.
    schema.update(minItems=1, contains={"enum": [api_keys.READ, api_keys.WRITE]})


def _document_lifetime(schema: dict[str, Any]) -> None:
    schema.update(minimum=api_keys.MIN_LIFETIME_SECONDS, maximum=api_keys.MAX_LIFETIME_SECONDS)


def _whole_number(value: object) -> object:
    """``3600.0`` is the integer 3600 to JSON Schema (and so to clients), though not to a strict
    ``int``; any other value goes on as sent."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


Lifetime = Annotated[
    int, BeforeValidator(_whole_number), Field(json_schema_extra=_document_lifetime)
]


class NewApiKey(StrictBody):
    name: str = Field(
        description="What the key is for, e.g. the script or service that will use it: at most "
        "100 characters, not blank, no control or invisible (Unicode category C) characters; "
        "stored without surrounding white space. Not unique.",
        examples=["backup script"],
        json_schema_extra=_document_key_name,
    )
    scopes: list[ScopeName] = Field(
        description="`read`: GET calls only. `write`: every call. `admin`: the administrators' "
        "operations too (only an administrator may ask for it, and with `read` or `write`). "
        "An API key making a key may give it only scopes it has itself (`write` includes "
        "`read`).",
        examples=[["read"]],
        json_schema_extra=_document_scopes,
    )
    expires_in: Lifetime | None = Field(
        default=None,
        description="Seconds until it stops working: 60 to 31622400 (366 days); absent or null "
        "for 90 days.",
        examples=[2592000],
    )


class ApiKeyOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int = Field(examples=[3])
    name: str = Field(examples=["backup script"])
    prefix: str = Field(
        examples=["uh_7fJ3kq0m"],
        description="The key's first characters, to tell which key a leaked one is.",
    )
    scopes: list[ScopeName] = Field(examples=[["read"]])
    created_at: UtcDateTime
    expires_at: UtcDateTime
    last_used_at: UtcDateTime | None = Field(
        description="When it last made a call (written at most every "
        "`USERHUB_LAST_USED_INTERVAL_SECONDS`, 5 minutes by default); null: never."
    )

    @field_validator("scopes", mode="before")
    @classmethod
    def _listed(cls, value: object) -> object:
        """Stored space-separated (``ApiToken.scopes``)."""
        return value.split() if isinstance(value, str) else value


class ApiKeyList(RootModel[list[ApiKeyOut]]):
    pass


class NewApiKeyOut(ApiKeyOut):
    key: str = Field(
        description="The key itself: send it as `Authorization: Bearer <key>`. Shown only this "
        "once; userhub keeps only its SHA-256.",
        examples=["uh_7fJ3kq0m2Xo9c1nV8bQeZr4TgYwLd5HsA6uPiEjKfMo"],
    )


def _document_passkey_name(schema: dict[str, Any]) -> None:
    schema.update(maxLength=PASSKEY_NAME_MAX_LENGTH, pattern=display_name_pattern())


PASSKEY_NAME = (
    "What the passkey is on, e.g. the device or the password manager that keeps it: at most "
    "100 characters, not blank, no control or invisible (Unicode category C) characters; "
    "stored without surrounding white space. Not unique."
)


class PasskeyOptions(BaseModel):
    challenge: str = Field(
        description="Send it back with the browser's answer; it works once, for "
        "`USERHUB_MFA_CHALLENGE_SECONDS` (5 minutes by default).",
        examples=["Xq3kV0u9sQ2nJ8bL1cT5wR7yZ4mA6eH0dG2fK9pI3oU"],
    )
    options: dict[str, Any] = Field(
        description="PublicKeyCredentialCreationOptionsJSON (WebAuthn Level 3): give it to "
        "`PublicKeyCredential.parseCreationOptionsFromJSON` and `navigator.credentials.create`.",
    )


class NewPasskey(StrictBody):
    challenge: str = Field(
        description="The `challenge` of `POST /api/v1/users/me/passkeys/registration-options`.",
        examples=["Xq3kV0u9sQ2nJ8bL1cT5wR7yZ4mA6eH0dG2fK9pI3oU"],
        json_schema_extra={"maxLength": 100},
    )
    credential: dict[str, Any] = Field(
        description="The browser's answer, RegistrationResponseJSON (`credential.toJSON()`).",
        examples=[{"id": "…", "rawId": "…", "type": "public-key", "response": {}}],
    )
    name: str | None = Field(
        default=None,
        description=PASSKEY_NAME + " Absent or null: `Passkey` and today's date.",
        examples=["laptop"],
        json_schema_extra=_document_passkey_name,
    )


class PasskeyRename(StrictBody):
    name: str = Field(
        description=PASSKEY_NAME, examples=["work phone"], json_schema_extra=_document_passkey_name
    )


class PasskeyOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int = Field(examples=[4])
    name: str = Field(examples=["laptop"])
    created_at: UtcDateTime
    last_used_at: UtcDateTime | None = Field(description="When it last logged in; null: never.")
    backed_up: bool = Field(
        description="Whether its provider syncs it to other devices (a synced passkey).",
        examples=[True],
    )
    transports: list[str] = Field(
        description="How the browser reaches it (`internal`, `usb`, `nfc`, `ble`, `hybrid`...).",
        examples=[["internal", "hybrid"]],
    )

    @field_validator("transports", mode="before")
    @classmethod
    def _listed(cls, value: object) -> object:
        """Stored space-separated (``Passkey.transports``); none stored: an empty list."""
        if value is None:
            return []
        return value.split() if isinstance(value, str) else value


class PasskeyList(RootModel[list[PasskeyOut]]):
    pass


class Health(BaseModel):
    status: str = Field(examples=["ok"], description="`ok`, or `unavailable`.")
    database: str = Field(examples=["ok"], description="`ok`, or `unreachable`.")


class Liveness(BaseModel):
    status: str = Field(examples=["ok"], description="Always `ok`: the process answers.")


class Readiness(BaseModel):
    status: str = Field(examples=["ok"], description="`ok`, or `unavailable` (then 503).")
    database: str = Field(examples=["ok"], description="`ok`, or `unreachable`.")
    migrations: str = Field(
        examples=["current"],
        description="`current`; `ahead` (newer than this code: still ready); `behind` or "
        "`missing` (run `flask --app userhub db upgrade`: not ready); `unknown` (no database).",
    )
    rate_limit_storage: str = Field(
        examples=["ok"],
        description="`ok`, `unreachable` (Redis or the limits file: not ready), or `off` "
        "(limits disabled).",
    )
