"""Browser sessions: Flask's signed cookie, with Flask-Login on top; a session is valid while
its user's session version is (see ``User.get_id``).

Two things Flask and Flask-Login do on every request are trimmed here, because most requests
(the tutorial's JSON routes, the API with a token) never look at the session:

- Flask builds a new signing serializer for every request; the secret does not change while
  the app runs, so it is built once. A request without cookies gets an empty session without
  parsing anything, and an untouched empty session is not looked at again on the way out.
- Flask-Login's remember-me hook reads the session after every request, which makes Flask add
  ``Vary: Cookie`` to responses that do not depend on the cookie (and so defeats shared
  caches). userhub offers no remember-me cookie, so the hook is not installed. A response that
  does read the session (a page that shows who is logged in) still gets ``Vary: Cookie``.

Loading the logged-in user is a database query. While the database cannot be reached, a page
shows its navigation as to a visitor rather than failing, so pages that need no data (``/``,
the tutorial's ``/test_get``) still answer; but a page that needs the user (``login_required``)
answers 503, not a redirect to log in: the browser *is* logged in, and says so again once the
database is back. JSON routes ask who is calling only to authorize the call, so there the
outage is a 503 too, never a 401.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, Request, Response, g
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface, SessionMixin
from flask_babel import lazy_gettext as _l
from flask_login import user_unauthorized
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy.exc import OperationalError

from ..extensions import db, login_manager
from ..models import User
from ..services.users import load_session_user
from .private_answers import for_user, keep_out_of_caches
from .problems import wants_problem_json


class SessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, with the serializer built once per secret."""

    def __init__(self) -> None:
        self._serializers: dict[tuple[object, ...], URLSafeTimedSerializer | None] = {}

    def get_signing_serializer(self, app: Flask) -> URLSafeTimedSerializer | None:
        keys = (app.secret_key, *(app.config["SECRET_KEY_FALLBACKS"] or ()))
        if keys not in self._serializers:
            self._serializers[keys] = super().get_signing_serializer(app)
        return self._serializers[keys]

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if "HTTP_COOKIE" not in request.environ:  # no cookie at all: skip parsing the header
            return self.session_class()
        return super().open_session(app, request)

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        if not (session or session.modified or session.accessed):
            return  # nothing to write, nothing to clear, no Vary: Flask would do nothing
        super().save_session(app, session, response)
        if "Set-Cookie" in response.headers:  # the cookie set or cleared: no cache may keep it
            keep_out_of_caches(response)


def init_app(app: Flask) -> None:
    app.session_interface = SessionInterface()
    login_manager.init_app(app)
    app.after_request_funcs[None].remove(login_manager._update_remember_cookie)
    login_manager.login_view = "tutorial.login"
    login_manager.login_message = _l("Please log in to see this page.")
    login_manager.localize_callback = str  # flashed in the reader's language
    login_manager.login_message_category = "info"
    # Flask-Login's "basic" protection hashes the client's address and browser on every
    # request only to mark a session "not fresh", and userhub never asks for freshness.
    # Sessions end server-side instead (the session version).
    login_manager.session_protection = None


@login_manager.user_loader
def _load_user(session_id: str) -> User | None:
    try:
        user = load_session_user(session_id)
    except OperationalError as exc:
        if wants_problem_json():
            raise
        db.session.rollback()  # a later query fails as an outage (503), not as a pending rollback
        g.session_user_error = exc  # the page goes on as a visitor's, unless it needs the user
        return None
    if user is not None:
        for_user(user.id)
    return user


@user_unauthorized.connect
def _unavailable_rather_than_logged_out(_app: Any) -> None:
    """Flask-Login is about to send the browser to log in: if the user could not be loaded
    for lack of a database, answer 503 instead (the signal is sent before the redirect)."""
    error = g.pop("session_user_error", None)
    if error is not None:
        raise error
