"""Mailed links, for API clients: verify an address, reset a forgotten password, confirm or
undo a change of address. Each link in a mail opens a page (``pages/email.py``) that does the
same with a button; a client that reads the link itself posts its ``token`` here."""

from __future__ import annotations

from typing import Any

from flask import Response
from flask_babel import gettext as _

from ..models import User
from ..services import email_flows
from ..services.errors import EmailTaken, ExpiredLink, InvalidLink, NoAddress, ServiceError
from ..web import devices
from ..web.json_bodies import optional_body
from ..web.problems import PROBLEM_MIMETYPE, Problem, problem_document
from ..web.ratelimits import RATE_LIMITED, mail_limit
from .auth import ADMIN, caller, token_auth
from .base import api_blueprint, no_content
from .openapi import PROBLEM_REF
from .schemas import (
    Accepted,
    AccountNamed,
    LinkToken,
    PasswordResetCompletion,
    UserOut,
)
from .users import user_or_404

bp = api_blueprint(
    "api_email",
    tag={
        "name": "E-mail",
        "description": "Verify an address, reset a forgotten password, change the address.",
    },
)
TOKEN_EXAMPLE = {"token": "qR4m0n9Xk2vLs8YtG1cHbWz7eJpA5dNf3uIoKxE6rTy"}
# The database is read and written: out of reach, 503 (with Retry-After, added by openapi.py).
UNAVAILABLE: Any = "The database cannot be reached right now"


def refusal(status: int, description: str, *refusals: ServiceError) -> Any:
    """A documented answer whose examples are the problems a client really gets, each of its
    own kind (``type``), so the document says more than the status's generic kind."""
    examples = {
        error.code: {"value": problem_document(status, error.message, kind=error.code)}
        for error in refusals
    }
    return {
        "description": description,
        "content": {PROBLEM_MIMETYPE: {"schema": PROBLEM_REF, "examples": examples}},
    }


BAD_LINK = refusal(
    400,
    "The link is not valid (`/problems/invalid-link`: used already, replaced by a newer one, "
    "or cut) or has expired (`/problems/expired-link`); nothing was changed. Also a missing "
    "or malformed JSON body (`/problems/missing-body`, `/problems/malformed-json`).",
    InvalidLink(),
    ExpiredLink(),
)


def _account_named(body: AccountNamed) -> dict[str, str | None]:
    """``email`` or ``username``: exactly one of them."""
    if (body.email is None) == (body.username is None):
        message = _("Name the account by email or by username (one of them).")
        raise Problem(422, message, errors={"email": [message], "username": [message]})
    return {"email": body.email, "username": body.username}


def accepted(detail: str) -> tuple[dict[str, str], int]:
    return {"detail": detail}, 202


@bp.post("/email-verification")
@bp.input(LinkToken, example=TOKEN_EXAMPLE)
@bp.output(UserOut, description="The account, its address verified (`email_verified`)")
@bp.doc(summary="Verify an e-mail address", responses={400: BAD_LINK, 503: UNAVAILABLE})
def verify_email(json_data: LinkToken) -> User:
    """Confirm the address a verification link was mailed to. No log-in needed: the link is
    the proof. It works once."""
    return email_flows.verify_email(json_data.token)


@bp.post("/email-verification/requests")
@mail_limit
@bp.input(AccountNamed, example={"email": "zhangsan@example.com"})
@bp.output(Accepted, status_code=202)
@bp.doc(summary="Mail a new verification link (no log-in needed)", responses={429: RATE_LIMITED})
def request_verification(json_data: AccountNamed) -> tuple[dict[str, str], int]:
    """For an account that cannot log in until its address is verified
    (`USERHUB_REQUIRE_VERIFIED_EMAIL`): name it by `email` or `username`. The answer is the same,
    and comes after the same time, whether or not such an account exists."""
    email_flows.request_verification(**_account_named(json_data))
    return accepted(
        _("If an account with an unverified address matches, a new link is on its way.")
    )


@bp.post("/users/me/email-verification")
@optional_body  # nothing to send: the account is the caller's
@mail_limit
@bp.auth_required(token_auth)
@bp.output(
    Accepted,
    status_code=202,
    description="Accepted: a link is on its way, unless the address is verified already",
)
@bp.doc(
    summary="Send me a new verification link",
    responses={
        409: refusal(
            409,
            "The account has no e-mail address (`/problems/no-email-address`): add one with "
            "`PATCH /api/v1/users/me`",
            NoAddress(),
        ),
        429: RATE_LIMITED,
    },
)
def resend_verification() -> tuple[dict[str, str], int]:
    """Mail a new link to the account's address (the earlier one stops working). Nothing is
    sent if the address is verified already, or if it had its share of mail within the hour
    (`USERHUB_RATELIMIT_MAIL_ADDRESS`): the answer is the same 202. Requests from one client
    address are limited by `USERHUB_RATELIMIT_MAIL` (429)."""
    email_flows.send_verification(caller())
    return accepted(_("If your address still needs it, a new link is on its way."))


