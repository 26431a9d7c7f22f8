"""Who is calling the API: a Bearer token (a log-in token or a personal API key), or else the
browser's log-in session.

Bearer calls carry their credential in a header a forged cross-site request cannot set, so they
need no CSRF token. A call that rides on the session cookie can be forged, so its writes must
carry the ``X-CSRFToken`` header (Flask-WTF's token, as in every page's forms).

An API key does only what its scopes allow (``services/api_keys.py``): a ``read`` key's write is
refused with 403 ``insufficient-scope``, and only a key with ``admin`` acts in its owner's role.

Who may call an operation is its ``roles``: ``roles=[ADMIN]`` for what changes other accounts,
``roles=STAFF`` (admin or support) for what only reads them. The caller's role comes from
``services/roles.py``, the one place that decides; support calling an administrator's write is
refused with the read-only role's 403 ``forbidden``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from apiflask import HTTPError, HTTPTokenAuth
from flask import Response, g, request
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from ..extensions import csrf
from ..models import ApiToken, User
from ..services import api_keys, reauthentication, roles, tokens
from ..services.errors import ReadOnlyRole
from ..web.private_answers import for_user
from ..web.problems import Problem, problem_response
from ..web.recent_auth import session_is_recent
from ..web.sessions import after_response

View = TypeVar("View", bound=Callable[..., Any])
# What a 401 of a call made with a token says to authenticate with (RFC 9110 requires one).
BEARER_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="userhub"'}
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
ADMIN = roles.ADMIN
SUPPORT = roles.SUPPORT
STAFF = [ADMIN, SUPPORT]  # the roles of the operations that read other accounts


class TokenOrSessionAuth(HTTPTokenAuth):
    """Bearer auth that also asks ``verify_token`` when no token was sent (Flask-HTTPAuth
    would answer 401 straight away), so a logged-in browser session can authenticate."""

    def authenticate(self, auth: Any, stored_password: Any) -> Any:
        return self.ensure_sync(self.verify_token_callback)(getattr(auth, "token", None) or "")


token_auth = TokenOrSessionAuth(
    scheme="Bearer",
    realm="userhub",
    description="A token from `POST /api/v1/tokens`, or an API key from "
    "`POST /api/v1/users/me/api-keys` (within its scopes). A logged-in browser session also "
    "works; its writes need the `X-CSRFToken` header.",
)

AUTH_DETAILS = {
    401: _l(
        "Authentication required: send Authorization: Bearer <token> (POST /api/v1/tokens "
        "issues one). The token may be missing, wrong, expired or revoked."
    ),
    403: _l("This needs an administrator account (or a support account, to read)."),
}
READ_ONLY_KEY = _l(
    "This API key has only the read scope: it can make GET calls, not this one. Make a key "
    "with the write scope (POST /api/v1/users/me/api-keys)."
)
REAUTHENTICATE = _l(
    "This change needs a recent proof of identity. Send your password (or a code from your "
    "authenticator app) to POST /api/v1/users/me/reauthenticate with this token, then repeat "
    "the call; or log in again."
)
MFA_FOR_ADMINS = _l(
    "Administrators and support accounts must add a second factor (an authenticator app or a "
    "passkey) on this server before using the staff calls: POST /api/v1/users/me/totp."
)
NOT_ADMIN_KEY = _l(
    "This needs an administrator account (or a support account, to read), and an API key with "
    "the admin scope (a log-in token of such an account also works)."
)


@token_auth.verify_token
def _verify(token: str) -> User | None:
    g.api_token = None
    if token:
        api_token = tokens.find(token)
        if api_token is None:
            return None
        g.api_token = api_token
        if tokens.stale(api_token):
            token_id = api_token.id
            after_response(lambda: tokens.touch(token_id))
        for_user(api_token.user_id)
        if not api_keys.allows(api_token.scope_set, request.method):
            raise Problem(403, str(READ_ONLY_KEY), kind="insufficient-scope")
        return api_token.user
    if current_user.is_authenticated:
        if request.method not in SAFE_METHODS:
            csrf.protect()  # 400 problem when the X-CSRFToken header is missing or wrong
        user: User = current_user._get_current_object()
        return user
    return None


@token_auth.get_user_roles
def _roles(user: User) -> list[str]:
    role = acting_role(user)
    return [role] if role is not None else []


def acting_role(user: User) -> str | None:
    """The role (``roles.ADMIN``, ``roles.SUPPORT``, or None) the caller ``user`` acts in: its
    account's (``roles.role_of``), unless it came with an API key without the ``admin`` scope
    (``api_keys.acting_role``). With ``USERHUB_REQUIRE_MFA_FOR_ADMINS``, a role is refused (403
    ``mfa-enrolment-required``) until the account has a second factor: staff see other
    people's data."""
    api_token = caller_token()
    role = api_keys.acting_role(user, api_token.scope_set if api_token is not None else None)
    g.api_role = role
    if role is None:
        return None
    if roles.lacks_required_factor(user):
        raise Problem(403, str(MFA_FOR_ADMINS), kind="mfa-enrolment-required")
    return role


@token_auth.error_processor
def _auth_error(error: HTTPError) -> Response:
    if error.status_code == 403 and g.get("api_role") == SUPPORT:
        raise ReadOnlyRole()  # support called an administrator's write
    detail = AUTH_DETAILS.get(error.status_code) or error.message
    if error.status_code == 403 and caller_token() is not None and g.api_token.is_key:
        detail = NOT_ADMIN_KEY
    return problem_response(error.status_code, str(detail))


def caller() -> User:
    """The authenticated user of this request (only inside ``auth_required`` views)."""
    user = token_auth.current_user
    assert isinstance(user, User), "caller() used outside an auth_required view"
    return user


def recent_auth_required(view: View) -> View:
    """An API view (after ``auth_required``) that needs a recent proof of identity: a log-in
    token issued, or a session logged in, within ``USERHUB_REAUTHENTICATION_SECONDS``, or
    re-authenticated since (``POST /api/v1/users/me/reauthenticate``); else 401
    ``reauthentication-required``."""

    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        require_recent_auth()
        return view(*args, **kwargs)

    return wrapped  # type: ignore[return-value]


def require_recent_auth() -> None:
    """401 ``reauthentication-required`` unless the caller's token or session proved its
    holder recently (``recent_auth_required``, for a view that needs it only sometimes)."""
    api_token = caller_token()
    if api_token is not None:
        recent = reauthentication.token_is_recent(api_token.id)
    else:
        recent = session_is_recent()
    if not recent:
        raise Problem(
            401, str(REAUTHENTICATE), kind="reauthentication-required", headers=BEARER_CHALLENGE
        )


def caller_token() -> ApiToken | None:
    """The token this request came with, or None for a browser session."""
    api_token: ApiToken | None = g.get("api_token")
    return api_token
