"""What every ``/api/v1`` blueprint shares: the prefix, the JSON body check, the check of a
query string's parameters, and the shape of a page of a list."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any, TypeVar, cast

from apiflask import APIBlueprint
from flask import Response, current_app, request, url_for
from flask_babel import LazyString
from flask_babel import gettext as _
from pydantic import BaseModel

from ..services.users import MAX_ID
from ..web.json_bodies import OPTIONAL_BODY, require_json_body
from ..web.problems import Problem
from ..web.views import is_marked

PREFIX = "/api/v1"
# The path converter of a row's id: a larger number names nothing (404), and SQLite could not
# even look it up.
ID_CONVERTER = f"int(max={MAX_ID})"
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


def with_fields(schema: type[BaseModel], row: Any, **extra: Any) -> dict[str, Any]:
    """The fields of ``schema`` read from ``row``, with ``extra`` ones the row does not hold
    (whether a session is this request's, a key's secret shown once)."""
    return {name: getattr(row, name) for name in schema.model_fields if name not in extra} | extra


def paginated(
    endpoint: str, items: Sequence[Any], total: int, page: int, per_page: int, **query: Any
) -> dict[str, Any]:
    """One page of a list as every list of the API answers it: the items, the total, and links
    to this, the first, the last and the neighbouring pages, which keep ``query`` (a None value
    is left out)."""
    pages = max(1, math.ceil(total / per_page))

    def link(number: int) -> str:
        return url_for(endpoint, page=number, per_page=per_page, **query)

    return {
        "items": items,
        "total": total,
        "page": page,
        "per_page": per_page,
        "pages": pages,
        "links": {
            "self": link(page),
            "first": link(1),
            "last": link(pages),
            "prev": link(min(page - 1, pages)) if page > 1 else None,
            "next": link(page + 1) if page < pages else None,
        },
    }


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
