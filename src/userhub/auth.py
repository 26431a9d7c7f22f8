"""Accounts in the browser: register, log in (the form behind the tutorial's ``/test_post``),
log out, account page."""

from __future__ import annotations

from apiflask import APIBlueprint
from flask import flash, redirect, render_template, session, url_for
from flask_login import current_user, login_required, login_user, logout_user
from werkzeug.wrappers import Response

from . import users
from .errors import user_problem
from .forms import LoginForm, LogoutForm, RegisterForm
from .redirects import is_safe_redirect

bp = APIBlueprint("auth", __name__, enable_openapi=False)

LOGIN_FAILED = "Invalid username or password."


def render_login(form: LoginForm, status: int = 200, error: str | None = None) -> tuple[str, int]:
    return render_template("login.html", form=form, error=error), status


def submit_login_form() -> Response | tuple[str, int]:
    """Check the posted log-in form; on success start a new session and redirect.

    A wrong password and an unknown username get the same answer (the form again, 200), so
    the page does not reveal which usernames exist.
    """
    form = LoginForm()
    if not form.validate():
        return render_login(form, status=400)
    user = users.authenticate(form.username.data, form.password.data)
    if user is None:
        return render_login(form, error=LOGIN_FAILED)
    session.clear()  # a new session at log-in: nothing from before carries over
    login_user(user)
    target = form.next.data
    if is_safe_redirect(target):
        return redirect(target)
    return redirect(url_for("tutorial.success", user_name=user.username))


@bp.route("/register", methods=["GET", "POST"])
def register() -> Response | tuple[str, int]:
    """Create an account; then the log-in form."""
    form = RegisterForm()
    if not form.is_submitted():
        return render_template("register.html", form=form), 200
    if not form.validate():
        # 400 when something is missing, 422 when everything is there but breaks a rule
        fields = (form.username, form.password, form.confirm)
        missing = any(not (field.data or "").strip() for field in fields)
        return render_template("register.html", form=form), 400 if missing else 422
    try:
        users.register_user(form.username.data, form.password.data)
    except users.UserError as exc:
        for field, messages in exc.errors.items():
            getattr(form, field).errors = list(messages)
        return render_template("register.html", form=form), user_problem(exc).status_code
    flash("Account created. Log in with your new username and password.", "success")
    return redirect(url_for("tutorial.login"))


@bp.post("/logout")
@login_required
def logout() -> Response:
    """End this browser's session (POST only, with the CSRF token)."""
    logout_user()
    session.clear()
    flash("You have been logged out.", "info")
    return redirect(url_for("tutorial.index"))


@bp.get("/account")
@login_required
def account() -> str:
    """The logged-in user's account page."""
    return render_template("account.html", user=current_user, logout_form=LogoutForm())
