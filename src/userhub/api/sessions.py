"""``/api/v1/users/.../sessions``: the browsers logged in to an account, and ending one of them
(``services/sessions.py``): its next request is a visitor's, wherever its cookie is."""

from __future__ import annotations

from flask import Response
from flask_babel import gettext as _

from ..models import User
from ..services import sessions
from ..web.problems import Problem
from ..web.sessions import current_session
from .auth import ADMIN, STAFF, caller, token_auth
from .base import ID_CONVERTER, api_blueprint, no_content, with_fields
from .schemas import SessionList, SessionOut
from .users import user_or_404

bp = api_blueprint(
    "api_sessions",
    tag={
        "name": "Sessions",
        "description": "The browsers logged in to an account: list them, log one out.",
    },
)
ENDED = "Ended: that browser is logged out at once"


def _listed(user: User) -> SessionList:
    """``user``'s live sessions, the one this request came with marked ``current``."""
    here = current_session()
    here_id = here.id if here is not None else None
    rows = sessions.listed(user)
    return SessionList.model_validate(
        [with_fields(SessionOut, row, current=row.id == here_id) for row in rows]
    )


@bp.get("/users/me/sessions")
@bp.auth_required(token_auth)
@bp.output(SessionList, description="My live sessions, the most recently used first")
@bp.doc(summary="My browser sessions")
def my_sessions() -> SessionList:
    """The browsers logged in to my account, the most recently used first. `current` marks
    the one this call came with, when it came with the browser's session cookie. Tokens and
    API keys are not sessions (`GET /api/v1/users/me/api-keys` lists the keys)."""
    return _listed(caller())


@bp.delete(f"/users/me/sessions/<{ID_CONVERTER}:session_id>")
@bp.auth_required(token_auth)
@bp.doc(
    summary="Log one of my browsers out",
    responses={204: ENDED, 404: "No live session of mine has this id"},
)
def end_my_session(session_id: int) -> Response:
    """End one of my sessions, e.g. on a computer I no longer have: its next request is a
    visitor's (a page sends it to log in, the API answers 401). Ending the current one logs
    this browser out. The security log records a `session-ended` event."""
    if not sessions.end(caller(), session_id):
        raise Problem(404, _("You have no live session with id %(id)d.", id=session_id))
    return no_content()


@bp.get("/users/<int:user_id>/sessions")
@bp.auth_required(token_auth, roles=STAFF)
@bp.output(SessionList, description="The user's live sessions, the most recently used first")
@bp.doc(summary="A user's browser sessions (admin, support)", responses={404: "No user"})
def user_sessions(user_id: int) -> SessionList:
    """The browsers logged in to any account, the most recently used first."""
    return _listed(user_or_404(user_id))


@bp.delete(f"/users/<int:user_id>/sessions/<{ID_CONVERTER}:session_id>")
@bp.auth_required(token_auth, roles=[ADMIN])
@bp.doc(
    summary="Log a user's browser out (admin)",
    responses={204: ENDED, 404: "No user, or no live session of theirs has this id"},
)
def end_user_session(user_id: int, session_id: int) -> Response:
    """End one session of any account. Its owner's security log shows a `session-ended` event
    naming the administrator (`actor_id`)."""
    if not sessions.end(user_or_404(user_id), session_id, by=caller()):
        raise Problem(
            404,
            _("User %(user)d has no live session with id %(id)d.", user=user_id, id=session_id),
        )
    return no_content()
