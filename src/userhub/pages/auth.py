"""Accounts in the browser: register, log in (the form behind the tutorial's ``/test_post``),
log out (here, or everywhere), account page, change password.

Sessions are rows on the server; the cookie carries only a session's random key
(``web/sessions.py``), so ending a session ends it wherever its cookie is."""

from __future__ import annotations

from apiflask import APIBlueprint
from flask import flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from werkzeug.wrappers import Response

from ..services import users
from ..services.errors import (
    AccountInactive,
    AccountPendingDeletion,
    EmailNotVerified,
    TooManyFailures,
    UserError,
)
from ..web import devices, sessions
from ..web.errors import service_status, waiting
from ..web.ratelimits import login_limit, register_limit
from ..web.recent_auth import recent_login_required
from ..web.redirects import is_safe_redirect
from . import account_deletion, second_step
from .forms import (
    ButtonForm,
    ChangePasswordForm,
    LoginForm,
    LogoutForm,
    RegisterForm,
    ResendVerificationForm,
    TextForm,
)

bp = APIBlueprint("auth", __name__, enable_openapi=False)


def render_login(
    form: LoginForm,
    status: int = 200,
    error: str | None = None,
    resend: ResendVerificationForm | None = None,
    keep: ButtonForm | None = None,
) -> tuple[str, int]:
    """The log-in form; ``resend``: the "Send a new link" button of an unverified account;
    ``keep``: the "Keep my account" button of one waiting to be deleted."""
    page = render_template("login.html", form=form, error=error, resend=resend, keep=keep)
    return page, status


def submit_login_form() -> Response | tuple[str, int]:
    """Check the posted log-in form; on success start a new session and redirect.

    A wrong password and an unknown username get the same answer (the form again, 200), so
    the page does not reveal which usernames exist. The right password of an account whose
    address must be verified first (``USERHUB_REQUIRE_VERIFIED_EMAIL``) gets the form again
    with a button that mails a new link.
    """
    form = LoginForm()
    if not form.validate():
        return render_login(form, status=400)
    try:
        logged_in = devices.log_in(form.username.data, form.password.data)
    except TooManyFailures as exc:
        return waiting(render_login(form, status=429, error=exc.message), exc)
    except EmailNotVerified as exc:
        resend = ResendVerificationForm(username=form.username.data)
        return render_login(form, status=service_status(exc), error=exc.message, resend=resend)
    except AccountPendingDeletion as exc:
        keep = account_deletion.offer_to_keep(exc)
        return render_login(form, status=service_status(exc), error=exc.message, keep=keep)
    except AccountInactive as exc:
        return render_login(form, status=service_status(exc), error=exc.message)
    if logged_in is None:
        return render_login(form, error=str(users.BAD_CREDENTIALS))
    target = form.next.data
    if logged_in.second_step:
        return second_step.begin(logged_in, target)
    user = logged_in.user
    sessions.log_in(user, known_device=logged_in.known_device)
    if is_safe_redirect(target):
        return redirect(target)
    return redirect(url_for("tutorial.success", user_name=user.username))


def end_session(message: str) -> Response:
    sessions.log_out()
    flash(message, "info")
    return redirect(url_for("tutorial.index"))


def rejected_fields(form: TextForm) -> int:
    """The status for a form that failed validation: 400 when a required field is missing, 422
    when everything is there but breaks a rule."""
    missing = any(
        not (field.data or "").strip()
        for field in form
        if field.name != "csrf_token" and field.flags.required
    )
    return 400 if missing else 422


def show_user_errors(form: TextForm, exc: UserError) -> None:
    for name, messages in exc.errors.items():
        getattr(form, name).errors = list(messages)


@bp.app_context_processor
def logout_button() -> dict[str, LogoutForm]:
    """Every page's navigation has a log-out button (a form, with its CSRF token)."""
    return {"logout_form": LogoutForm()} if current_user.is_authenticated else {}


@bp.route("/register", methods=["GET", "POST"])
@register_limit
def register() -> Response | tuple[str, int]:
    """Create an account (with an address, it is mailed a verification link); then the log-in
    form."""
    form = RegisterForm()
    if not form.is_submitted():
        return render_template("register.html", form=form), 200
    if not form.validate():
        return render_template("register.html", form=form), rejected_fields(form)
    try:
        user = users.register_user(
            form.username.data, form.password.data, email=(form.email.data or "").strip() or None
        )
    except UserError as exc:
        show_user_errors(form, exc)
        return render_template("register.html", form=form), service_status(exc)
    if user.email is None:
        flash(_("Account created. Log in with your new username and password."), "success")
    else:
        flash(
            _(
                "Account created. Log in with your new username and password. We mailed a link "
                "to %(email)s: follow it to confirm the address.",
                email=user.email,
            ),
            "success",
        )
    return redirect(url_for("tutorial.login"))


@bp.post("/logout")
@login_required
def logout() -> Response:
    """End this browser's session (POST only, with the CSRF token)."""
    return end_session(_("You have been logged out."))


@bp.post("/logout/everywhere")
@login_required
def logout_everywhere() -> Response:
    """End every session of this user, on every device, and revoke their API tokens."""
    users.log_out_everywhere(current_user._get_current_object())
    return end_session(_("You have been logged out everywhere, and your API tokens were revoked."))


@bp.get("/account")
@login_required
def account() -> str:
    """The logged-in user's account page."""
    return render_template("account.html", user=current_user)


@bp.route("/account/password", methods=["GET", "POST"])
@login_limit
@login_required
@recent_login_required
def change_password() -> Response | tuple[str, int]:
    """Change the password. Every other session and every API token ends; this browser gets a
    new session and stays logged in. Every POST counts against the per-IP log-in limit; a
    wrong current password is a failed log-in of the account (for this browser's device)."""
    form = ChangePasswordForm()
    if not form.is_submitted():
        return render_template("change_password.html", form=form), 200
    if not form.validate():
        return render_template("change_password.html", form=form), rejected_fields(form)
    user = current_user._get_current_object()
    try:
        users.update_user(
            user,
            {"password": form.password.data},
            current_password=form.current_password.data,
            device=devices.device_for(user.username_key),
        )
    except TooManyFailures as exc:
        form.current_password.errors = [exc.message]
        return waiting((render_template("change_password.html", form=form), 429), exc)
    except UserError as exc:
        show_user_errors(form, exc)
        return render_template("change_password.html", form=form), service_status(exc)
    sessions.log_in(user)
    flash(
        _("Password changed. Your other sessions and API tokens have been logged out."), "success"
    )
    return redirect(url_for("auth.account"))
