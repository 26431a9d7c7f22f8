"""The pages mailed links open, the forgotten-password form, and the buttons that mail a new
verification link (from the account page, or from the log-in form when it refused an unverified
address).

A link's page shows what its button will do; only the button's POST (with its CSRF token) uses
the link, so a mail scanner that fetches every link uses none up. The work is the services'
(``services/email_flows.py``), as in the API (``api/email.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

from apiflask import APIBlueprint
from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, logout_user
from werkzeug.wrappers import Response

from ..models import EmailLink, User
from ..services import account_deletion, email_flows, email_links
from ..services.errors import LinkError, ServiceError, UserError
from ..web import devices
from ..web.errors import service_status
from ..web.ratelimits import mail_limit
from .auth import rejected_fields, show_user_errors
from .forms import ButtonForm, ForgotPasswordForm, ResendVerificationForm, ResetPasswordForm

bp = APIBlueprint("email", __name__, enable_openapi=False)
Redeemed = TypeVar("Redeemed")


def _link_page(
    purpose: str,
    template: str,
    redeem: Callable[[str], Redeemed],
    done: Callable[[Redeemed], Response],
    describe: Callable[[EmailLink], dict[str, Any]] | None = None,
) -> Response | tuple[str, int]:
    """GET: the page with its button (or why the link cannot be used); POST: use the link.
    ``describe``: more for the page to show, from the link."""
    token = request.args.get("token", "")
    form = ButtonForm()
    try:
        if form.validate_on_submit():
            return done(redeem(token))
        link = email_links.peek(purpose, token)
    except ServiceError as exc:  # a dead link, or an address another account took meanwhile
        return link_error(purpose, exc)
    more = describe(link) if describe else {}
    page = render_template(template, form=form, token=token, email=link.email, **more)
    return page, 400 if form.errors else 200


def link_error(purpose: str, exc: ServiceError) -> tuple[str, int]:
    """Why a mailed link cannot be used, and the way to what it did: the account page mails a
    new confirmation link; a new-device link's log-in is ended from the account's sessions (or
    by a new password); an account waiting to be deleted is kept from the log-in form; the
    forgotten-password form gives any other (a reset link gets its owner in as well)."""
    if purpose in (email_links.VERIFY, email_links.CHANGE):
        way = "account"
    elif purpose in (email_links.END_SESSION, email_links.END_TOKEN):
        way = "sessions"
    elif purpose == email_links.CANCEL_DELETION:
        way = "log-in"
    else:
        way = "reset"
    page = render_template("email/link_error.html", error=exc.message, way=way)
    return page, service_status(exc)


def check_your_mail(message: str) -> tuple[str, int]:
    """The answer to a request for a mailed link: the same whether or not one was sent."""
    return render_template("email/check_mail.html", message=message), 200


def _to_account_or_login(message: str) -> Response:
    flash(message, "success")
    return redirect(url_for("auth.account" if current_user.is_authenticated else "tutorial.login"))


@bp.route("/email/verify", methods=["GET", "POST"])
def verify() -> Response | tuple[str, int]:
    """The link in the verification mail."""
    return _link_page(
        email_links.VERIFY,
        "email/verify.html",
        email_flows.verify_email,
        lambda user: _to_account_or_login(_("Your e-mail address is confirmed.")),
    )


@bp.route("/email/change/confirm", methods=["GET", "POST"])
def confirm_change() -> Response | tuple[str, int]:
    """The link mailed to a new address."""
    return _link_page(
        email_links.CHANGE,
        "email/confirm_change.html",
        email_flows.confirm_email_change,
        lambda user: _to_account_or_login(
            _("%(email)s is now your account's e-mail address.", email=user.email)
        ),
    )


def _undone(user: User) -> Response:
    logout_user()  # every session ended: this one too
    flash(
        _(
            "The change was undone and every session logged out. We mailed you a link to "
            "choose a new password."
        ),
        "success",
    )
    return redirect(url_for("tutorial.login"))


@bp.route("/email/change/undo", methods=["GET", "POST"])
def undo_change() -> Response | tuple[str, int]:
    """ "This was not me", in the mail to the old address."""
    return _link_page(
        email_links.UNDO, "email/undo_change.html", email_flows.undo_email_change, _undone
    )


def _unlocked(user: User) -> Response:
    devices.remember(user.username_key)  # this browser is the owner's now
    flash(_("Your account is unlocked in this browser: log in with your password."), "success")
    return redirect(url_for("tutorial.login"))


@bp.route("/unlock", methods=["GET", "POST"])
def unlock() -> Response | tuple[str, int]:
    """The link in the mail sent when strangers' wrong passwords locked the account."""
    return _link_page(email_links.UNLOCK, "email/unlock.html", email_flows.unlock, _unlocked)


