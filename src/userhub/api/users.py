"""``/api/v1/users``: register, read and change your own account; administrators manage all."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Response, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from ..models import User, utc_iso, utc_minute
from ..services import account_deletion, users
from ..web import devices, sessions
from ..web.problems import Problem
from ..web.ratelimits import RATE_LIMITED, count_password_check, register_limit
from .auth import (
    ADMIN,
    STAFF,
    acting_role,
    caller,
    caller_token,
    recent_auth_required,
    require_recent_auth,
    token_auth,
)
from .base import api_blueprint, known_query, no_content, paginated, shaped
from .idempotent import idempotent, replayable
from .schemas import (
    AdminUpdate,
    DeletionScheduled,
    NewUser,
    ProfileUpdate,
    UserListQuery,
    UserOut,
    UserPage,
)

bp = api_blueprint(
    "api_users",
    tag={"name": "Users", "description": "Accounts: register, read, change, administer."},
)

NEW_USER_EXAMPLE = {
    "username": "张三",
    "password": "a-long-password",
    "display_name": "Zhang San",
    "email": "zhangsan@example.com",
}

REGISTER_RESPONSES: Any = {
    201: {
        "description": "The new account (never its password)",
        "headers": {
            "Location": {
                "description": "The new account's URL, `/api/v1/users/{id}`.",
                "required": True,
                "schema": {"type": "string"},
            }
        },
    },
    409: "The username or e-mail address is taken",
    429: RATE_LIMITED,
}


def user_or_404(user_id: int) -> User:
    user = users.get_user(user_id)
    if user is None:
        raise Problem(404, _("There is no user with id %(id)d.", id=user_id))
    return user


@bp.post("/users")
@register_limit
@idempotent("POST /api/v1/users")
@bp.input(NewUser, example=NEW_USER_EXAMPLE)
@bp.output(UserOut, status_code=201, description="The new account (never its password)")
@bp.doc(summary="Register", responses=REGISTER_RESPONSES)
def create_user(json_data: NewUser) -> Response:
    """Create an account. Anyone may register; the password is stored as an argon2id hash.
    With an `Idempotency-Key`, a retry of this request gets the first answer again."""

    def register(before_commit: Callable[[User], None] | None) -> User:
        return users.register_user(
            json_data.username,
            json_data.password,
            display_name=json_data.display_name,
            email=json_data.email,
            before_commit=before_commit,
        )

    def created(user: User) -> Response:
        return shaped(UserOut, user, 201, {"Location": url_for(".get_user", user_id=user.id)})

    return replayable(register, created)


@bp.get("/users/me")
@bp.auth_required(token_auth)
@bp.output(UserOut)
@bp.doc(summary="My account")
def get_me() -> User:
    """The account of the token (or session) making the call."""
    return caller()


@bp.patch("/users/me")
@bp.auth_required(token_auth)
@bp.input(ProfileUpdate, example={"display_name": "Zhang San"})
@bp.output(UserOut)
@bp.doc(
    summary="Change my account",
    responses={409: "The e-mail address is taken", 429: RATE_LIMITED},
)
def update_me(json_data: ProfileUpdate) -> User:
    """Change the display name or e-mail address (null removes them).

    A new address replacing one is not the account's until the link mailed to it is followed:
    meanwhile it shows as `pending_email`, and the old address is told, with a link that undoes
    the change. A first address is the account's at once, with `email_verified` false until its
    link is followed.

    A new ``password`` needs ``current_password``; it ends every other session and revokes
    every other token of the account (the token making this call keeps working). Checking
    `current_password` counts like a log-in: against the per-IP log-in limit, and a wrong one
    as a failed log-in of the account (429 with `Retry-After` when over either limit)."""
    changes = json_data.given()
    changes.pop("current_password", None)
    user = caller()
    if "password" in changes or "email" in changes:
        require_recent_auth()
    if changes.get("password") is not None:
        count_password_check()
    users.update_user(
        user,
        changes,
        current_password=json_data.current_password,
        device=devices.device_for(user.username_key),
        keep_token=caller_token(),
    )
    if "password" in changes and caller_token() is None:
        sessions.log_in(user)  # every session ended: this browser carries on in a new one
    return user


@bp.delete("/users/me")
@bp.auth_required(token_auth)
@recent_auth_required
@bp.output(DeletionScheduled, status_code=202)
@bp.doc(
    summary="Delete my account",
    responses={
        202: "Deletion scheduled: the account can no longer be used",
        401: "Not authenticated, or not recently (`/problems/reauthentication-required`)",
        403: "An API key without the write scope",
    },
)
def delete_me() -> dict[str, Any]:
    """Ask for your account's deletion. It is deleted for good after the grace period
    (`USERHUB_DELETION_GRACE_DAYS`, 14 days by default), with its e-mail address, second
    factors and security log; until then it cannot log in, and you may keep it. Every session,
    token (this one too) and API key ends now. Needs a recent proof of identity."""
    due = account_deletion.request(caller())
    detail = _(
        "Your account is to be deleted for good on %(due)s. It can no longer be used: this "
        "token and every other one, your API keys and your sessions have ended. To keep it, "
        'log in again with "cancel_deletion": true (POST /api/v1/tokens), or follow the link '
        "mailed to the account's e-mail address, if it has one.",
        due=utc_minute(due),
    )
    return {"deletion_due_at": due, "detail": detail}


SEARCH_HINT = _l(
    "To find accounts by username or e-mail address, use q, e.g. ?q=zhang; to filter them, use "
    "role, status, verified, created_from or created_to."
)


@bp.get("/users")
@bp.auth_required(token_auth, roles=STAFF)
@known_query(UserListQuery, hint=SEARCH_HINT)
@bp.input(UserListQuery, location="query")
@bp.output(UserPage)
@bp.doc(
    summary="List or search users (admin, support)",
    responses={400: "A query parameter this operation does not take (search with `q`)"},
)
def list_users(query_data: UserListQuery) -> dict[str, Any]:
    """One page of accounts in id order, the total, and links to the neighbouring pages. With
    `q`, only the accounts whose username or e-mail address contains it (ignoring case); `role`,
    `status`, `verified`, `created_from` and `created_to` narrow the list further, all together.
    The links keep them."""
    query = query_data
    where = users.UserFilter(
        search=query.q or None,
        role=query.role,
        status=query.status,
        verified=query.verified,
        created_from=query.created_from,
        created_to=query.created_to,
    )
    items, total = users.list_users(query.page, query.per_page, where=where)
    filters = {
        "q": where.search,
        "role": where.role,
        "status": where.status,
        "verified": None if where.verified is None else str(where.verified).lower(),
        "created_from": where.created_from and utc_iso(where.created_from),
        "created_to": where.created_to and utc_iso(where.created_to),
    }
    return paginated(".list_users", items, total, query.page, query.per_page, **filters)


@bp.get("/users/<int:user_id>")
@bp.auth_required(token_auth)
@bp.output(UserOut)
@bp.doc(
    summary="Get a user (admin, support, or the owner)",
    responses={403: "Not yours", 404: "No user"},
)
def get_user(user_id: int) -> User:
    """Administrators and support may read any account; everyone else only their own."""
    me = caller()
    if me.id != user_id and acting_role(me) is None:
        raise Problem(403, _("You can only read your own account (GET /api/v1/users/me)."))
    return user_or_404(user_id)


@bp.patch("/users/<int:user_id>")
@bp.auth_required(token_auth, roles=[ADMIN])
@bp.input(AdminUpdate, example={"is_admin": True})
@bp.output(UserOut)
@bp.doc(
    summary="Change a user (admin)",
    responses={
        404: "No user",
        409: "E-mail taken, removing your own admin rights, or deactivating your own account",
    },
)
def update_user(user_id: int, json_data: AdminUpdate) -> User:
    """Change any field, all in one commit; a new password needs no current one here and ends
    the user's sessions and tokens. `is_support` gives or takes the read-only staff role;
    `is_active` false deactivates the account (no log-in by any route, every session, token
    and key ended at once, its data kept), true reactivates it. Administrators cannot remove
    their own admin rights, nor deactivate themselves."""
    user = user_or_404(user_id)
    users.update_user(user, json_data.given(), by_admin=caller(), keep_token=caller_token())
    return user


@bp.delete("/users/<int:user_id>")
@bp.auth_required(token_auth, roles=[ADMIN])
@bp.doc(
    summary="Delete a user (admin)",
    responses={204: "Deleted, with its tokens", 404: "No user", 409: "Your own account"},
)
def delete_user(user_id: int) -> Response:
    """Delete an account and revoke its tokens. Administrators cannot delete themselves here."""
    user = user_or_404(user_id)
    users.delete_user(user, by_admin=caller())
    return no_content()
