"""Passkeys in the browser: the account's list (add, rename, remove) and the passwordless
log-in of the log-in page.

A ceremony is two JSON calls that ``static/passkeys.js`` makes for a button: the options
(``{"challenge", "options"}``), then the browser's answer (``{"challenge", "credential"}``),
answered ``{"redirect": url}`` or a problem. Adding and removing a passkey need a recent log-in
(``web/recent_auth.py``); the JSON calls answer 401 ``reauthentication-required`` instead of
redirecting. The log-in calls count in the log-in's rate limit, like a password.
"""

from __future__ import annotations

import json
from typing import Any

from apiflask import APIBlueprint
from flask import flash, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from werkzeug.wrappers import Response

from ..models import User
from ..services import passkeys
from ..services.errors import UserError
from ..web import devices, sessions
from ..web.errors import service_status
from ..web.json_bodies import json_route
from ..web.problems import Problem
from ..web.ratelimits import login_limit
from ..web.recent_auth import recent_login_required, session_is_recent
from .forms import PasskeyNameForm

bp = APIBlueprint("passkeys", __name__, enable_openapi=False)


def _user() -> User:
    user: User = current_user._get_current_object()
    return user


def _logged_in_recently() -> User:
    """The JSON calls' ``login_required`` and ``recent_login_required``: a problem, not a
    redirect, which ``fetch`` would follow to an HTML page."""
    if not current_user.is_authenticated:
        raise Problem(
            401, _("Log in first, then add a passkey on your account page."), kind="unauthenticated"
        )
    if not session_is_recent():
        raise Problem(
            401,
            _("For your security, log in again (or confirm it is you) before adding a passkey."),
            kind="reauthentication-required",
        )
    return _user()


def _answer() -> tuple[str, Any]:
    """The challenge's key and the browser's credential from a JSON body, or 422."""
    body = request.get_json(silent=True) or {}
    challenge, credential = body.get("challenge"), body.get("credential")
    errors = {}
    if not isinstance(challenge, str) or not challenge:
        errors["challenge"] = [_("Send back the challenge the options came with.")]
    if not isinstance(credential, dict):
        errors["credential"] = [_("Send the browser's credential as a JSON object.")]
    if errors or not isinstance(challenge, str):
        raise Problem(422, next(iter(errors.values()))[0], errors=errors)
    return challenge, credential


def _page(renaming: tuple[int, PasskeyNameForm] | None = None, status: int = 200) -> Any:
    rows = passkeys.listed(_user())
    forms = {row.id: PasskeyNameForm(formdata=None, name=row.name) for row in rows}
    if renaming is not None:
        forms[renaming[0]] = renaming[1]
    return render_template("account_passkeys.html", rows=rows, forms=forms), status


@bp.get("/account/passkeys")
@login_required
def page() -> Any:
    """The account's passkeys, newest first, and the button that adds one."""
    return _page()


@bp.post("/account/passkeys/options")
@json_route()
def registration_options() -> Response:
    key, options = passkeys.registration_options(_logged_in_recently())
    return jsonify(challenge=key, options=json.loads(options))


@bp.post("/account/passkeys/new")
@json_route()
def register() -> Response:
    user = _logged_in_recently()
    challenge, credential = _answer()
    name = (request.get_json(silent=True) or {}).get("name")
    name = name.strip() if isinstance(name, str) else ""
    added = passkeys.register(user, challenge, credential, name or None)
    flash(_("Passkey added: %(name)s. You can log in with it now.", name=added.name), "success")
    return jsonify(redirect=url_for(".page"))


@bp.post("/account/passkeys/<int:passkey_id>/rename")
@login_required
def rename(passkey_id: int) -> Any:
    form = PasskeyNameForm()
    if form.validate():
        try:
            renamed = passkeys.rename(_user(), passkey_id, form.name.data)
        except UserError as exc:
            form.name.errors = list(exc.errors.get("name", [exc.message]))
            return _page((passkey_id, form), service_status(exc))
        if renamed is None:
            flash(_("That passkey had already been removed."), "info")
        else:
            flash(_("Passkey renamed: %(name)s.", name=renamed.name), "success")
        return redirect(url_for(".page"))
    return _page((passkey_id, form), 422)


@bp.post("/account/passkeys/<int:passkey_id>/remove")
@login_required
@recent_login_required
def remove(passkey_id: int) -> Response:
    if passkeys.remove(_user(), passkey_id):
        flash(_("The passkey was removed: it can no longer log in to your account."), "success")
    else:
        flash(_("That passkey had already been removed."), "info")
    return redirect(url_for(".page"))


@bp.post("/login/passkey/options")
@login_limit
@json_route()
def log_in_options() -> Response:
    """Begin a log-in with a passkey, before anyone says who they are."""
    key, options = passkeys.authentication_options(None)
    return jsonify(challenge=key, options=json.loads(options))


@bp.post("/login/passkey")
@login_limit
@json_route()
def log_in() -> Response:
    """A passkey's answer logs its account in (no password: the passkey verified its user)."""
    challenge, credential = _answer()
    user, _used = passkeys.authenticate(challenge, credential)
    known = devices.device_for(user.username_key) is not None
    devices.remember(user.username_key)
    sessions.log_in(user, method=passkeys.METHOD, known_device=known)
    return jsonify(redirect=url_for("tutorial.success", user_name=user.username))
