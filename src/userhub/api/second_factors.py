"""``/api/v1``: re-authenticating a token or session (``services/reauthentication.py``), and
an administrator's reset of a user's second factors. The factors themselves have their own
views (``totp.py``, ``passkeys.py``)."""

from __future__ import annotations

from flask import Response
from flask_babel import lazy_gettext as _l

from ..services import reauthentication, second_factors
from ..web import devices
from ..web.problems import Problem
from ..web.ratelimits import RATE_LIMITED, login_limit
from ..web.sessions import current_session
from .auth import ADMIN, BEARER_CHALLENGE, caller, caller_token, token_auth
from .base import api_blueprint, no_content
from .schemas import Reauthentication
from .users import user_or_404

bp = api_blueprint(
    "api_second_factors",
    tag={
        "name": "Second factors",
        "description": "Re-authenticate before a sensitive change; an administrator's reset.",
    },
)

NOT_RIGHT = _l("The password or the code is not right. Nothing changed; try again.")


@bp.post("/users/me/reauthenticate")
@login_limit
@bp.auth_required(token_auth)
@bp.input(Reauthentication, example={"password": "a-long-password"})
@bp.doc(
    summary="Re-authenticate",
    responses={
        204: "Done: for the next few minutes, this token or session may make sensitive changes",
        401: "The password or code is wrong (`bad-credentials`), or no token or session came",
        429: RATE_LIMITED,
    },
)
def reauthenticate(json_data: Reauthentication) -> Response:
    """Prove again who holds this token (or browser session) with the password, a code from
    the authenticator app, or a recovery code. Changing the password or e-mail address, adding
    or removing a second factor and making an API key need this within
    `USERHUB_REAUTHENTICATION_SECONDS` (5 min by default) of the log-in; otherwise they answer
    401 `reauthentication-required`. A personal API key must always do it first. A wrong
    password or code counts as a failed log-in of the account."""
    user = caller()
    api_token = caller_token()
    here = current_session()
    right = reauthentication.reauthenticate(
        user,
        password=json_data.password,
        code=json_data.otp,
        device=devices.device_for(user.username_key),
        token_id=api_token.id if api_token is not None else None,
        session_id=here.id if here is not None and api_token is None else None,
    )
    if not right:
        raise Problem(401, str(NOT_RIGHT), kind="bad-credentials", headers=BEARER_CHALLENGE)
    return no_content()


@bp.delete("/users/<int:user_id>/second-factors")
@bp.auth_required(token_auth, roles=[ADMIN])
@bp.doc(
    summary="Reset a user's second factors (admin)",
    responses={204: "Removed: the user logs in with the password alone", 404: "No user"},
)
def reset_factors(user_id: int) -> Response:
    """Remove every second factor of a user who lost them (authenticator app, recovery codes,
    passkeys), so they can log in with the password and enrol again. Their security log shows
    a `factors-reset` event naming the administrator (`actor_id`)."""
    second_factors.reset(user_or_404(user_id), by=caller())
    return no_content()
