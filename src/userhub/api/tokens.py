"""``/api/v1/tokens``: trade a username and password for a token; revoke it when done."""

from __future__ import annotations

from typing import Any

from flask import Response, current_app, request
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from pydantic import ValidationError

from ..models import User
from ..services import second_step, tokens, users
from ..web import devices
from ..web.json_bodies import optional_body, require_json_object
from ..web.problems import Problem, summarise_fields
from ..web.ratelimits import RATE_LIMITED, login_limit
from .auth import caller_token, token_auth
from .base import api_blueprint, no_content, shaped
from .idempotent import idempotent, replayable
from .schemas import SecondStepRequest, TokenOut, TokenRequest

bp = api_blueprint(
    "api_tokens", tag={"name": "Tokens", "description": "Log in and out with Bearer tokens."}
)

NO_CREDENTIALS = _l(
    'Send {"username": ..., "password": ...} as JSON, or use HTTP Basic authentication.'
)
MFA_REQUIRED = _l(
    "The password is right, and this account has a second factor. Send "
    '{"challenge": ..., "otp": ...} to this address with the challenge below and a code from '
    "your authenticator app (or a recovery code)."
)
WRONG_CODE = _l(
    "That code is not right. Check the time on the device with your authenticator app, or use "
    "a recovery code; send it with the same challenge."
)
CHALLENGE_GONE = _l(
    "This log-in's challenge is unknown, used, or expired (it lasts a few minutes, and too many "
    "wrong codes end it). Log in again with the username and password."
)
BASIC_CHALLENGE = {"WWW-Authenticate": 'Basic realm="userhub", charset="UTF-8"'}
CREATE_RESPONSES: Any = {
    201: {
        "description": "The token, shown only this once",
        "headers": {
            "Cache-Control": {
                "description": "`no-store`: no cache keeps the token.",
                "required": True,
                "schema": {"type": "string", "const": "no-store"},
            },
            "Set-Cookie": {
                "description": "The device cookie, `userhub_device` (HttpOnly, SameSite=Lax, "
                "Secure in production, a year): a client that sends it back keeps its own "
                "budget of failed log-ins for this account, so strangers guessing the password "
                "cannot lock it out. Keep it in a cookie jar (`curl -c`/`-b`, Postman, "
                "`requests.Session`).",
                "schema": {"type": "string"},
                "example": "userhub_device=eyJkIjoi...; Expires=...; Max-Age=31536000; "
                "HttpOnly; Path=/; SameSite=Lax",
            },
        },
    },
    401: "Wrong, unknown or missing credentials",
    403: "The password is right, but the account's e-mail address is not verified yet and "
    "this server requires it (`/problems/email-not-verified`, only with "
    "`USERHUB_REQUIRE_VERIFIED_EMAIL`): follow the mailed link, or ask for a new one with "
    "`POST /api/v1/email-verification/requests`; or an administrator deactivated the account "
    "(`/problems/account-deactivated`); or its owner asked for its deletion "
    '(`/problems/account-pending-deletion`): send the log-in again with `"cancel_deletion": '
    "true` to keep it",
    429: RATE_LIMITED,
}


def bad_credentials() -> Problem:
    """The one answer to a wrong password and an unknown username alike."""
    return Problem(401, str(users.BAD_CREDENTIALS), kind="bad-credentials", headers=BASIC_CHALLENGE)


def _credentials() -> TokenRequest:
    """From HTTP Basic if the client used it, else from the JSON body."""
    basic = request.authorization
    if basic is not None and basic.type == "basic":
        try:
            return TokenRequest(username=basic.username or "", password=basic.password or "")
        except ValidationError:
            raise bad_credentials() from None
    if not request.get_data(cache=True):
        raise Problem(401, str(NO_CREDENTIALS), headers=BASIC_CHALLENGE)
    require_json_object()
    try:
        return TokenRequest.model_validate(request.get_json())
    except ValidationError as exc:
        raise invalid_fields(exc) from None


def invalid_fields(exc: ValidationError) -> Problem:
    errors: dict[str, list[str]] = {}
    for error in exc.errors():
        field = ".".join(str(part) for part in error["loc"]) or "body"
        errors.setdefault(field, []).append(error["msg"])
    return Problem(422, summarise_fields(errors), errors=errors)


