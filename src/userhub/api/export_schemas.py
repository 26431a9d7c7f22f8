"""The schema of an account's export (``GET /api/v1/users/me/export``,
``services/account_export.py``), in the style of ``schemas.py``, for the OpenAPI document; the
format is described field by field in ``docs/export.md``."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from ..services import account_export

Time = Annotated[str, Field(json_schema_extra={"format": "date-time"})]
MaybeTime = Annotated[str | None, Field(json_schema_extra={"format": "date-time"})]


class ExportRoles(BaseModel):
    is_admin: bool
    is_support: bool


class ExportStatus(BaseModel):
    state: Literal["active", "deactivated", "pending-deletion"]
    since: Time | None = Field(default=None, description="When it was deactivated.")
    due_at: Time | None = Field(default=None, description="When it will be deleted for good.")


class ExportProfile(BaseModel):
    id: int
    username: str
    display_name: str | None
    email: str | None
    email_verified_at: MaybeTime
    pending_email: str | None
    roles: ExportRoles
    status: ExportStatus
    created_at: Time
    updated_at: Time


class ExportLink(BaseModel):
    id: int
    purpose: str = Field(examples=["verify-email"])
    email: str | None = Field(description="The address it was sent to (null: the account's).")
    created_at: Time
    expires_at: Time
    used_at: MaybeTime


class ExportMail(BaseModel):
    id: int
    kind: str = Field(examples=["verify-email"])
    recipient: str
    status: Literal["pending", "sent", "failed"]
    created_at: Time
    sent_at: MaybeTime


class ExportEvent(BaseModel):
    id: int
    type: str = Field(examples=["logged-in"])
    created_at: Time
    ip: str | None
    user_agent: str | None
    session_id: int | None
    api_key_id: int | None
    actor_id: int | None
    details: dict[str, Any]


class ExportEmailHistory(BaseModel):
    links: list[ExportLink]
    mails: list[ExportMail]
    address_changes: list[ExportEvent]


class ExportSession(BaseModel):
    id: int
    created_at: Time
    last_seen_at: Time
    expires_at: Time
    ip: str | None
    user_agent: str | None
    auth_method: str
    authenticated_at: MaybeTime


class ExportApiKey(BaseModel):
    id: int
    name: str
    scopes: list[str]
    prefix: str | None
    created_at: Time
    expires_at: Time
    last_used_at: MaybeTime


class ExportToken(BaseModel):
    id: int
    created_at: Time
    expires_at: Time
    last_used_at: MaybeTime


class ExportAuthenticatorApp(BaseModel):
    created_at: Time
    confirmed_at: MaybeTime


class ExportRecoveryCodes(BaseModel):
    made: int
    left: int
    created_at: MaybeTime


class ExportPasskey(BaseModel):
    id: int
    name: str
    created_at: Time
    last_used_at: MaybeTime
    backed_up: bool
    transports: list[str]


class ExportSecondFactors(BaseModel):
    authenticator_app: ExportAuthenticatorApp | None
    recovery_codes: ExportRecoveryCodes | None
    passkeys: list[ExportPasskey]


class AccountExport(BaseModel):
    format: Literal["userhub-export/1"] = Field(description="The schema's name and version.")
    exported_at: Time
    profile: ExportProfile
    email_history: ExportEmailHistory
    sessions: list[ExportSession]
    api_keys: list[ExportApiKey]
    tokens: list[ExportToken]
    security_events: list[ExportEvent]
    second_factors: ExportSecondFactors


EXPORT_EXAMPLE: dict[str, Any] = {
    "format": account_export.FORMAT,
    "exported_at": "2026-12-07T09:14:00Z",
    "profile": {
        "id": 1,
        "username": "张三",
        "display_name": "Zhang San",
        "email": "zhangsan@example.com",
        "email_verified_at": "2026-11-02T08:01:00Z",
        "pending_email": None,
        "roles": {"is_admin": False, "is_support": False},
        "status": {"state": "active"},
        "created_at": "2026-11-02T08:00:00Z",
        "updated_at": "2026-11-02T08:01:00Z",
    },
    "email_history": {
        "links": [
            {
                "id": 1,
                "purpose": "verify-email",
                "email": "zhangsan@example.com",
                "created_at": "2026-11-02T08:00:00Z",
                "expires_at": "2026-11-03T08:00:00Z",
                "used_at": "2026-11-02T08:01:00Z",
            }
        ],
        "mails": [
            {
                "id": 1,
                "kind": "verify-email",
                "recipient": "zhangsan@example.com",
                "status": "sent",
                "created_at": "2026-11-02T08:00:00Z",
                "sent_at": "2026-11-02T08:00:05Z",
            }
        ],
        "address_changes": [],
    },
    "sessions": [
        {
            "id": 7,
            "created_at": "2026-12-07T09:00:00Z",
            "last_seen_at": "2026-12-07T09:10:00Z",
            "expires_at": "2027-01-06T09:00:00Z",
            "ip": "203.0.113.7",
            "user_agent": "Firefox 133 on Windows",
            "auth_method": "password",
            "authenticated_at": "2026-12-07T09:00:00Z",
        }
    ],
    "api_keys": [],
    "tokens": [],
    "security_events": [
        {
            "id": 42,
            "type": "logged-in",
            "created_at": "2026-12-07T09:00:00Z",
            "ip": "203.0.113.7",
            "user_agent": "Firefox 133 on Windows",
            "session_id": 7,
            "api_key_id": None,
            "actor_id": None,
            "details": {"method": "password"},
        }
    ],
    "second_factors": {"authenticator_app": None, "recovery_codes": None, "passkeys": []},
}
