"""One error path: every error becomes problem+json on JSON routes, an error page elsewhere.

The handlers registered here are the only place where an error gets its status: the services'
errors (``services/errors.py``, which know no HTTP) by their class, Werkzeug's HTTP errors,
APIFlask's validation errors, and the database's outages. No view repeats the mapping. The
client never sees a stack trace, SQL or a driver message: unexpected errors are logged and
answered with a generic 500 (or 503 when the database cannot be reached).
"""

from __future__ import annotations

import logging
from typing import Any

from apiflask import APIFlask, HTTPError
from flask import Response, current_app, make_response, render_template, request
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException
from werkzeug.http import HTTP_STATUS_CODES

from .. import database_errors, transactions
from ..services.errors import (
    AccountInactive,
    Conflict,
    EmailNotVerified,
    IdempotencyError,
    InsufficientScope,
    LinkError,
    MalformedKey,
    NoAddress,
    NoSuchUser,
    PasskeyNotRegistered,
    PasskeyRefused,
    ReadOnlyRole,
    ServiceError,
    TooManyFailures,
)
from .logs import request_id
from .problems import (
    PROBLEM_MIMETYPE,
    Problem,
    problem_response,
    status_detail,
    summarise_fields,
    wants_problem_json,
)
from .views import is_marked, mark

log = logging.getLogger("userhub")

PLAIN_TEXT_ERRORS = "_userhub_plain_text_errors"

# The status of each kind of refusal (the most specific class wins); anything else is 422.
SERVICE_STATUSES: dict[type[ServiceError], int] = {
    Conflict: 409,
    NoSuchUser: 404,
    TooManyFailures: 429,
    MalformedKey: 400,
    LinkError: 400,
    EmailNotVerified: 403,
    AccountInactive: 403,
    ReadOnlyRole: 403,
    InsufficientScope: 403,
    NoAddress: 409,
    IdempotencyError: 422,  # a key reused for another request, or a record unreadable
    PasskeyRefused: 401,
    PasskeyNotRegistered: 400,
}

# The error pages' headings, in the reader's language (problem documents keep the standard
# English status phrase in ``title``, which clients may compare).
PAGE_TITLES = {
    400: _l("Bad request"),
    403: _l("Forbidden"),
    404: _l("Page not found"),
    405: _l("Method not allowed"),
    409: _l("Conflict"),
    413: _l("Too large"),
    415: _l("Unsupported media type"),
    422: _l("Check your input"),
    429: _l("Too many requests"),
    500: _l("Server error"),
    503: _l("Service unavailable"),
}

# Pydantic's words for the checks of the tutorial's JSON bodies (its other messages stay as
# Pydantic writes them).
PYDANTIC_MESSAGES = {
    "Field required": _l("Field required"),
    "Input should be a valid string": _l("Input should be a valid string"),
    "String should have at least 1 character": _l("String should have at least 1 character"),
    "Input should be a valid integer": _l("Input should be a valid integer"),
    "Input should be a valid boolean": _l("Input should be a valid boolean"),
    "Extra inputs are not permitted": _l("Extra inputs are not permitted"),
}

WRITE_CLASHES = _l(
    "The change clashed with others made at the same moment, again and again. Nothing was "
    "saved; please try again in a moment."
)

# A view whose errors stay bare text, as the tutorial's ``/test_get`` answers them.
plain_text_errors = mark(PLAIN_TEXT_ERRORS)


def service_status(error: ServiceError) -> int:
    """The HTTP status for a refusal of the services (pages use it for their forms too)."""
    for cls in type(error).__mro__:
        if cls in SERVICE_STATUSES:
            return SERVICE_STATUSES[cls]
    return 422


def retry_headers(error: ServiceError) -> dict[str, str]:
    """``Retry-After`` for a refusal that ends by itself."""
    if isinstance(error, TooManyFailures):
        return {"Retry-After": str(error.retry_after)}
    return {}


def waiting(page: tuple[str, int], refusal: TooManyFailures) -> Response:
    """A form shown again because of too many failures, saying when to try again."""
    response = make_response(page)
    response.headers.update(retry_headers(refusal))
    return response


def error_page(
    status: int, detail: str | None = None, *, link: tuple[str, str] | None = None
) -> Response | tuple[str, int]:
    """The HTML error page; ``link``: the address and words of what to do about it. A view
    marked ``plain_text_errors`` keeps the tutorial's bare text body, or answers problem+json
    to a client that accepts only JSON."""
    detail = detail or status_detail(status)
    if is_marked(PLAIN_TEXT_ERRORS):
        offered = ["text/plain", PROBLEM_MIMETYPE, "application/json"]
        if request.accept_mimetypes.best_match(offered, default="text/plain") != "text/plain":
            return problem_response(status, detail)
        return current_app.response_class(detail, status=status, mimetype="text/plain")
    title = PAGE_TITLES.get(status) or HTTP_STATUS_CODES.get(status, "Error")
    page = render_template("error.html", status=status, title=title, detail=detail, link=link)
    return page, status


