"""JSON bodies: a route that takes one gets a JSON object, or a problem that says what to send.

``json_route`` marks a view outside ``/api/`` as JSON (its errors become problem+json) and
checks its body; the API's blueprints check every body the same way (``api/base.py``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar, cast

from flask import request
from flask_babel import gettext as _

from .problems import DETAIL_PREFIX, Problem, status_detail
from .views import mark

F = TypeVar("F", bound=Callable[..., Any])

BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
EXAMPLE_BODY = '{"username": "zhangsan", "password": "a-long-password"}'
OPTIONAL_BODY = "_userhub_optional_body"  # the body may be empty (credentials in a header)

optional_body = mark(OPTIONAL_BODY)


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

        return mark(DETAIL_PREFIX, detail_prefix)(cast(F, wrapper))

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
            kind="missing-body",
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
            kind="malformed-json",
        ) from None
    if body is None and data.strip() != b"null":
        raise Problem(
            400,
            _(
                "The body is not valid JSON. Check quotes, commas and braces, "
                "and send the text encoded as UTF-8."
            ),
            kind="malformed-json",
        )
    if not isinstance(body, dict):
        raise Problem(
            422,
            _("The body must be a JSON object, for example %(example)s.", example=EXAMPLE_BODY),
            kind="not-a-json-object",
        )