@bp.post("/tokens")
@optional_body  # JSON, or HTTP Basic with no body
@login_limit
@idempotent("POST /api/v1/tokens", credentials_header=True)
@bp.output(TokenOut, status_code=201, description="The token, shown only this once")
@bp.doc(
    summary="Get a token (log in)",
    security=[{"BasicAuth": []}, {}],
    responses=CREATE_RESPONSES,
)
def create_token() -> Response:
    """Log in with ``{"username", "password"}`` as JSON, or with HTTP Basic. The token expires
    after ``USERHUB_TOKEN_TTL_SECONDS`` (24 h by default). A wrong password and an unknown
    username get the same 401. With an `Idempotency-Key`, a retry of this request (which must
    still carry the right password) gets the same token again instead of a second one. An
    account waiting to be deleted is refused (403) unless the body says
    `"cancel_deletion": true`: then it is kept, and the log-in goes on."""
    if _is_second_step():
        return _second_step()
    credentials = _credentials()
    logged_in = devices.log_in(
        credentials.username, credentials.password, cancel_deletion=credentials.cancel_deletion
    )
    if logged_in is None:
        raise bad_credentials()
    if logged_in.second_step:
        key = second_step.begin(logged_in.user, known_device=logged_in.known_device)
        raise mfa_required(key, str(MFA_REQUIRED))
    return _issue(logged_in.user, known_device=logged_in.known_device, method="password")


def _issue(user: User, *, known_device: bool, method: str) -> Response:
    return replayable(
        lambda before_commit: tokens.issue(
            user, known_device=known_device, method=method, before_commit=before_commit
        ),
        lambda issued: shaped(TokenOut, issued, 201, {"Cache-Control": "no-store"}),
    )


def challenge_gone() -> Problem:
    """401 ``invalid-challenge``: the second call's challenge is unknown, spent or expired."""
    return Problem(401, str(CHALLENGE_GONE), kind="invalid-challenge", headers=BASIC_CHALLENGE)


def mfa_required(key: str, detail: str) -> Problem:
    """401 ``mfa-required``: the password was right; send ``challenge`` back with a code."""
    seconds = current_app.config["USERHUB_MFA_CHALLENGE_SECONDS"]
    return Problem(
        401,
        detail,
        kind="mfa-required",
        headers=BASIC_CHALLENGE,
        members={"challenge": key, "expires_in": seconds, "methods": ["totp", "recovery-code"]},
    )


def _is_second_step() -> bool:
    """A JSON body naming a ``challenge``: the second call of a log-in in two steps."""
    if request.authorization is not None or not request.is_json:
        return False
    body = request.get_json(silent=True)
    return isinstance(body, dict) and "challenge" in body


def _second_step() -> Response:
    """The code for the challenge: right, and the token is issued; wrong, and the same
    challenge may be tried again (a few times, within its lifetime)."""
    try:
        sent = SecondStepRequest.model_validate(request.get_json())
    except ValidationError as exc:
        raise invalid_fields(exc) from None
    step = second_step.pending(sent.challenge)
    if step is None:
        raise challenge_gone()
    method = second_step.check_code(
        step, sent.otp, device=devices.device_for(step.user.username_key)
    )
    if method is None:
        if second_step.pending(sent.challenge) is None:
            raise challenge_gone()
        raise mfa_required(sent.challenge, str(WRONG_CODE))
    if not second_step.complete(step):
        raise challenge_gone()
    devices.remember(step.user.username_key)
    return _issue(
        step.user, known_device=step.known_device, method=second_step.session_method(method)
    )


@bp.delete("/tokens")
@bp.auth_required(token_auth)
@bp.doc(
    summary="Revoke this token (log out)",
    responses={204: "Revoked", 400: "Sent with a browser session instead of a Bearer token"},
)
def revoke_token() -> Response:
    """Revoke the token sent in ``Authorization``; it stops working at once."""
    api_token = caller_token()
    if api_token is None:
        raise Problem(
            400,
            _("This call revokes the Bearer token it is sent with; it was sent without one."),
        )
    tokens.revoke(api_token)
    return no_content()
