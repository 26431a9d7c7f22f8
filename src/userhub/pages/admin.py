"""The admin pages: every account, searched and filtered (``/admin``), and one account's page
(``/admin/users/<id>``): its profile, second factors, sessions, tokens and keys, its newest
security events, and the buttons that change it.

Who may do what is decided in ``web/staff.py``, which asks ``services/roles.py``: support sees
every page and each button answers 403; an administrator may press them. Each button is a POST
form (CSRF) that calls the service owning the change, which records it in the account's log
naming the administrator, then flashes what happened and returns to the account's page."""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint
from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import LazyString
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from werkzeug.wrappers import Response

from ..models import User
from ..services import (
    account_admin,
    account_status,
    email_flows,
    roles,
    second_factors,
    security_log,
    sessions,
    users,
)
from ..web.security_words import WORDS_FOR_TEMPLATES, event_words
from ..web.staff import manager_action, staff, staff_page
from .forms import UserSearchForm

bp = APIBlueprint("admin", __name__, enable_openapi=False)

PER_PAGE = 50
EVENTS_SHOWN = 20
LAST_PAGE = 1_000_000  # as the API's lists: an offset every database takes

ROLE_CHANGES: dict[tuple[str, str], tuple[dict[str, bool], LazyString]] = {
    (roles.ADMIN, "grant"): ({"is_admin": True}, _l("%(name)s is now an administrator.")),
    (roles.ADMIN, "remove"): ({"is_admin": False}, _l("%(name)s is no longer an administrator.")),
    (roles.SUPPORT, "grant"): ({"is_support": True}, _l("%(name)s now has the support role.")),
    (roles.SUPPORT, "remove"): (
        {"is_support": False},
        _l("%(name)s no longer has the support role."),
    ),
}


@bp.app_context_processor
def admin_link() -> dict[str, Any]:
    """The navigation's Admin link, for those ``roles.py`` lets see other accounts."""
    return {"can_view_users": roles.can_view_users}


def _account(user_id: int) -> User:
    """The account the URL names; 404 if there is none (or it was deleted)."""
    user = users.get_user(user_id)
    if user is None:
        abort(404)
    return user


def _back(user: User) -> Response:
    return redirect(url_for(".user", user_id=user.id))


@bp.get("/admin")
@staff_page
def users_list() -> tuple[str, int]:
    """Every account, 50 a page, as the filters choose; a bad filter: the form with 400."""
    form = UserSearchForm(formdata=request.args)
    number = request.args.get("page", 1, type=int)
    if not form.validate():
        return render_template("admin_users.html", form=form, rows=None), 400
    if not 1 <= number <= LAST_PAGE:
        abort(404)
    rows, total = users.list_users(number, PER_PAGE, where=form.where())
    pages = max(1, -(-total // PER_PAGE))
    if number > pages:
        abort(404)
    return render_template(
        "admin_users.html", form=form, rows=rows, total=total, number=number, pages=pages
    ), 200


def _user_page(user: User, status: int = 200, **context: Any) -> tuple[str, int]:
    events, _total = security_log.page(1, EVENTS_SHOWN, user_id=user.id)
    return render_template(
        "admin_user.html",
        user=user,
        me=staff(),
        manager=roles.can_manage_users(staff()),
        factors=account_admin.factors(user),
        browser_sessions=sessions.listed(user),
        credentials=account_admin.credentials(user),
        events=[(event, event_words(event)) for event in events],
        actors=account_admin.actor_names(events),
        **WORDS_FOR_TEMPLATES,
        **context,
    ), status


@bp.get("/admin/users/<int:user_id>")
@staff_page
def user(user_id: int) -> tuple[str, int]:
    """One account, everything an administrator may need to help its owner."""
    return _user_page(_account(user_id))


@bp.post("/admin/users/<int:user_id>/deactivate")
@manager_action
def deactivate(user_id: int) -> Response:
    """No more log-ins; every session, token and key ends at once."""
    user = _account(user_id)
    if account_status.deactivate(user, by=staff()):
        flash(_("%(name)s is deactivated and logged out.", name=user.username), "success")
    else:
        flash(_("%(name)s was already deactivated.", name=user.username), "info")
    return _back(user)


@bp.post("/admin/users/<int:user_id>/reactivate")
@manager_action
def reactivate(user_id: int) -> Response:
    user = _account(user_id)
    if account_status.reactivate(user, by=staff()):
        flash(_("%(name)s can log in again.", name=user.username), "success")
    else:
        flash(_("%(name)s was not deactivated.", name=user.username), "info")
    return _back(user)


@bp.post("/admin/users/<int:user_id>/roles/<any(admin, support):role>/<any(grant, remove):change>")
@manager_action
def change_role(user_id: int, role: str, change: str) -> Response:
    """Grant or remove a role (an administrator's own admin rights stay: OwnAdminRights)."""
    user = _account(user_id)
    values, done = ROLE_CHANGES[role, change]
    users.update_user(user, values, by_admin=staff())
    flash(str(done) % {"name": user.username}, "success")
    return _back(user)


@bp.post("/admin/users/<int:user_id>/password-reset")
@manager_action
def send_reset(user_id: int) -> Response:
    """Mail a reset link (NoAddress, 409, without an address); the account is logged out."""
    user = _account(user_id)
    email_flows.send_reset_by_admin(user, by=staff())
    flash(_("A password-reset link was mailed to %(email)s.", email=user.email), "success")
    return _back(user)


@bp.post("/admin/users/<int:user_id>/second-factors/reset")
@manager_action
def reset_factors(user_id: int) -> Response:
    user = _account(user_id)
    second_factors.reset(user, by=staff())
    flash(_("%(name)s logs in with the password alone now.", name=user.username), "success")
    return _back(user)


@bp.post("/admin/users/<int:user_id>/sessions/<int:session_id>/end")
@manager_action
def end_session(user_id: int, session_id: int) -> Response:
    user = _account(user_id)
    if sessions.end(user, session_id, by=staff()):
        flash(_("The session was ended: that browser is logged out."), "success")
    else:
        flash(_("That session had already ended."), "info")
    return _back(user)


@bp.post("/admin/users/<int:user_id>/sessions/end-all")
@manager_action
def end_sessions(user_id: int) -> Response:
    user = _account(user_id)
    if sessions.end_many(user, by=staff()):
        flash(_("%(name)s was logged out of every browser.", name=user.username), "success")
    else:
        flash(_("%(name)s had no sessions.", name=user.username), "info")
    return _back(user)


@bp.post("/admin/users/<int:user_id>/credentials/<int:token_id>/revoke")
@manager_action
def revoke(user_id: int, token_id: int) -> Response:
    user = _account(user_id)
    if account_admin.revoke_credential(user, token_id, by=staff()):
        flash(_("Revoked: it no longer works."), "success")
    else:
        flash(_("That token or key was already revoked or has expired."), "info")
    return _back(user)


@bp.post("/admin/users/<int:user_id>/delete")
@manager_action
def delete(user_id: int) -> Response | tuple[str, int]:
    """Delete the account at once, once the box saying so is ticked (OwnAccount for oneself)."""
    user = _account(user_id)
    if request.form.get("confirm") != "yes":
        return _user_page(user, 400, delete_error=_("Tick the box to confirm the deletion."))
    name = user.username
    users.delete_user(user, by_admin=staff())
    flash(_("The account %(name)s was deleted.", name=name), "success")
    return redirect(url_for(".users_list"))
