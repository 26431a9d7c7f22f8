"""``/account/reauthenticate``: prove it is still you before a change that needs it
(``web/recent_auth.py``): the password, a code from the authenticator app or a recovery code,
or a passkey; then back to the page that asked."""

from __future__ import annotations

import json

from apiflask import APIBlueprint
from flask import redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from werkzeug.wrappers import Response

from ..models import User
from ..services import passkeys, reauthentication, second_factors
from ..services.errors import TooManyFailures
from ..web import devices, sessions
from ..web.errors import waiting
from ..web.json_bodies import json_route
from ..web.ratelimits import login_limit
from ..web.redirects import is_safe_redirect
from .forms import ReauthenticateForm

bp = APIBlueprint("reauth", __name__, enable_openapi=False)


def _user() -> User:
    user: User = current_user._get_current_object()
    return user


def _session_id() -> int:
    current = sessions.current_session()
    assert current is not None  # a logged-in page request came with its session
    return current.id


def _target(candidate: str | None) -> str:
    return candidate if candidate and is_safe_redirect(candidate) else url_for("auth.account")


def _render(form: ReauthenticateForm, status: int = 200) -> tuple[str, int]:
    methods = second_factors.methods(_user())
    return render_template("reauthenticate.html", form=form, methods=methods), status


@bp.route("/account/reauthenticate", methods=["GET", "POST"])
@login_limit
@login_required
def reauthenticate() -> Response | tuple[str, int]:
    """Ask for the password or a code; right, and back to ``next``."""
    form = ReauthenticateForm(next=request.args.get("next", ""))
    if not form.is_submitted():
        return _render(form)
    if not form.validate():
        return _render(form, 400)
    if not (form.password.data or form.code.data):
        form.password.errors = [_("Enter your password, or a code from your authenticator app.")]
        return _render(form, 400)
    user = _user()
    try:
        right = reauthentication.reauthenticate(
            user,
            password=form.password.data,
            code=form.code.data,
            device=devices.device_for(user.username_key),
            session_id=_session_id(),
        )
    except TooManyFailures as exc:
        form.password.errors = [exc.message]
        return waiting(_render(form, 429), exc)
    if not right:
        field = form.password if form.password.data else form.code
        field.errors = [_("That is not right. Try again.")]
        return _render(form)
    return redirect(_target(form.next.data))


@bp.post("/account/reauthenticate/passkey/options")
@json_route()
@login_limit
@login_required
def passkey_options() -> dict[str, object]:
    """A passkey ceremony limited to this account's passkeys."""
    key, options = passkeys.authentication_options(_user())
    return {"challenge": key, "options": json.loads(options)}


@bp.post("/account/reauthenticate/passkey")
@json_route()
@login_limit
@login_required
def passkey() -> dict[str, object]:
    """The passkey's answer: right, and the session counts as freshly authenticated."""
    body = request.get_json()
    user = _user()
    passkeys.authenticate(body.get("challenge"), body.get("credential"), user=user)
    reauthentication.renew(user, second_factors.PASSKEY, session_id=_session_id())
    return {"redirect": _target(request.args.get("next"))}
