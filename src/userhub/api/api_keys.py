"""``/api/v1/users/me/api-keys``: personal API keys, named and scoped, for scripts and services
(``services/api_keys.py``). The secret is shown once, when the key is made."""

from __future__ import annotations

from typing import Any

from flask import Response
from flask_babel import gettext as _

from ..services import api_keys
from ..web.problems import Problem
from .auth import caller, caller_token, recent_auth_required, token_auth
from .base import ID_CONVERTER, api_blueprint, no_content, shaped, with_fields
from .schemas import ApiKeyList, NewApiKey, NewApiKeyOut

bp = api_blueprint(
    "api_keys",
    tag={
        "name": "API keys",
        "description": "Named keys with scopes (read, write, admin) for scripts and services: "
        "make one, list them with when each was last used, revoke one.",
    },
)

CREATE_RESPONSES: Any = {
    201: {
        "description": "The key, its secret (`key`) shown only this once",
        "headers": {
            "Cache-Control": {
                "description": "`no-store`: no cache keeps the key.",
                "required": True,
                "schema": {"type": "string", "const": "no-store"},
            }
        },
    },
    403: "Sent with an API key that lacks a scope asked for, or that has only `read` "
    "(`/problems/insufficient-scope`)",
    422: "Invalid fields: a blank or long name, an unknown scope, `admin` for an account that is "
    "no administrator's, a lifetime out of range",
}


@bp.post("/users/me/api-keys")
@bp.auth_required(token_auth)
@recent_auth_required
@bp.input(NewApiKey, example={"name": "backup script", "scopes": ["read"]})
@bp.output(NewApiKeyOut, status_code=201, description="The key, shown only this once")
@bp.doc(summary="Make an API key", responses=CREATE_RESPONSES)
def create_key(json_data: NewApiKey) -> Response:
    """Make a key for a script or a service, with only the scopes it needs; `key` is the
    secret, shown in this answer only (userhub keeps its SHA-256). A call made with a log-in
    token or the browser's session may give any scope the account may have; a call made with
    an API key may give only scopes that key has itself (a `write` key cannot make an `admin`
    key: 403 `/problems/insufficient-scope`), and a `read` key makes none."""
    used = caller_token()
    new = api_keys.create(
        caller(),
        json_data.name,
        json_data.scopes,
        json_data.expires_in,
        held=used.scope_set if used is not None else None,
    )
    shown = with_fields(NewApiKeyOut, new.row, key=new.secret)
    return shaped(NewApiKeyOut, shown, 201, {"Cache-Control": "no-store"})


@bp.get("/users/me/api-keys")
@bp.auth_required(token_auth)
@bp.output(ApiKeyList, description="My live keys, the newest first, without their secrets")
@bp.doc(summary="My API keys")
def my_keys() -> ApiKeyList:
    """My keys that have not expired, the newest first, each with its first characters
    (`prefix`) and when it last made a call; never the secret. Log-in tokens are not listed."""
    return ApiKeyList.model_validate(api_keys.listed(caller()))


@bp.delete(f"/users/me/api-keys/<{ID_CONVERTER}:key_id>")
@bp.auth_required(token_auth)
@bp.doc(
    summary="Revoke one of my API keys",
    responses={204: "Revoked: it stops working at once", 404: "No key of mine has this id"},
)
def revoke_key(key_id: int) -> Response:
    """The key stops working at once, on every instance (its next call is a 401). The security
    log records an `api-key-revoked` event."""
    if not api_keys.revoke(caller(), key_id):
        raise Problem(404, _("You have no API key with id %(id)d.", id=key_id))
    return no_content()
