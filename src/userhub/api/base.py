"""What every ``/api/v1`` blueprint shares: the prefix, the JSON body check, and the check
of a query string's parameters."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar, cast

from apiflask import APIBlueprint
from flask import Response, current_app, request
from flask_babel import LazyString
from flask_babel import gettext as _
from pydantic import BaseModel

from ..web.json_bodies import OPTIONAL_BODY, require_json_body
from ..web.problems import Problem
from ..web.views import is_marked

PREFIX = "/api/v1"
F = TypeVar("F", bound=Callable[..., Any])


def _check_json_body() -> None:
    """400 for no or broken JSON, 415 for another content type, before any view parses it
    (unless the view takes an empty body: ``json_bodies.optional_body``)."""
    if not is_marked(OPTIONAL_BODY):
        require_json_body()


def api_blueprint(name: str, tag: dict[str, str]) -> APIBlueprint:
    """A blueprint under ``/api/v1``; ``tag`` groups its operations in the OpenAPI document."""
    blueprint = APIBlueprint(name, __name__, url_prefix=PREFIX, tag=tag)
    blueprint.before_request(_check_json_body)
    return blueprint


def no_content() -> Response:
    """204 with no body, and so no Content-Type either."""
    response: Response = current_app.response_class(status=204)
    response.headers.remove("Content-Type")
    return response


def shaped(schema: type[BaseModel], value: Any, status: int, headers: dict[str, str]) -> Response:
    """``value`` as ``@bp.output(schema)`` would answer it, as a Response a view can keep (the
    idempotent POSTs record it before it is sent)."""
    data = schema.model_validate(value).model_dump(mode="json", by_alias=True)
    response = cast(Response, current_app.json.response(data))
    response.status_code = status
    response.headers.update(headers)
    return response


def known_query(schema: type[BaseModel], hint: LazyString) -> Callable[[F], F]:
    """Refuse a query parameter that ``schema`` does not name, with a 400 that names it and
    says what to send instead (``hint``), rather than ignore it: a client that filters with
    ``?username=`` must not take the whole, unfiltered list for its answer.

    Put it under ``@bp.auth_required`` (who may call is answered first) and over
    ``@bp.input(schema, location="query")``, which then checks the values (422)."""
    accepted = list(schema.model_fields)

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def checked(*args: Any, **kwargs: Any) -> Any:
            if unknown := [name for name in request.args if name not in accepted]:
                names = ", ".join(f'"{name[:30]}"' for name in unknown)
                detail = _(
                    "Not a query parameter of this address: %(names)s. It takes only %(accepted)s.",
                    names=names,
                    accepted=", ".join(accepted),
                )
                raise Problem(
                    400,
                    f"{detail} {hint}",
                    kind="unknown-parameter",
                    errors={name: [_("Unknown query parameter.")] for name in unknown},
                )
            return view(*args, **kwargs)

        return cast(F, checked)

    return decorate