@bp.post("/password-reset")
@mail_limit
@bp.input(AccountNamed, example={"email": "zhangsan@example.com"})
@bp.output(
    Accepted,
    status_code=202,
    description="Accepted: the same answer, after the same time, whether or not an account "
    "with an address matches",
)
@bp.doc(
    summary="Forgot my password: mail a reset link",
    responses={429: RATE_LIMITED, 503: UNAVAILABLE},
)
def request_password_reset(json_data: AccountNamed) -> tuple[dict[str, str], int]:
    """Name the account by `email` or `username`. The answer is the same 202, and comes after
    the same time, whether or not such an account exists, so nobody learns which addresses
    have an account here; a link goes only to a real account's address (and not past
    `USERHUB_RATELIMIT_MAIL_ADDRESS`). It works once, for `USERHUB_PASSWORD_RESET_TTL_SECONDS`
    (1 h by default), and dies when the password changes any other way. Requests from one
    client address are limited by `USERHUB_RATELIMIT_MAIL` (429)."""
    email_flows.request_password_reset(**_account_named(json_data))
    return accepted(
        _(
            "If an account with an e-mail address matches, a link to reset its password is on "
            "its way to that address."
        )
    )


@bp.post("/users/<int:user_id>/password-reset")
@optional_body  # nothing to send: the account is in the address
@bp.auth_required(token_auth, roles=[ADMIN])
@bp.output(Accepted, status_code=202, description="Accepted: a reset link is on its way")
@bp.doc(
    summary="Mail a user a password-reset link (admin)",
    responses={
        404: "No user",
        409: refusal(
            409,
            "The account has no e-mail address (`/problems/no-email-address`): set one with "
            "`PATCH /api/v1/users/{id}`, or set a password there",
            NoAddress(),
        ),
    },
)
def send_reset(user_id: int) -> tuple[dict[str, str], int]:
    """Mail the account a link to set a new password (as a forgotten-password request would,
    without its limits), and end every session, token and key of the account at once, so
    whoever holds them must log in again. The password keeps working until the link sets a new
    one: to stop log-ins at once, deactivate the account (`PATCH` with `"is_active": false`).
    The account's security log shows a `password-reset-sent` event naming the administrator."""
    email_flows.send_reset_by_admin(user_or_404(user_id), by=caller())
    return accepted(_("A link to reset the password is on its way to the account's address."))


@bp.post("/password-reset/complete")
@bp.input(PasswordResetCompletion, example={**TOKEN_EXAMPLE, "password": "a-new-long-password"})
@bp.doc(
    summary="Set a new password with a reset link",
    responses={
        204: "Changed: every session and token of the account ended",
        400: BAD_LINK,
        503: UNAVAILABLE,
    },
)
def complete_password_reset(json_data: PasswordResetCompletion) -> Response:
    """Set the new password. Every session and token of the account ends, a notice is mailed,
    and the link stops working (as does any other reset link)."""
    email_flows.reset_password(json_data.token, json_data.password)
    return no_content()


@bp.post("/email-change/confirm")
@bp.input(LinkToken, example=TOKEN_EXAMPLE)
@bp.output(UserOut, description="The account with its new address, verified")
@bp.doc(
    summary="Confirm a new e-mail address",
    responses={
        400: BAD_LINK,
        409: refusal(
            409,
            "Another account took the address meanwhile (`/problems/email-taken`)",
            EmailTaken(),
        ),
        503: UNAVAILABLE,
    },
)
def confirm_email_change(json_data: LinkToken) -> User:
    """Make the pending address (`pending_email`) the account's, verified."""
    return email_flows.confirm_email_change(json_data.token)


@bp.post("/email-change/undo")
@bp.input(LinkToken, example=TOKEN_EXAMPLE)
@bp.output(UserOut, description="The account with its old address again, verified")
@bp.doc(
    summary="This was not me: undo a change of address",
    responses={
        400: BAD_LINK,
        409: refusal(
            409,
            "Another account took the old address meanwhile (`/problems/email-taken`)",
            EmailTaken(),
        ),
        503: UNAVAILABLE,
    },
)
def undo_email_change(json_data: LinkToken) -> User:
    """From the link mailed to the old address: it is the account's again, every session and
    token ends, and a password-reset link goes to it."""
    return email_flows.undo_email_change(json_data.token)


@bp.post("/unlock")
@bp.input(LinkToken, example=TOKEN_EXAMPLE)
@bp.doc(
    summary="Unlock my account",
    responses={
        204: "Unlocked: this client (its device cookie) logs in as the owner's",
        400: BAD_LINK,
        503: UNAVAILABLE,
    },
)
def unlock(json_data: LinkToken) -> Response:
    """From the mail sent when strangers' wrong passwords locked the account: their failures
    are forgotten, and this client (its device cookie) counts as the owner's from now on."""
    user = email_flows.unlock(json_data.token)
    devices.remember(user.username_key)
    return no_content()
