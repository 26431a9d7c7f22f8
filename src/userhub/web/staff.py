"""Who may open the admin pages and press their buttons: the one place the pages ask
``services/roles.py`` (the API asks it in ``api/auth.py``).

* ``staff_page``, for a GET view: a visitor is sent to log in (Flask-Login); a logged-in
  account without a role gets the 403 page; support and administrators see the page.
* ``manager_action``, for a POST view: the same, and then only an administrator; support gets
  the 403 page in the reader's language (``ReadOnlyRole``), and nothing changes.

With ``USERHUB_REQUIRE_MFA_FOR_ADMINS``, an administrator or support user without a second
factor gets a 403 page that says to add one, linking to the two-factor page, as the API answers
``mfa-enrolment-required``. An account deleted by another administrator while an action was
under way is a 404 (``NoSuchUser``), never a 500.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

from flask import url_for
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required

from .. import transactions
from ..models import User
from ..services import roles
from ..services.errors import NoSuchUser
from .errors import error_page

View = TypeVar("View", bound=Callable[..., Any])

NOT_STAFF = _l("These pages are for administrators and support staff.")
ADD_A_FACTOR = _l(
    "Administrators and support staff must add a second factor (an authenticator app or a "
    "passkey) to their own account before they use these pages."
)
ADD_IT = _l("Add a second factor")


def staff() -> User:
    """The administrator or support user of this request (inside a view decorated here)."""
    user: User = current_user._get_current_object()
    return user


def _refusal() -> Any:
    """The 403 page for this user, or None when they may see the admin pages."""
    user = staff()
    if not roles.can_view_users(user):
        return error_page(403, str(NOT_STAFF))
    if roles.lacks_required_factor(user):
        link = (url_for("two_factor.overview"), str(ADD_IT))
        return error_page(403, str(ADD_A_FACTOR), link=link)
    return None


def staff_page(view: View) -> View:
    """A page administrators and support may see."""

    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        refusal = _refusal()
        return refusal if refusal is not None else view(*args, **kwargs)

    return cast(View, login_required(wrapped))


def manager_action(view: View) -> View:
    """A change only administrators may make (a POST: CSRF is checked before the view)."""

    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        refusal = _refusal()
        if refusal is not None:
            return refusal
        roles.require_manager(staff())
        try:
            return view(*args, **kwargs)
        except transactions.RowVanished as exc:  # deleted by someone else meanwhile
            raise NoSuchUser() from exc

    return cast(View, login_required(wrapped))
