"""One error scheme: problem+json for JSON routes, HTML pages for pages.

JSON routes (everything under ``/api/`` and views marked with ``json_route``) answer errors as
RFC 9457 ``application/problem+json``. Pages answer with an error page in the site layout. The
client never sees a stack trace, SQL or a driver message: unexpected errors are logged and
answered with a generic 500 (or 503 when the database cannot be reached).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar, cast

from apiflask import APIFlask, HTTPError
from flask import Response, current_app, render_template, request
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException
from werkzeug.http import HTTP_STATUS_CODES

from .. import transactions
from ..services.users import Conflict, NoSuchUser, UserError
from .logs import request_id

log = logging.getLogger("userhub")

PROBLEM_MIMETYPE = "application/problem+json"
PROBLEM_ATTRIBUTE = "_userhub_problem_prefix"

F = TypeVar("F", bound=Callable[..., Any])

BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})

EXAMPLE_BODY = '{"username": "zhangsan", "password": "a-long-password"}'


# Plain words for the statuses a user can meet; the page and the problem share them.
DETAILS = {
    400: _l("The request could not be understood. Check its fields and try again."),
    403: _l("You are not allowed to do this."),
    404: _l("There is nothing at this address."),
    405: _l("This address does not accept that method."),
    413: _l("The request body is too large."),
    415: _l("Send the body as JSON with the header Content-Type: application/json."),
    500: _l("Something went wrong on our side. It has been logged; please try again later."),
    503: _l("The database cannot be reached right now. Please try again in a moment."),
}

# The error pages' headings, in the reader's language (problem documents keep the standard
# English status phrase in ``title``, which clients may compare).
PAGE_TITLES = {
    400: _l("Bad request"),
    403: _l("Forbidden"),
    404: _l("Page not found"),
    405: _l("Method not allowed"),
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


def status_detail(status: int, fallback: str = "") -> str:
    """The plain words for ``status`` in the reader's language."""
    detail = DETAILS.get(status)
    return str(detail) if detail is not None else fallback or HTTP_STATUS_CODES.get(status, "")


