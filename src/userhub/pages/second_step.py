"""The second step of a log-in in the browser (``services/second_step.py``): after the right
password of an account with a second factor, the log-in form (``/test_post``,
``/test_request``, ``/login``) sends the browser here instead of to ``/success``. The page asks
for a code from the authenticator app (or a recovery code), or a passkey; only then does the
session start. The challenge's key waits in the signed session cookie, so nothing is logged in
meanwhile; it expires after ``USERHUB_MFA_CHALLENGE_SECONDS``, or a few wrong codes."""

from __future__ import annotations

import json

from apiflask import APIBlueprint
from flask import flash, redirect, render_template, request, session, url_for
from flask_babel import lazy_gettext as _l
from werkzeug.wrappers import Response

from ..services import challenges, passkeys, second_factors, second_step
from ..services.errors import ServiceError, TooManyFailures
from ..web import devices, sessions
from ..web.errors import waiting
from ..web.json_bodies import json_route
from ..web.problems import Problem
from ..web.ratelimits import login_limit
from ..web.redirects import is_safe_redirect
from .forms import SecondStepForm

bp = APIBlueprint("second_step", __name__, enable_openapi=False)

CHALLENGE = "second_step"  # the session cookie's entry: the challenge's key
TARGET = "second_step_next"  # where the log-in form was to go afterwards
WRONG_CODE = _l(
    "That code is not right. Check that the time on your phone is correct, or use a recovery code."
)
STEP_EXPIRED = _l("The log-in took too long, or too many attempts failed. Log in again.")


def begin(logged_in: devices.LoggedIn, target: str | None) -> Response:
    """The password was right and a second factor must follow: to the second step."""
    key = second_step.begin(logged_in.user, known_device=logged_in.known_device)
    session[CHALLENGE] = key
    session[TARGET] = target if is_safe_redirect(target) else None
    return redirect(url_for("second_step.page"))


def pending() -> second_step.Pending | None:
    return second_step.pending(session.get(CHALLENGE))


def start_again() -> Response:
    """The second step is over without a log-in (expired, used, too many wrong codes)."""
    session.pop(CHALLENGE, None)
    session.pop(TARGET, None)
    flash(str(STEP_EXPIRED), "info")
    return redirect(url_for("tutorial.login"))


def finish(step: second_step.Pending, method: str) -> str | None:
    """The second factor was right: start the session; where to go now (None: the challenge
    was used meanwhile, by another tab)."""
    if not second_step.complete(step):
        return None
    target = session.get(TARGET)
    user = step.user
    devices.remember(user.username_key)
    sessions.log_in(user, method=second_step.session_method(method), known_device=step.known_device)
    if is_safe_redirect(target):
        return str(target)
    return url_for("tutorial.success", user_name=user.username)


def render(step: second_step.Pending, form: SecondStepForm, status: int = 200) -> tuple[str, int]:
    methods = second_factors.methods(step.user)
    return render_template("second_step.html", form=form, methods=methods), status


@bp.route("/login/second-step", methods=["GET", "POST"])
@login_limit
def page() -> Response | tuple[str, int]:
    """Ask for the second factor; a right code logs in."""
    step = pending()
    if step is None:
        return start_again()
    form = SecondStepForm()
    if not form.is_submitted():
        return render(step, form)
    if not form.validate():
        return render(step, form, 400)
    device = devices.device_for(step.user.username_key)
    try:
        method = second_step.check_code(step, form.code.data, device=device)
    except TooManyFailures as exc:
        form.code.errors = [exc.message]
        return waiting(render(step, form, 429), exc)
    if method is None:
        if pending() is None:
            return start_again()
        form.code.errors = [str(WRONG_CODE)]
        return render(step, form)
    target = finish(step, method)
    return redirect(target) if target else start_again()


@bp.post("/login/second-step/passkey/options")
@json_route()
@login_limit
def passkey_options() -> dict[str, object]:
    """A passkey ceremony for the second step: the options ``navigator.credentials.get`` takes,
    limited to this account's passkeys."""
    step = pending()
    if step is None:
        raise Problem(401, str(STEP_EXPIRED), kind="invalid-challenge")
    key, options = passkeys.authentication_options(step.user)
    return {"challenge": key, "options": json.loads(options)}


@bp.post("/login/second-step/passkey")
@json_route()
@login_limit
def passkey() -> dict[str, object]:
    """The passkey's answer: right, and the session starts (``{"redirect": ...}``)."""
    step = pending()
    if step is None:
        raise Problem(401, str(STEP_EXPIRED), kind="invalid-challenge")
    body = request.get_json()
    try:
        passkeys.authenticate(body.get("challenge"), body.get("credential"), user=step.user)
    except ServiceError:  # refused: one failure more of this step
        challenges.failed(step.challenge)
        raise
    target = finish(step, second_factors.PASSKEY)
    if target is None:
        raise Problem(401, str(STEP_EXPIRED), kind="invalid-challenge")
    return {"redirect": target}