def _kept(user: User) -> Response:
    flash(_("Your account is kept. Log in."), "success")
    return redirect(url_for("tutorial.login"))


@bp.route("/email/cancel-deletion", methods=["GET", "POST"])
def cancel_deletion() -> Response | tuple[str, int]:
    """The link in the mail sent when the owner asked for the account's deletion: keep it."""
    return _link_page(
        email_links.CANCEL_DELETION,
        "email/cancel_deletion.html",
        account_deletion.cancel_by_link,
        _kept,
        lambda link: {"due": link.expires_at},
    )


def _end_log_in(purpose: str) -> Response | tuple[str, int]:
    """A new-device mail's link: its page tells of the log-in; its button ends it."""
    return _link_page(
        purpose,
        "email/end_log_in.html",
        partial(email_flows.end_by_link, purpose),
        partial(_log_in_ended, purpose),
        lambda link: {"log_in": email_flows.log_in_of(link)},
    )


def _log_in_ended(purpose: str, ended: bool) -> Response:
    """Said on the forgotten-password form: the next step, if the log-in was not the owner's."""
    if purpose == email_links.END_SESSION:
        done = _("That session is ended: its browser is logged out.")
        before = _("That session had ended already.")
    else:
        done = _("That token is revoked: it no longer works.")
        before = _("That token had stopped working already.")
    flash(done if ended else before, "success")
    flash(_("If that log-in was not yours, someone knows your password: choose a new one."), "info")
    return redirect(url_for("email.forgot_password"))


@bp.route("/email/end-session", methods=["GET", "POST"])
def end_session() -> Response | tuple[str, int]:
    """The link in the new-device mail of a browser's log-in."""
    return _end_log_in(email_links.END_SESSION)


@bp.route("/email/end-token", methods=["GET", "POST"])
def end_token() -> Response | tuple[str, int]:
    """The link in the new-device mail of a log-in through the API."""
    return _end_log_in(email_links.END_TOKEN)


@bp.route("/password/forgot", methods=["GET", "POST"])
@mail_limit
def forgot_password() -> Response | tuple[str, int]:
    """Ask for a reset link by address or username; the same answer whether or not it exists."""
    form = ForgotPasswordForm()
    if not form.is_submitted():
        return render_template("email/forgot_password.html", form=form), 200
    if not form.validate():
        return render_template("email/forgot_password.html", form=form), 400
    account = form.account.data.strip()
    if "@" in account:
        email_flows.request_password_reset(email=account)
    else:
        email_flows.request_password_reset(username=account)
    return check_your_mail(
        _(
            "If an account with an e-mail address matches, a link to reset its password is on "
            "its way to that address."
        )
    )


@bp.route("/password/reset", methods=["GET", "POST"])
def reset_password() -> Response | tuple[str, int]:
    """The link in the reset mail: a new password, twice."""
    token = request.args.get("token", "")
    form = ResetPasswordForm()
    try:
        if not form.is_submitted():
            email_links.peek(email_links.RESET, token)
            return render_template("email/reset_password.html", form=form, token=token), 200
        if not form.validate():
            page = render_template("email/reset_password.html", form=form, token=token)
            return page, rejected_fields(form)
        email_flows.reset_password(token, form.password.data)
    except LinkError as exc:
        return link_error(email_links.RESET, exc)
    except UserError as exc:
        show_user_errors(form, exc)
        page = render_template("email/reset_password.html", form=form, token=token)
        return page, service_status(exc)
    logout_user()
    flash(_("Your password is changed. Log in with the new one."), "success")
    return redirect(url_for("tutorial.login"))


@bp.post("/email/verification/send")
@mail_limit
def send_verification() -> Response:
    """A new verification link for the logged-in account (the account page's button)."""
    if not current_user.is_authenticated:
        return redirect(url_for("tutorial.login"))
    try:
        email_flows.send_verification(current_user._get_current_object())
    except UserError as exc:
        flash(exc.message, "error")
        return redirect(url_for("auth.account"))
    return _to_account_or_login(_("A new confirmation link is on its way to your address."))


@bp.post("/email/verification/resend")
@mail_limit
def resend_verification() -> tuple[str, int]:
    """The log-in form's "Send a new link", without a session: it names the account. The answer
    is the same whoever is named; a link goes only to an account's unverified address."""
    form = ResendVerificationForm()  # its CSRF token was checked before the view
    email_flows.request_verification(username=(form.username.data or "").strip())
    return check_your_mail(
        _(
            "If this account has an e-mail address that still needs confirming, a new link is on "
            "its way to it. Follow it, then log in."
        )
    )
