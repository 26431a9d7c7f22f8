"""Problem documents (RFC 9457): what a JSON route answers when something goes wrong.

Every problem has a ``type`` a client can switch on: ``/problems/<slug>``, one slug per kind
of error (``PROBLEM_TYPES``), documented in the OpenAPI document and served as a page at that
address. ``title`` stays the standard English status phrase, which clients may compare;
``detail`` says, in the reader's language, what went wrong and what to do.

Which routes speak JSON: everything under ``/api/`` and the views marked with
``json_bodies.json_route``. A marked view may frame every detail (``/save_data_to_mysql`` keeps
the tutorial's ``Commit Status:Failed, Message:`` wording).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from apiflask import HTTPError
from flask import Response, current_app, request
from flask_babel import LazyString
from flask_babel import lazy_gettext as _l
from werkzeug.http import HTTP_STATUS_CODES

from .views import current_view

PROBLEM_MIMETYPE = "application/problem+json"
PROBLEM_TYPES_PATH = "/problems/"
DETAIL_PREFIX = "_userhub_problem_prefix"  # the mark json_route leaves on a view


@dataclass(frozen=True)
class ProblemType:
    """One kind of error: its slug (the end of its ``type`` URI), status and meaning."""

    slug: str
    status: int
    meaning: LazyString

    @property
    def uri(self) -> str:
        return PROBLEM_TYPES_PATH + self.slug


PROBLEM_TYPES = {
    kind.slug: kind
    for kind in (
        ProblemType("bad-request", 400, _l("The request is not one this route understands.")),
        ProblemType("missing-body", 400, _l("The request has no body; send a JSON object.")),
        ProblemType(
            "malformed-json", 400, _l("The body is not valid JSON, or is nested too deeply.")
        ),
        ProblemType(
            "csrf-failed",
            400,
            _l("A write made with the browser's session lacks its CSRF token, or it expired."),
        ),
        ProblemType(
            "idempotency-key-malformed",
            400,
            _l("The Idempotency-Key header is not 1–255 characters of printable ASCII."),
        ),
        ProblemType(
            "unknown-parameter",
            400,
            _l("The query string has a parameter this address does not take."),
        ),
        ProblemType(
            "host-not-allowed",
            400,
            _l("The request names a host (Host, X-Forwarded-Host) this server does not serve."),
        ),
        ProblemType(
            "invalid-link",
            400,
            _l("The mailed link is not valid: used already, replaced by a newer one, or cut."),
        ),
        ProblemType("expired-link", 400, _l("The mailed link has expired; ask for a new one.")),
        ProblemType(
            "passkey-not-registered",
            400,
            _l("A new passkey's answer was not valid, or its challenge unknown, used or expired."),
        ),
        ProblemType("unauthenticated", 401, _l("No valid token or session came with the request.")),
        ProblemType("bad-credentials", 401, _l("The username or the password is wrong.")),
        ProblemType(
            "mfa-required",
            401,
            _l(
                "The password is right and the account has a second factor: send the challenge "
                "back with a code (or a recovery code) to get the token."
            ),
        ),
        ProblemType(
            "invalid-challenge",
            401,
            _l("The log-in's challenge is unknown, used, or expired: log in again."),
        ),
        ProblemType(
            "reauthentication-required",
            401,
            _l(
                "This change needs a recent proof of identity: re-authenticate "
                "(POST /api/v1/users/me/reauthenticate), or log in again, and repeat it."
            ),
        ),
        ProblemType(
            "passkey-refused",
            401,
            _l("The passkey's answer could not be verified; try again or use the password."),
        ),
        ProblemType("forbidden", 403, _l("The caller may not do this.")),
        ProblemType(
            "insufficient-scope",
            403,
            _l("The API key's scopes do not cover this call (a read key cannot write)."),
        ),
        ProblemType(
            "mfa-enrolment-required",
            403,
            _l(
                "Administrators and support accounts must add a second factor here before "
                "using the staff calls."
            ),
        ),
        ProblemType(
            "email-not-verified",
            403,
            _l("Log-in needs a verified e-mail address here; follow the mailed link first."),
        ),
        ProblemType(
            "account-deactivated",
            403,
            _l("An administrator deactivated the account: it cannot log in until reactivated."),
        ),
        ProblemType(
            "account-pending-deletion",
            403,
            _l(
                "The account is to be deleted, as its owner asked: to keep it, log in again "
                "and cancel the deletion, or follow the mailed link."
            ),
        ),
        ProblemType("not-found", 404, _l("There is nothing at this address.")),
        ProblemType(
            "account-gone", 404, _l("The account was deleted while the request was running.")
        ),
        ProblemType("method-not-allowed", 405, _l("This address does not accept that method.")),
        ProblemType("conflict", 409, _l("The change clashes with data already stored.")),
        ProblemType("username-taken", 409, _l("Another account already has this username.")),
        ProblemType("email-taken", 409, _l("Another account already uses this e-mail address.")),
        ProblemType("passkey-taken", 409, _l("This passkey is registered already.")),
        ProblemType(
            "no-email-address", 409, _l("The account has no e-mail address to send a link to.")
        ),
        ProblemType(
            "own-admin-rights", 409, _l("An administrator cannot remove their own admin rights.")
        ),
        ProblemType(
            "own-account", 409, _l("An administrator cannot delete their own account here.")
        ),
        ProblemType(
            "own-deactivation", 409, _l("An administrator cannot deactivate their own account.")
        ),
        ProblemType(
            "totp-already-enabled",
            409,
            _l("The account already has an authenticator app; remove it before adding another."),
        ),
        ProblemType(
            "no-totp-enrolment",
            409,
            _l("No authenticator app is being set up: start again and scan the new QR code."),
        ),
        ProblemType(
            "totp-not-enabled",
            409,
            _l("The account has no authenticator app, so no recovery codes to replace."),
        ),
        ProblemType(
            "request-timeout", 408, _l("The body did not arrive in time; the request was dropped.")
        ),
        ProblemType("body-too-large", 413, _l("The body, or a form field, is over the limit.")),
        ProblemType("unsupported-media-type", 415, _l("The body is not sent as application/json.")),
        ProblemType(
            "invalid-fields", 422, _l("Fields are missing, of the wrong type or break a rule.")
        ),
        ProblemType("not-a-json-object", 422, _l("The body is JSON, but not a JSON object.")),
        ProblemType(
            "wrong-code",
            422,
            _l("The authenticator code is wrong, or the phone's clock is off."),
        ),
        ProblemType(
            "idempotency-key-reused",
            422,
            _l("The Idempotency-Key was used for a different request in the last 24 hours."),
        ),
        ProblemType(
            "idempotency-record-unreadable",
            422,
            _l("The answer kept for the Idempotency-Key cannot be read back."),
        ),
        ProblemType("rate-limited", 429, _l("Too many attempts from this address.")),
        ProblemType(
            "too-many-failed-log-ins", 429, _l("Too many failed log-ins for this account lately.")
        ),
        ProblemType("server-error", 500, _l("An unexpected error, logged with a reference.")),
        ProblemType("database-unavailable", 503, _l("The database cannot be reached right now.")),
        ProblemType(
            "write-clashes",
            503,
            _l("The change clashed with others made at the same moment; nothing was saved."),
        ),
    )
}

# The type of a problem nothing more specific is known about.
STATUS_TYPES = {
    400: "bad-request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    408: "request-timeout",
    409: "conflict",
    413: "body-too-large",
    415: "unsupported-media-type",
    422: "invalid-fields",
    429: "rate-limited",
    500: "server-error",
    503: "database-unavailable",
}
NO_TYPE = "about:blank"  # RFC 9457: nothing to add to the status (a status we never answer)


def type_uri(status: int, kind: str | None = None) -> str:
    """The ``type`` of a problem: its kind's URI, else the status's, else ``about:blank``."""
    slug = kind or STATUS_TYPES.get(status)
    return PROBLEM_TYPES[slug].uri if slug else NO_TYPE


# Plain words for the statuses a user can meet; the page and the problem share them.
DETAILS = {
    400: _l("The request could not be understood. Check its fields and try again."),
    403: _l("You are not allowed to do this."),
    404: _l("There is nothing at this address."),
    405: _l("This address does not accept that method."),
    408: _l("The request body did not arrive in time. Check the connection and send it again."),
    413: _l("The request body is too large."),
    415: _l("Send the body as JSON with the header Content-Type: application/json."),
    500: _l("Something went wrong on our side. It has been logged; please try again later."),
    503: _l("The database cannot be reached right now. Please try again in a moment."),
}


def status_detail(status: int, fallback: str = "") -> str:
    """The plain words for ``status`` in the reader's language."""
    detail = DETAILS.get(status)
    return str(detail) if detail is not None else fallback or HTTP_STATUS_CODES.get(status, "")


