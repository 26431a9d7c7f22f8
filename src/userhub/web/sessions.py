"""Browser sessions: a row per log-in (``services/sessions.py``), whose random key is all
Flask's signed cookie carries (Flask-Login's user id, ``User.get_id``); the session is valid
while its row is, so log-out, ending it from another device, "log out everywhere" and a new
password end it server-side, wherever copies of the cookie are. ``log_in`` and ``log_out`` are
the one way pages and the API start and end one.

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

from collections.abc import Callable
from typing import Any

from flask import Flask, Request, Response, after_this_request, g, session
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface, SessionMixin
from flask_babel import lazy_gettext as _l
from flask_login import login_user, logout_user, user_unauthorized
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy.exc import OperationalError

from ..extensions import db, login_manager
from ..models import User
from ..services import sessions
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
    # Sessions end server-side instead (their rows).
    login_manager.session_protection = None


def log_in(
    user: User, *, method: str = sessions.PASSWORD, known_device: bool = True
) -> sessions.Current:
    """Start a new session for ``user`` in this browser: a new row and a new cookie, nothing
    from before carried over (no session fixation). A session the browser had lives on until
    it expires or is ended from the session list, like another device's."""
    current = sessions.Current.of(sessions.start(user, method=method, known_device=known_device))
    session.clear()
    login_user(user)
    g.browser_session = current
    return current


def log_out() -> None:
    """End this browser's session, server-side, and clear its cookie."""
    row = current_session()
    if row is not None:
        sessions.log_out(row)
    logout_user()
    session.clear()
    g.browser_session = None


def current_session() -> sessions.Current | None:
    """This browser's session (its id and user's), once ``current_user`` has been loaded."""
    current: sessions.Current | None = g.get("browser_session")
    return current


@login_manager.user_loader
def _load_user(key: str) -> User | None:
    try:
        row = sessions.find(key)
    except OperationalError as exc:
        if wants_problem_json():
            raise
        db.session.rollback()  # a later query fails as an outage (503), not as a pending rollback
        g.session_user_error = exc  # the page goes on as a visitor's, unless it needs the user
        return None
    if row is None:
        return None
    g.browser_session = sessions.Current.of(row)
    if sessions.stale(row):
        session_id = row.id
        after_response(lambda: sessions.touch(session_id))
    for_user(row.user_id)
    return row.user


def after_response(bookkeeping: Callable[[], None]) -> None:
    """Run ``bookkeeping`` once the view is done (its own transaction), so that what the view
    reads is not expired by its commit: "last seen", "last used"."""

    @after_this_request
    def run(response: Response) -> Response:
        bookkeeping()
        return response


@user_unauthorized.connect
def _unavailable_rather_than_logged_out(_app: Any) -> None:
    """Flask-Login is about to send the browser to log in: if the user could not be loaded
    for lack of a database, answer 503 instead (the signal is sent before the redirect)."""
    error = g.pop("session_user_error", None)
    if error is not None:
        raise error
