"""Views that need a recent proof of identity (``services/reauthentication.py``), not just a
live session: a page sends a browser whose log-in is older than
``USERHUB_REAUTHENTICATION_SECONDS`` to ``/account/reauthenticate`` first, which returns to the
page once the password, a code or a passkey has been given; the API answers 401
``reauthentication-required`` (``api/auth.py``)."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import redirect, request, url_for
from werkzeug.wrappers import Response

from ..services import reauthentication
from . import sessions
from .redirects import is_safe_redirect

View = TypeVar("View", bound=Callable[..., Any])


def session_is_recent() -> bool:
    """Whether this browser's session proved who is using it recently enough."""
    current = sessions.current_session()
    return current is not None and reauthentication.session_is_recent(current.id)


def return_address() -> str:
    """Where to come back after re-authenticating: this page for a GET; for a form's POST (which
    cannot be repeated by a redirect) the page the form was on, else the account page."""
    if request.method == "GET":
        return request.full_path.rstrip("?")
    referrer = request.referrer or ""
    host = request.host_url.rstrip("/")
    if referrer.startswith(host + "/") and is_safe_redirect(referrer[len(host) :]):
        return referrer[len(host) :]
    return url_for("auth.account")


def reauthenticate_first() -> Response:
    """To the re-authentication page, which comes back here."""
    return redirect(url_for("reauth.reauthenticate", next=return_address()))


def recent_login_required(view: View) -> View:
    """A page (after ``login_required``) that asks for the password, a code or a passkey again
    unless this browser proved who is using it within the last few minutes."""

    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if not session_is_recent():
            return reauthenticate_first()
        return view(*args, **kwargs)

    return wrapped  # type: ignore[return-value]
