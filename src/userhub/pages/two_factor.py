"""The account's two-factor page: an authenticator app (set up with a QR code, confirmed by
its first code, removed) and its recovery codes (how many are left, new ones).

Setting one up is two steps: a button (POST) stores a new secret, not yet counted
(``totp.begin``); the set-up page shows it as a QR code and as text, and takes the first code.
Secrets and recovery codes appear only on answers no cache keeps (``no-store``), never in a
flash message (the session cookie is signed, not encrypted). What could lock the owner out or
let a thief stay (setting one up, removing it, new codes) needs a recent log-in
(``recent_login_required``); the first code needs none: the set-up it confirms did.
"""

from __future__ import annotations

import base64

from apiflask import APIBlueprint
from flask import flash, make_response, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required
from werkzeug.wrappers import Response
from wtforms import StringField
from wtforms.validators import DataRequired, Length

from ..models import User
from ..services import recovery_codes, totp
from ..services.errors import SecondFactorError
from ..web.errors import service_status
from ..web.private_answers import NO_STORE
from ..web.recent_auth import recent_login_required
from .forms import TextForm

bp = APIBlueprint("two_factor", __name__, enable_openapi=False)


class TotpCodeForm(TextForm):
    """The first code of a new authenticator app."""

    code = StringField(
        _l("Code from the app"),
        validators=[
            DataRequired(_l("Type the 6-digit code your authenticator app shows.")),
            Length(max=20, message=_l("At most %(max)d characters.")),
        ],
        description=_l("The 6 digits the app shows for this account now."),
    )


def _user() -> User:
    user: User = current_user._get_current_object()
    return user


def _private(body: str, status: int = 200) -> Response:
    response = make_response(body, status)
    response.headers["Cache-Control"] = NO_STORE
    return response


def grouped(secret: str) -> str:
    """The secret in groups of four, as it is easiest to type."""
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


@bp.get("/account/two-factor")
@login_required
def overview() -> str:
    """Whether the account has an authenticator app, how many recovery codes are left, and the
    buttons that change them."""
    user = _user()
    return render_template(
        "account_two_factor.html",
        enabled=totp.enabled(user),
        remaining=recovery_codes.remaining(user),
    )


@bp.post("/account/two-factor/totp/begin")
@login_required
@recent_login_required
def begin() -> Response:
    """A new secret for an app (replacing one not confirmed), then its set-up page."""
    try:
        totp.begin(_user())
    except SecondFactorError as exc:
        flash(exc.message, "error")
        return redirect(url_for(".overview"))
    return redirect(url_for(".setup"))


def _setup_page(form: TotpCodeForm, status: int = 200) -> Response:
    enrolment = totp.pending(_user())
    if enrolment is None:
        return redirect(url_for(".overview"))
    svg = totp.qr_svg(enrolment.otpauth_uri).encode("utf-8")
    return _private(
        render_template(
            "account_two_factor_setup.html",
            form=form,
            qr=base64.b64encode(svg).decode("ascii"),
            secret=grouped(enrolment.secret),
        ),
        status,
    )


@bp.get("/account/two-factor/totp/setup")
@login_required
@recent_login_required
def setup() -> Response:
    """The QR code and the secret of the app being set up, and the field for its first code."""
    return _setup_page(TotpCodeForm())


@bp.post("/account/two-factor/totp/setup")
@login_required
def confirm() -> Response:
    """The first code: if right, the app counts, and the recovery codes are shown, once."""
    form = TotpCodeForm()
    if not form.validate():
        return _setup_page(form, 400)
    try:
        codes = totp.confirm(_user(), form.code.data)
    except SecondFactorError as exc:
        form.code.errors = list(exc.errors.get("code", [exc.message]))
        return _setup_page(form, service_status(exc))
    return _private(render_template("account_recovery_codes.html", codes=codes, new_app=True))


@bp.post("/account/two-factor/totp/remove")
@login_required
@recent_login_required
def remove() -> Response:
    """Remove the app and its recovery codes: log-ins ask for the password only."""
    if totp.remove(_user()):
        flash(_("The authenticator app was removed, and its recovery codes with it."), "success")
    else:
        flash(_("This account has no authenticator app to remove."), "info")
    return redirect(url_for(".overview"))


@bp.post("/account/two-factor/recovery-codes")
@login_required
@recent_login_required
def new_codes() -> Response:
    """Ten new recovery codes, shown once; the old ones stop working."""
    try:
        codes = recovery_codes.regenerate(_user())
    except SecondFactorError as exc:
        flash(exc.message, "error")
        return redirect(url_for(".overview"))
    return _private(render_template("account_recovery_codes.html", codes=codes, new_app=False))
