"""The ``Idempotency-Key`` header on the API's creating POSTs (see ``services/idempotency.py``).

A view takes the header in two steps: ``@idempotent(operation)`` checks the key before anything
else runs (a malformed key is a 400 before the body is validated or a password hashed), and the
view answers through ``replayable``, which replays or records.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Response, current_app, g, request
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from ..services import idempotency
from ..services.errors import Conflict

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger(__name__)
ATTEMPT = "idempotency_attempt"  # where @idempotent leaves the request's Attempt, in ``g``


def idempotent(operation: str, *, credentials_header: bool = False) -> Callable[[F], F]:
    """Accept ``Idempotency-Key`` on this view. ``credentials_header``: the ``Authorization``
    header is part of the request a retry must repeat (HTTP Basic log-ins)."""
    if operation not in idempotency.OPERATIONS:
        raise ValueError(f"{operation!r} is not in idempotency.OPERATIONS (the OpenAPI list)")

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            setattr(g, ATTEMPT, _attempt(operation, credentials_header))
            return view(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def _attempt(operation: str, credentials_header: bool) -> idempotency.Attempt | None:
    """The request's key as an Attempt; None without the header; MalformedKey (400)."""
    key = request.headers.get(idempotency.HEADER)
    if key is None:
        return None
    credentials = request.headers.get("Authorization") if credentials_header else None
    return idempotency.Attempt.of(
        operation,
        key,
        idempotency.canonical_request(credentials, request.get_data(cache=True)),
        current_app.secret_key,  # type: ignore[arg-type]
    )


def _earlier(attempt: idempotency.Attempt) -> Response | None:
    """The first answer to this key, replayed; KeyReused (422) if the key named another
    request."""
    stored = idempotency.earlier(attempt)
    if stored is None:
        return None
    response = Response(stored.body, status=stored.status, headers=stored.headers)
    response.headers[idempotency.REPLAYED_HEADER] = "true"
    return response


def _stored(response: Response) -> idempotency.StoredResponse:
    headers = {name: value for name, value in response.headers.items() if name != "Content-Length"}
    return idempotency.StoredResponse(response.status_code, headers, response.get_data())


def replayable(
    act: Callable[[Callable[[T], None] | None], T], respond: Callable[[T], Response]
) -> Response:
    """Run ``act`` and answer ``respond(result)``, at most once per ``Idempotency-Key`` (the
    view is marked ``@idempotent``).

    ``act`` receives the ``before_commit`` callback to hand to the service (None without a
    key): it shapes the answer and records it in the service's own transaction. When the
    transaction lost a race to a twin request with the same key (a UNIQUE clash), the twin's
    answer is replayed.
    """
    attempt: idempotency.Attempt | None = g.get(ATTEMPT)
    if attempt is None:
        return respond(act(None))
    if (replay := _earlier(attempt)) is not None:
        return replay
    answers: list[Response] = []

    def record(result: T) -> None:
        answer = respond(result)
        idempotency.record(attempt, _stored(answer))
        answers.append(answer)

    try:
        act(record)
    except (Conflict, IntegrityError):
        if (replay := _earlier(attempt)) is not None:
            return replay
        raise
    _sweep()
    return answers[-1]


def _sweep() -> None:
    """Delete expired records; a failure costs nothing but a log line (the answer stands)."""
    try:
        idempotency.sweep()
    except SQLAlchemyError:
        log.warning("could not delete expired idempotency records", exc_info=True)
