"""What every ``/api/v1`` blueprint shares: the prefix and the JSON body check."""

from __future__ import annotations

from typing import Any, cast

from apiflask import APIBlueprint
from flask import Response, current_app
from pydantic import BaseModel

from ..web.json_bodies import OPTIONAL_BODY, require_json_body
from ..web.views import is_marked

PREFIX = "/api/v1"


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
