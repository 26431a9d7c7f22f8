"""The OpenAPI 3.1 document at ``/openapi.json``, generated from the views.

APIFlask writes the operations from the routes, schemas and ``@doc`` calls. ``finish_spec``
then states what APIFlask cannot know: every error is ``application/problem+json`` (one
``Problem`` schema), which errors each kind of operation can answer (a body brings 400, 413,
415 and 422; a token brings 401; an ``{id}`` brings 404), and the token route's optional body.
"""

from __future__ import annotations

from typing import Any

from apiflask import APIFlask
from flask import Blueprint, render_template
from werkzeug.http import HTTP_STATUS_CODES

from .api.schemas import Credentials
from .errors import DETAILS, PROBLEM_MIMETYPE

DESCRIPTION = """\
The user-account API of userhub, and the JSON routes of the Flask tutorial it grew from.

* **Authentication:** `POST /api/v1/tokens` trades a username and password for a Bearer token
  (24 h by default). Send it as `Authorization: Bearer <token>`. A logged-in browser session
  works too; its writes need the `X-CSRFToken` header.
* **Errors:** every error is `application/problem+json` (RFC 9457) with `type`, `title`,
  `status`, `detail`, and `errors` (one entry per field) for validation failures.
* **Pagination:** `GET /api/v1/users?page=2&per_page=20` answers `items`, `total`, `pages` and
  `links` to the first, last, previous and next pages.
"""

PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "An RFC 9457 problem document.",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "description": "`about:blank`: see `status`."},
        "title": {"type": "string", "description": "The HTTP status phrase."},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string", "description": "What went wrong and what to do."},
        "errors": {
            "type": "array",
            "description": "One entry per problem with a field (validation errors).",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
}
APIFLASK_ERROR_SCHEMAS = ("HTTPError", "ValidationError")
BODY_ERRORS = (400, 413, 415, 422)
DATABASE_PATHS = frozenset({"/api/v1/tokens", "/save_data_to_mysql"})  # and /api/v1/users...


def problem_spec(status: int, description: str | None = None) -> dict[str, Any]:
    detail = DETAILS.get(status, description or HTTP_STATUS_CODES.get(status, "Error"))
    return {
        "description": description or HTTP_STATUS_CODES.get(status, "Error"),
        "content": {
            PROBLEM_MIMETYPE: {
                "schema": PROBLEM_REF,
                "example": {
                    "type": "about:blank",
                    "title": HTTP_STATUS_CODES.get(status, "Error"),
                    "status": status,
                    "detail": detail,
                },
            }
        },
    }


def _is_apiflask_error(response: dict[str, Any]) -> bool:
    schema = response.get("content", {}).get("application/json", {}).get("schema", {})
    return any(schema.get("$ref", "").endswith("/" + name) for name in APIFLASK_ERROR_SCHEMAS)


def _finish_operation(path: str, method: str, operation: dict[str, Any]) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    wanted: set[int] = {500}
    if "requestBody" in operation:
        wanted.update(BODY_ERRORS)
    security = operation.get("security") or []
    if any(requirement for requirement in security):
        wanted.add(401)
    if any(roles for requirement in security for roles in requirement.values()):
        wanted.add(403)  # an admin-only operation
    if "{" in path:
        wanted.add(404)
    if path in DATABASE_PATHS or path.startswith("/api/v1/users"):
        wanted.add(503)
    for status in sorted(wanted):
        responses.setdefault(str(status), problem_spec(status))
    for code, response in responses.items():
        if int(code) >= 400 and (_is_apiflask_error(response) or "content" not in response):
            responses[code] = problem_spec(int(code), response.get("description"))


def finish_spec(spec: Any) -> Any:
    """The spec processor: one error format, every error response, the optional token body."""
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    schemas["Problem"] = PROBLEM_SCHEMA
    spec["paths"]["/api/v1/tokens"]["post"]["requestBody"] = {
        "required": False,
        "description": "The credentials as JSON, or leave the body empty and use HTTP Basic.",
        "content": {"application/json": {"schema": Credentials.model_json_schema()}},
    }
    for path, operations in spec.get("paths", {}).items():
        for method, operation in operations.items():
            if method in {"get", "post", "put", "patch", "delete"}:
                _finish_operation(path, method, operation)
    for name in APIFLASK_ERROR_SCHEMAS:
        schemas.pop(name, None)
    return spec


docs = Blueprint("docs", __name__)


@docs.get("/docs")
def docs_page() -> str:
    """Swagger UI from our own static files: works offline, and its script is not inline."""
    return render_template("docs.html")


def init_app(app: APIFlask) -> None:
    app.config.update(
        AUTO_200_RESPONSE=False,  # every view states its success response (or has @output)
        DESCRIPTION=DESCRIPTION,
        SERVERS=[{"url": "/", "description": "This server"}],
        SECURITY_SCHEMES={
            "BasicAuth": {"type": "http", "scheme": "basic", "description": "Only for tokens."}
        },
        LICENSE={"name": "MIT"},
        TAGS=[
            {"name": "Tutorial", "description": "The JSON routes of the Flask tutorial (§3, §5)."},
            {"name": "Users", "description": "Accounts: register, read, change, administer."},
            {"name": "Tokens", "description": "Log in and out with Bearer tokens."},
            {"name": "Health", "description": "For load balancers and monitors."},
        ],
    )
    app.spec_processor(finish_spec)
    app.register_blueprint(docs)
