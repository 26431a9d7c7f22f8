"""What every ``/api/v1`` blueprint shares: the prefix and the JSON body check."""

from __future__ import annotations

from typing import Any, cast

from apiflask import APIBlueprint
from flask import Response, current_app, request
from pydantic import BaseModel

from ..web.errors import require_json_body

PREFIX = "/api/v1"
OPTIONAL_BODY_ENDPOINTS = frozenset({"api_tokens.create_token"})  # JSON or HTTP Basic


def _check_json_body() -> None:
    """400 for no or broken JSON, 415 for another content type, before any view parses it."""
    if request.endpoint not in OPTIONAL_BODY_ENDPOINTS:
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