class Problem(HTTPError):
    """An error a view raises on purpose, with a detail written for the user; ``kind`` is a
    slug of ``PROBLEM_TYPES`` (by default, the status's)."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        kind: str | None = None,
        errors: dict[str, list[str]] | None = None,
        headers: dict[str, str] | None = None,
        members: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(status, detail=detail, headers=headers)
        self.field_errors = errors or {}
        self.kind = kind
        self.members = members or {}  # extension members of this kind (RFC 9457, 3.2)


def view_detail_prefix() -> str | None:
    """The JSON mark of the view this request targets (None: the view is not a JSON route)."""
    view = current_view(or_marked=DETAIL_PREFIX)
    return getattr(view, DETAIL_PREFIX, None)


def wants_problem_json() -> bool:
    return request.path.startswith("/api/") or view_detail_prefix() is not None


def problem_document(status: int, detail: str, *, kind: str | None = None) -> dict[str, Any]:
    """The members every problem has (the OpenAPI examples show the same)."""
    return {
        "type": type_uri(status, kind),
        "title": HTTP_STATUS_CODES.get(status, "Error"),
        "status": status,
        "detail": detail,
    }


def summarise_fields(errors: dict[str, list[str]]) -> str:
    """Field errors in one line for ``detail``: ``username: too long; password: required``."""
    return "; ".join(f"{field}: {', '.join(messages)}" for field, messages in errors.items())


def problem_response(
    status: int,
    detail: str,
    *,
    kind: str | None = None,
    errors: dict[str, list[str]] | None = None,
    headers: Any = None,
    members: dict[str, Any] | None = None,
) -> Response:
    """An RFC 9457 problem document as a response; ``members``: its kind's extension members."""
    body = {
        **problem_document(status, (view_detail_prefix() or "") + detail, kind=kind),
        **(members or {}),
    }
    if errors:
        body["errors"] = [
            {"field": field, "message": message}
            for field, messages in errors.items()
            for message in messages
        ]
    response = current_app.response_class(
        current_app.json.dumps(body, ensure_ascii=False), status=status, mimetype=PROBLEM_MIMETYPE
    )
    response.headers.update(headers or {})
    return response