class Problem(HTTPError):
    """An error a view raises on purpose, with a detail written for the user."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        errors: dict[str, list[str]] | None = None,
        type_: str = "about:blank",
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(status, detail=detail, headers=headers)
        self.field_errors = errors or {}
        self.type = type_


def json_route(detail_prefix: str = "") -> Callable[[F], F]:
    """Mark a view as JSON: its errors become problem+json, and a body it receives must be JSON.

    ``detail_prefix`` frames every error detail, so the tutorial's ``/save_data_to_mysql`` can
    keep its ``Commit Status:Failed, Message:`` wording on failures.
    """

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            require_json_body()
            return view(*args, **kwargs)

        setattr(wrapper, PROBLEM_ATTRIBUTE, detail_prefix)
        return cast(F, wrapper)

    return decorate


def require_json_body() -> None:
    """For a request that carries a body (POST, PUT, PATCH): it must be a JSON object."""
    if request.method in BODY_METHODS:
        require_json_object()


def require_json_object() -> None:
    """400 for no body or broken JSON, 415 for a body that is not JSON, 422 for a non-object.

    (Bodies over the limit never get here: Werkzeug and ``request_limits`` answer 413.)"""
    data = request.get_data(cache=True)
    if not data:
        raise Problem(
            400,
            _(
                "The request has no body. Send a JSON object, for example %(example)s.",
                example=EXAMPLE_BODY,
            ),
        )
    if not request.is_json:
        raise Problem(415, status_detail(415))
    try:
        body = request.get_json(silent=True)
    except RecursionError:  # the json module gives up on deep nesting with this, not ValueError
        raise Problem(
            400,
            _(
                "The JSON is nested too deeply to read. Send a flat object like %(example)s.",
                example=EXAMPLE_BODY,
            ),
        ) from None
    if body is None and data.strip() != b"null":
        raise Problem(
            400,
            _(
                "The body is not valid JSON. Check quotes, commas and braces, "
                "and send the text encoded as UTF-8."
            ),
        )
    if not isinstance(body, dict):
        raise Problem(
            422,
            _("The body must be a JSON object, for example %(example)s.", example=EXAMPLE_BODY),
        )


def _view_detail_prefix() -> str | None:
    """The JSON marker of the view this request targets (also for 405s, where no view ran)."""
    view = current_app.view_functions.get(request.endpoint or "")
    if view is None:
        for rule in current_app.url_map.iter_rules():
            if rule.rule == request.path:
                view = current_app.view_functions.get(rule.endpoint)
                if hasattr(view, PROBLEM_ATTRIBUTE):
                    break
    return getattr(view, PROBLEM_ATTRIBUTE, None)


def wants_problem_json() -> bool:
    return request.path.startswith("/api/") or _view_detail_prefix() is not None


def problem_document(status: int, detail: str, *, type_: str = "about:blank") -> dict[str, Any]:
    """The members every problem has (the OpenAPI examples show the same)."""
    return {
        "type": type_,
        "title": HTTP_STATUS_CODES.get(status, "Error"),
        "status": status,
        "detail": detail,
    }


def summarise_fields(errors: dict[str, list[str]]) -> str:
    """Field errors in one line for ``detail``: ``username: too long; password: required``."""
    return "; ".join(f"{field}: {', '.join(messages)}" for field, messages in errors.items())


def user_problem(exc: UserError) -> Problem:
    """A refused account change: 409 when it clashes with other data, 404 when the account was
    deleted meanwhile, else 422."""
    if isinstance(exc, Conflict):
        return Problem(409, exc.message, errors=exc.errors)
    if isinstance(exc, NoSuchUser):
        return Problem(404, exc.message)
    return Problem(422, exc.message, errors=exc.errors)


def problem_response(
    status: int,
    detail: str,
    *,
    errors: dict[str, list[str]] | None = None,
    type_: str = "about:blank",
    headers: Any = None,
) -> Response:
    """An RFC 9457 problem document as a response."""
    body = problem_document(status, (_view_detail_prefix() or "") + detail, type_=type_)
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


def error_page(status: int, detail: str | None = None) -> Response | tuple[str, int]:
    """The HTML error page. ``/test_get`` keeps the tutorial's bare text body, or answers
    problem+json to a client that accepts only JSON."""
    detail = detail or status_detail(status)
    if request.endpoint == "tutorial.test_get":
        offered = ["text/plain", PROBLEM_MIMETYPE, "application/json"]
        if request.accept_mimetypes.best_match(offered, default="text/plain") != "text/plain":
            return problem_response(status, detail)
        return current_app.response_class(detail, status=status, mimetype="text/plain")
    title = PAGE_TITLES.get(status) or HTTP_STATUS_CODES.get(status, "Error")
    return render_template("error.html", status=status, title=title, detail=detail), status


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
        if not wants_problem_json():
            return error_page(error.status_code, error.detail)
        return problem_response(
            error.status_code,
            error.detail,
            errors=error.field_errors,
            type_=error.type,
            headers=error.headers,
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
    if isinstance(error, CSRFError) and request.path.startswith("/api/"):
        detail = _(
            "A write made with the browser's session cookie needs the X-CSRFToken header "
            "(the csrf_token of any page's form). Or send Authorization: Bearer <token> instead."
        )
    elif isinstance(error, CSRFError):
        detail = _(
            "The form's security token is missing or expired. Reload the page and send "
            "the form again (Postman: GET /login first and send its csrf_token field)."
        )
    elif status == 413:
        detail = _too_large_detail()
    else:
        detail = status_detail(status, error.description or "")
    headers = {k: v for k, v in error.get_headers() if k.lower() != "content-type"}
    return error_response(status, detail, headers)


def error_response(status: int, detail: str, headers: dict[str, str] | None = None) -> Response:
    """The error in the format the route speaks: problem+json or the error page."""
    if wants_problem_json():
        return problem_response(status, detail, headers=headers)
    page = current_app.make_response(error_page(status, detail))
    page.headers.update(headers or {})  # e.g. the Allow that a 405 must carry
    return page


WRITE_CLASHES = _l(
    "The change clashed with others made at the same moment, again and again. Nothing was "
    "saved; please try again in a moment."
)


def handle_database_unavailable(error: DBAPIError | PoolTimeout) -> Response | tuple[str, int]:
    """A lost database connection (or no free one in the pool in time) is a 503, never a 500
    with a driver message; so is a write still deadlocked after its retries."""
    if isinstance(error, DBAPIError) and transactions.is_retryable(error):
        log.warning("write transaction gave up after %d attempts", transactions.MAX_ATTEMPTS)
        return error_response(503, str(WRITE_CLASHES), {"Retry-After": "1"})
    log.error("database unavailable: %s", type(getattr(error, "orig", None) or error).__name__)
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
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(DBAPIError, handle_database_error)
    app.register_error_handler(PoolTimeout, handle_database_unavailable)
    app.register_error_handler(Exception, handle_unexpected_error)