def error_response(
    status: int,
    detail: str,
    headers: Any = None,
    *,
    kind: str | None = None,
    errors: dict[str, list[str]] | None = None,
    members: dict[str, Any] | None = None,
) -> Response:
    """The error in the format the route speaks: problem+json or the error page."""
    if wants_problem_json():
        return problem_response(
            status, detail, kind=kind, errors=errors, headers=headers, members=members
        )
    page = current_app.make_response(error_page(status, detail))
    page.headers.update(headers or {})  # e.g. the Allow that a 405 must carry
    return page


def handle_service_error(error: ServiceError) -> Response:
    """A refusal of the services, with its status, its kind and its field messages."""
    return error_response(
        service_status(error),
        error.message,
        retry_headers(error),
        kind=error.code,
        errors=error.errors,
    )


def _validation_errors(detail: Any) -> dict[str, list[str]]:
    """APIFlask's ``{location: {field: [messages]}}`` as ``{field: [messages]}``."""
    errors: dict[str, list[str]] = {}
    if isinstance(detail, dict):
        for fields in detail.values():
            if isinstance(fields, dict):
                for field, messages in fields.items():
                    name = "body" if field == "_schema" else str(field)
                    errors.setdefault(name, []).extend(
                        str(PYDANTIC_MESSAGES.get(str(m), m)) for m in messages
                    )
    return errors


def handle_api_error(error: HTTPError) -> Response | tuple[str, int]:
    """APIFlask's error callback: our own Problems and its validation errors."""
    if isinstance(error, Problem):
        return error_response(
            error.status_code,
            error.detail,
            error.headers,
            kind=error.kind,
            errors=error.field_errors,
            members=error.members,
        )
    errors = _validation_errors(error.detail)
    detail = summarise_fields(errors) or str(error.message)
    return problem_response(error.status_code, detail, errors=errors, headers=error.headers)


def _too_large_detail() -> str:
    """Which limit a 413 hit: the whole body's, or (for a body within it) a form's."""
    limit = request.max_content_length
    length = request.content_length
    if limit is not None and length is not None and length <= limit:
        # The body fits, so Werkzeug refused a multipart form field over MAX_FORM_MEMORY_SIZE
        # or more parts than MAX_FORM_PARTS.
        return str(
            _(
                "A form field is too large or the form has too many fields: a field may hold at "
                "most %(field_bytes)d bytes and a form at most %(parts)d fields.",
                field_bytes=request.max_form_memory_size,
                parts=request.max_form_parts,
            )
        )
    return str(_("The request body is too large: the limit is %(limit)d bytes.", limit=limit))


def handle_http_exception(error: HTTPException) -> Response | tuple[str, int]:
    """Werkzeug's 4xx/5xx, in the format the route speaks."""
    status = error.code or 500
    kind = None
    if isinstance(error, CSRFError) and request.path.startswith("/api/"):
        kind = "csrf-failed"
        detail = _(
            "A write made with the browser's session cookie needs the X-CSRFToken header "
            "(the csrf_token of any page's form). Or send Authorization: Bearer <token> instead."
        )
    elif isinstance(error, CSRFError):
        kind = "csrf-failed"
        detail = _(
            "The form's security token is missing or expired. Reload the page and send "
            "the form again (Postman: GET /login first and send its csrf_token field)."
        )
    elif status == 413:
        detail = _too_large_detail()
    else:
        detail = status_detail(status, error.description or "")
    headers = {k: v for k, v in error.get_headers() if k.lower() != "content-type"}
    return error_response(status, detail, headers, kind=kind)


def handle_database_unavailable(error: DBAPIError | PoolTimeout) -> Response | tuple[str, int]:
    """A lost database connection (or no free one in the pool in time) is a 503, never a 500
    with a driver message; so is a write still deadlocked after its retries."""
    if isinstance(error, DBAPIError) and transactions.is_retryable(error):
        log.warning("write transaction gave up after %d attempts", transactions.MAX_ATTEMPTS)
        return error_response(503, str(WRITE_CLASHES), {"Retry-After": "1"}, kind="write-clashes")
    log.error("database unavailable: %s", database_errors.cause(error))
    return error_response(503, status_detail(503), {"Retry-After": "5"})


def handle_database_error(error: DBAPIError) -> Response | tuple[str, int]:
    """A driver error: 503 when it means the database went away (OperationalError, or any
    error on which SQLAlchemy found the connection dead, such as PyMySQL's InterfaceError on a
    socket the server closed); anything else is a bug, answered as one."""
    if isinstance(error, OperationalError) or error.connection_invalidated:
        return handle_database_unavailable(error)
    return handle_unexpected_error(error)


def handle_unexpected_error(error: Exception) -> Response | tuple[str, int]:
    """Log the traceback with the request id; the client learns only that it failed, and the
    id to quote (also in ``X-Request-ID``), which finds the traceback in the log."""
    if isinstance(error, HTTPException):
        return handle_http_exception(error)
    log.exception("unhandled error on %s %s", request.method, request.path)
    reference = request_id()
    detail = status_detail(500)
    if reference:
        detail += " " + _("Reference: %(reference)s.", reference=reference)
    return error_response(500, detail)


def register_errors(app: APIFlask) -> None:
    app.error_callback = handle_api_error
    app.register_error_handler(ServiceError, handle_service_error)
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(DBAPIError, handle_database_error)
    app.register_error_handler(PoolTimeout, handle_database_unavailable)
    app.register_error_handler(Exception, handle_unexpected_error)
