"""``/api/v1/users/me/passkeys``: the caller's passkeys (``services/passkeys.py``): list,
register (two calls, the browser's WebAuthn ceremony between them), rename, remove. Only
metadata ever comes out: never a public key, a credential id or a challenge's secret."""

from __future__ import annotations

import json
from typing import Any

from flask import Response
from flask_babel import gettext as _

from ..services import passkeys
from ..web.json_bodies import optional_body
from ..web.problems import Problem
from .auth import caller, recent_auth_required, token_auth
from .base import ID_CONVERTER, api_blueprint, no_content, shaped
from .schemas import NewPasskey, PasskeyList, PasskeyOptions, PasskeyOut, PasskeyRename

bp = api_blueprint(
    "api_passkeys",
    tag={
        "name": "Passkeys",
        "description": "WebAuthn credentials: log in without a password, or use one as a second "
        "factor. Registering one is two calls with the browser's ceremony between them; a "
        "passkey needs the site at a domain name over HTTPS (or at localhost).",
    },
)

RECENT = "No recent proof of identity (`/problems/reauthentication-required`): re-authenticate"
NO_SUCH = "I have no passkey with this id"


def _not_found(passkey_id: int) -> Problem:
    return Problem(404, _("You have no passkey with id %(id)d.", id=passkey_id))


@bp.get("/users/me/passkeys")
@bp.auth_required(token_auth)
@bp.output(PasskeyList, description="My passkeys, the newest first")
@bp.doc(summary="My passkeys")
def my_passkeys() -> PasskeyList:
    """My passkeys with when each was made and last used; never a key or a credential id."""
    return PasskeyList.model_validate(passkeys.listed(caller()))


@bp.post("/users/me/passkeys/registration-options")
@bp.auth_required(token_auth)
@optional_body  # nothing to send: the account is the caller's
@recent_auth_required
@bp.output(PasskeyOptions, description="The options for the browser, and the challenge")
@bp.doc(summary="Begin registering a passkey", responses={401: RECENT})
def registration_options() -> dict[str, Any]:
    """The options to give `navigator.credentials.create` (a discoverable credential, user
    verification preferred, my passkeys excluded) and the challenge to send back with the
    answer. Needs a recent log-in or re-authentication."""
    key, options = passkeys.registration_options(caller())
    return {"challenge": key, "options": json.loads(options)}


@bp.post("/users/me/passkeys")
@bp.auth_required(token_auth)
@recent_auth_required
@bp.input(NewPasskey, example={"challenge": "…", "credential": {}, "name": "laptop"})
@bp.output(PasskeyOut, status_code=201, description="The passkey, registered")
@bp.doc(
    summary="Register a passkey",
    responses={
        400: "The answer was not valid, or its challenge unknown, used or expired "
        "(`/problems/passkey-not-registered`)",
        401: RECENT,
        409: "This passkey is registered already (`/problems/passkey-taken`)",
        422: "Invalid fields: a blank or long name",
    },
)
def register(json_data: NewPasskey) -> Response:
    """Finish registering: the browser's answer (`credential.toJSON()`) to the options of
    `registration-options`, with their challenge. The security log records a `passkey-added`
    event. Needs a recent log-in or re-authentication."""
    added = passkeys.register(caller(), json_data.challenge, json_data.credential, json_data.name)
    return shaped(PasskeyOut, added, 201, {})


@bp.patch(f"/users/me/passkeys/<{ID_CONVERTER}:passkey_id>")
@bp.auth_required(token_auth)
@bp.input(PasskeyRename, example={"name": "work phone"})
@bp.output(PasskeyOut, description="The passkey, renamed")
@bp.doc(
    summary="Rename one of my passkeys",
    responses={404: NO_SUCH, 422: "Invalid fields: a blank or long name"},
)
def rename(passkey_id: int, json_data: PasskeyRename) -> PasskeyOut:
    renamed = passkeys.rename(caller(), passkey_id, json_data.name)
    if renamed is None:
        raise _not_found(passkey_id)
    return PasskeyOut.model_validate(renamed)


@bp.delete(f"/users/me/passkeys/<{ID_CONVERTER}:passkey_id>")
@bp.auth_required(token_auth)
@recent_auth_required
@bp.doc(
    summary="Remove one of my passkeys",
    responses={204: "Removed: it can no longer log in", 401: RECENT, 404: NO_SUCH},
)
def remove(passkey_id: int) -> Response:
    """The passkey can no longer log in (its authenticator may still list it: remove it there
    too). The security log records a `passkey-removed` event. Needs a recent log-in or
    re-authentication."""
    if not passkeys.remove(caller(), passkey_id):
        raise _not_found(passkey_id)
    return no_content()
