"""The account's security pages: where it is logged in (and ending those sessions), its
security log, and its personal API keys.

Each view is a call into a service (``services/sessions.py``, ``security_log.py``,
``api_keys.py``) and a template; what the pages say about an event is worded in
``web/security_words.py``, in the reader's language (the admin pages word it alike). A new
key's secret is on the answer to the POST that made it and nowhere else: not flashed (the
session cookie is signed, not encrypted), not on the list, never cached."""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint
from flask import abort, flash, make_response, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from werkzeug.wrappers import Response

from ..models import User
from ..services import api_keys, security_log, sessions
from ..services.errors import UserError
from ..web import sessions as browser_sessions
from ..web.errors import service_status
from ..web.private_answers import NO_STORE
from ..web.recent_auth import reauthenticate_first, session_is_recent
from ..web.security_words import WORDS_FOR_TEMPLATES, event_words
from .auth import end_session, rejected_fields
from .forms import ApiKeyForm

bp = APIBlueprint("account_security", __name__, enable_openapi=False)

EVENTS_PER_PAGE = 20
LAST_PAGE = 1_000_000  # as the API's lists: far past any log, and an offset every database takes
DAY_SECONDS = 24 * 3600


def _render(template: str, **context: Any) -> str:
    """A security page, with the words it names ways of logging in, scopes and browsers by."""
    return render_template(template, **WORDS_FOR_TEMPLATES, **context)


def _user() -> User:
    user: User = current_user._get_current_object()
    return user


@bp.get("/account/sessions")
@login_required
def list_sessions() -> str:
    """Every live session of the account, this browser's marked."""
    current = browser_sessions.current_session()
    return _render(
        "account_sessions.html",
        rows=sessions.listed(_user()),
        current_id=current.id if current is not None else None,
    )


@bp.post("/account/sessions/<int:session_id>/end")
@login_required
def end(session_id: int) -> Response:
    """End one session: another browser's (it is logged out wherever it is), or this one's,
    which is logging out. Someone else's, or one already gone: nothing happens."""
    current = browser_sessions.current_session()
    if current is not None and current.id == session_id:
        return end_session(_("You have been logged out."))
    if sessions.end(_user(), session_id):
        flash(_("The session was ended: that browser is logged out."), "success")
    else:
        flash(_("That session had already ended."), "info")
    return redirect(url_for(".list_sessions"))


@bp.post("/account/sessions/end-others")
@login_required
def end_others() -> Response:
    """Log out every other browser of the account; this one stays, and so do API keys."""
    current = browser_sessions.current_session()
    assert current is not None  # a logged-in page request came with its session
    if sessions.end_many(_user(), keep=current.id):
        flash(_("Your other sessions were logged out."), "success")
    else:
        flash(_("You had no other sessions."), "info")
    return redirect(url_for(".list_sessions"))


@bp.get("/account/activity")
@login_required
def activity() -> str:
    """The account's security log, newest first, a page at a time (``?page=``)."""
    number = request.args.get("page", 1, type=int)
    if not 1 <= number <= LAST_PAGE:
        abort(404)
    events, total = security_log.page(number, EVENTS_PER_PAGE, user_id=_user().id)
    pages = max(1, -(-total // EVENTS_PER_PAGE))
    if number > pages:
        abort(404)
    lines = [(event, event_words(event)) for event in events]
    return _render("account_activity.html", lines=lines, number=number, pages=pages)


def _keys_page(form: ApiKeyForm, status: int = 200) -> tuple[str, int]:
    user = _user()
    return _render("account_api_keys.html", form=form, keys=api_keys.listed(user)), status


@bp.route("/account/api-keys", methods=["GET", "POST"])
@login_required
def keys() -> Response | tuple[str, int]:
    """The account's API keys and the form for a new one; a new key's secret is shown on the
    answer to its POST only (``no-store``)."""
    form = ApiKeyForm()
    if not form.is_submitted():
        return _keys_page(form)
    if not form.validate():
        return _keys_page(form, rejected_fields(form))
    if not session_is_recent():
        return reauthenticate_first()
    days = form.lifetime.data
    try:
        new = api_keys.create(_user(), form.name.data, form.scopes.data, days * DAY_SECONDS)
    except UserError as exc:
        for field, messages in exc.errors.items():
            form["lifetime" if field == "expires_in" else field].errors = list(messages)
        return _keys_page(form, service_status(exc))
    response = make_response(_render("account_api_key_created.html", key=new), 201)
    response.headers["Cache-Control"] = NO_STORE
    return response


@bp.post("/account/api-keys/<int:key_id>/revoke")
@login_required
def revoke(key_id: int) -> Response:
    """Revoke one of the account's keys: it stops working at once. Someone else's, or one
    already gone: nothing happens."""
    if api_keys.revoke(_user(), key_id):
        flash(_("The API key was revoked: it no longer works."), "success")
    else:
        flash(_("That API key was already revoked or has expired."), "info")
    return redirect(url_for(".keys"))
