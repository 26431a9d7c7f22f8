"""Deleting your account in the browser, and keeping it (``services/account_deletion.py``).

``/account/delete`` explains what happens and asks for the deletion (after a recent log-in);
the account then waits out its grace period, unable to log in. Its owner keeps it from the
log-in form: the right password gets the refusal and a "Keep my account" button, whose proof
(a challenge, minutes long, single use) waits in the signed session cookie, as the second
step's does. The mailed link's page is in ``email.py``, with the other links'.
"""

from __future__ import annotations

from datetime import timedelta

from apiflask import APIBlueprint
from flask import current_app, flash, redirect, render_template, session, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from werkzeug.wrappers import Response

from ..models import User, utc_minute, utcnow
from ..services import account_deletion
from ..services.errors import AccountPendingDeletion
from ..web import sessions
from ..web.recent_auth import recent_login_required
from .forms import ButtonForm

bp = APIBlueprint("account_deletion", __name__, enable_openapi=False)

KEEP = "keep_account"  # the session cookie's entry: the key of the "Keep my account" proof


@bp.route("/account/delete", methods=["GET", "POST"])
@login_required
@recent_login_required
def delete_account() -> Response | tuple[str, int]:
    """What deleting the account means, and the button that asks for it; then the browser is
    logged out (every session ended) and sent to the home page."""
    form = ButtonForm()
    user: User = current_user._get_current_object()
    if not form.validate_on_submit():
        grace = current_app.config["USERHUB_DELETION_GRACE_DAYS"]
        due = utcnow() + timedelta(days=grace)
        page = render_template("account_delete.html", form=form, user=user, due=due, days=grace)
        return page, 400 if form.errors else 200
    due = account_deletion.request(user)
    sessions.log_out()
    flash(
        _(
            "Your account will be deleted for good on %(due)s, and you are logged out. To keep "
            "it, log in again before then and press the button that offers it.",
            due=utc_minute(due),
        ),
        "info",
    )
    if user.email is not None:
        flash(_("We mailed you a link that keeps it as well: %(email)s.", email=user.email), "info")
    return redirect(url_for("tutorial.index"))


def offer_to_keep(refusal: AccountPendingDeletion) -> ButtonForm:
    """The log-in form was given the right password of an account waiting to be deleted: its
    "Keep my account" button, the proof of the password kept in this browser's cookie."""
    assert refusal.user_id is not None
    session[KEEP] = account_deletion.offer_cancel(refusal.user_id)
    return ButtonForm()


@bp.post("/account/cancel-deletion")
def keep_account() -> Response:
    """The log-in form's "Keep my account": the deletion is called off; then log in as usual."""
    if account_deletion.cancel_by_challenge(session.pop(KEEP, None)):
        flash(_("Your account is kept. Log in."), "success")
    else:
        flash(_("That took too long. Log in again to keep your account."), "info")
    return redirect(url_for("tutorial.login"))
