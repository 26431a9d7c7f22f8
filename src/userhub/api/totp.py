"""``/api/v1/users/me/totp`` and ``/api/v1/users/me/recovery-codes``: an authenticator app as
the account's second factor, and the single-use codes that stand in for it
(``services/totp.py``, ``services/recovery_codes.py``). Secrets and codes are shown once, in
answers no cache keeps; setting one up, removing it and making new codes need a recent proof
of identity (``recent_auth_required``)."""

from __future__ import annotations

from typing import Any

from flask import Response
from flask_babel import gettext as _

from ..services import recovery_codes, totp
from ..web.json_bodies import optional_body
from ..web.problems import Problem
from .auth import caller, recent_auth_required, token_auth
from .base import api_blueprint, no_content, shaped
from .totp_schemas import RecoveryCodesLeft, RecoveryCodesOut, TotpCode, TotpEnrolmentOut

bp = api_blueprint(
    "api_totp",
    tag={
        "name": "Two-factor authentication",
        "description": "An authenticator app (TOTP) as a second factor: set it up with a QR "
        "code, confirm it with its first code, remove it; its single-use recovery codes.",
    },
)

NO_STORE = {"Cache-Control": "no-store"}
NO_STORE_HEADER: Any = {
    "Cache-Control": {
        "description": "`no-store`: no cache keeps the secret or the codes.",
        "required": True,
        "schema": {"type": "string", "const": "no-store"},
    }
}
REAUTH = (
    "No valid token or session, or the proof of identity is too old for this change "
    "(`/problems/reauthentication-required`: re-authenticate, then repeat the call)"
)
BEGIN_RESPONSES: Any = {
    201: {"description": "The new app's secret and QR code", "headers": NO_STORE_HEADER},
    401: REAUTH,
    409: "An authenticator app is already set up (`/problems/totp-already-enabled`)",
}
CONFIRM_RESPONSES: Any = {
    200: {"description": "Confirmed; the recovery codes", "headers": NO_STORE_HEADER},
    409: "Nothing is being set up (`/problems/no-totp-enrolment`), or it was confirmed "
    "already (`/problems/totp-already-enabled`)",
    422: "The code is wrong, or the phone's clock is off (`/problems/wrong-code`), or the "
    "body is invalid",
}
NEW_CODES_RESPONSES: Any = {
    201: {"description": "Ten new codes; the old ones are void", "headers": NO_STORE_HEADER},
    401: REAUTH,
    409: "The account has no authenticator app (`/problems/totp-not-enabled`)",
}


@bp.post("/users/me/totp")
@optional_body
@bp.auth_required(token_auth)
@recent_auth_required
@bp.output(TotpEnrolmentOut, status_code=201, description="The new app's secret, shown once")
@bp.doc(summary="Set up an authenticator app", responses=BEGIN_RESPONSES)
def begin_totp() -> Response:
    """Start setting up an authenticator app: show `qr_svg` (or `secret`, to type) to the user,
    whose app then shows a code every 30 seconds; send the first one to
    `POST /api/v1/users/me/totp/confirm`. Until then the app does not count, and calling this
    again starts over with a new secret. No body."""
    enrolment = totp.begin(caller())
    shown = {
        "secret": enrolment.secret,
        "otpauth_uri": enrolment.otpauth_uri,
        "qr_svg": totp.qr_svg(enrolment.otpauth_uri),
    }
    return shaped(TotpEnrolmentOut, shown, 201, NO_STORE)


@bp.post("/users/me/totp/confirm")
@bp.auth_required(token_auth)
@bp.input(TotpCode, example={"code": "492039"})
@bp.output(RecoveryCodesOut, description="The recovery codes, shown once")
@bp.doc(summary="Confirm the authenticator app", responses=CONFIRM_RESPONSES)
def confirm_totp(json_data: TotpCode) -> Response:
    """The first code the app shows: from now on a log-in asks for a code after the password.
    The answer holds ten recovery codes, for when the phone is not at hand: the user keeps
    them somewhere safe (each works once; they are not shown again)."""
    codes = totp.confirm(caller(), json_data.code)
    return shaped(RecoveryCodesOut, {"recovery_codes": codes}, 200, NO_STORE)


@bp.delete("/users/me/totp")
@bp.auth_required(token_auth)
@recent_auth_required
@bp.doc(
    summary="Remove the authenticator app",
    responses={
        204: "Removed, with its recovery codes",
        401: REAUTH,
        404: "The account has no authenticator app",
    },
)
def remove_totp() -> Response:
    """A log-in no longer asks for its codes, and the recovery codes stop working. The
    security log records a `totp-disabled` event."""
    if not totp.remove(caller()):
        raise Problem(404, _("This account has no authenticator app to remove."))
    return no_content()


@bp.get("/users/me/recovery-codes")
@bp.auth_required(token_auth)
@bp.output(RecoveryCodesLeft, description="How many recovery codes are left")
@bp.doc(summary="My recovery codes left")
def recovery_codes_left() -> RecoveryCodesLeft:
    """How many of the account's recovery codes are unused; never the codes themselves."""
    return RecoveryCodesLeft(remaining=recovery_codes.remaining(caller()))


@bp.post("/users/me/recovery-codes")
@optional_body
@bp.auth_required(token_auth)
@recent_auth_required
@bp.output(RecoveryCodesOut, status_code=201, description="New recovery codes, shown once")
@bp.doc(summary="Make new recovery codes", responses=NEW_CODES_RESPONSES)
def new_recovery_codes() -> Response:
    """Ten new codes in place of the old ones, which stop working at once (used up, or
    perhaps seen by someone else). No body."""
    codes = recovery_codes.regenerate(caller())
    return shaped(RecoveryCodesOut, {"recovery_codes": codes}, 201, NO_STORE)
