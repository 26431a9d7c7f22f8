"""The account's e-mail address in the browser: add, change or remove it, or cancel a change.

The rules are the user service's, applied as ``PATCH /api/v1/users/me`` applies them
(``users.update_user``): a first address is the account's at once and gets a verification link;
a new one replacing it is only pending until the link mailed to it is followed, and the old
address is told, with a link that undoes the change; a removed address is told the same way.
"""

from __future__ import annotations

from apiflask import APIBlueprint
from flask import flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from werkzeug.wrappers import Response

from ..models import User
from ..services import users
from ..services.errors import UserError
from ..web.errors import service_status
from ..web.ratelimits import mail_limit
from ..web.recent_auth import recent_login_required
from .auth import rejected_fields, show_user_errors
from .forms import ChangeEmailForm

bp = APIBlueprint("account_email", __name__, enable_openapi=False)


def _page(form: ChangeEmailForm, status: int = 200) -> tuple[str, int]:
    return render_template("account_email.html", form=form, user=current_user), status


def _set_email(email: str | None) -> User:
    """The logged-in user's address set as the API sets it (UserError if refused)."""
    user: User = current_user._get_current_object()
    users.update_user(user, {"email": email})
    return user


def _what_happened(before: str | None, user: User) -> str:
    """The flash message after a change: which of the service's cases took place."""
    if user.pending_email is not None:
        message = _(
            "We mailed a link to %(new)s: your address changes when you follow it. Until then "
            "it stays %(current)s.",
            new=user.pending_email,
            current=user.email,
        )
    elif user.email != before:  # a first address: the account's at once, to be confirmed
        message = _(
            "We mailed a link to %(email)s: follow it to confirm the address.", email=user.email
        )
    else:
        message = _("%(email)s is already your address.", email=user.email)
    return str(message)


@bp.route("/account/email", methods=["GET", "POST"])
@mail_limit
@login_required
@recent_login_required
def change_email() -> Response | tuple[str, int]:
    """Add or change the address (a link is mailed to it: counted against the mail limit)."""
    form = ChangeEmailForm()
    if not form.is_submitted():
        return _page(form)
    if not form.validate():
        return _page(form, rejected_fields(form))
    before = current_user.email
    try:
        user = _set_email(form.email.data.strip())
    except UserError as exc:
        show_user_errors(form, exc)
        return _page(form, service_status(exc))
    flash(_what_happened(before, user), "success")
    return redirect(url_for("auth.account"))


@bp.post("/account/email/remove")
@mail_limit
@login_required
@recent_login_required
def remove_email() -> Response:
    """Remove the address at once; the old address gets a link that undoes it."""
    _set_email(None)
    flash(_("Your e-mail address was removed. A mail to it says how to undo this."), "success")
    return redirect(url_for("auth.account"))


@bp.post("/account/email/cancel")
@login_required
def cancel_change() -> Response:
    """Keep the current address: the pending one's link stops working."""
    user = _set_email(current_user.email)
    flash(_("The change was cancelled: your address stays %(email)s.", email=user.email), "success")
    return redirect(url_for("auth.account"))
