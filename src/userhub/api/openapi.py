"""The OpenAPI 3.1 document at ``/openapi.json``, generated from the views.

APIFlask writes the operations from the routes, schemas and ``@doc`` calls. ``finish_spec``
then states what APIFlask cannot know: every error is ``application/problem+json`` (one
``Problem`` schema), which errors each kind of operation can answer (a body brings 400, 413,
415 and 422; a token brings 401 with its challenge; a write that a browser session may make
brings 400 for a missing CSRF header; an ``{id}`` brings 404), that bodies are required (but
the token route's is optional), the range of a user id, and the long name patterns once, as
components, instead of in every schema that uses them.

``tests/test_contract.py`` runs schemathesis with all its checks against this document.
"""

from __future__ import annotations

from typing import Any

from apiflask import APIFlask
from flask import Blueprint, render_template
from flask_babel import force_locale
from werkzeug.http import HTTP_STATUS_CODES

from ..services import idempotency
from ..services.users import MAX_ID
from ..web.i18n import DEFAULT as DEFAULT_LANGUAGE
from ..web.problems import (
    NO_TYPE,
    PROBLEM_MIMETYPE,
    PROBLEM_TYPES,
    problem_document,
    status_detail,
)
from ..web.rule_schemas import display_name_pattern, username_pattern
from .schemas import TokenRequest

DESCRIPTION = """\
The user-account API of userhub, and the JSON routes of the Flask tutorial it grew from.

* **Authentication:** `POST /api/v1/tokens` trades a username and password for a Bearer token
  (24 h by default). Send it as `Authorization: Bearer <token>`. A logged-in browser session
  works too; its writes need the `X-CSRFToken` header.
* **API keys:** `POST /api/v1/users/me/api-keys` makes a named key for a script or a service,
  with only the scopes it needs (`read`, `write`, `admin`); its secret is shown once. A key is
  sent like a token; a call its scopes do not cover is a 403, `/problems/insufficient-scope`.
* **Passkeys:** `/api/v1/users/me/passkeys` registers WebAuthn passkeys (two calls, with the
  browser's `navigator.credentials.create` between them), lists, renames and removes them. A
  passkey needs the site at a domain name over HTTPS, or at `localhost` (`USERHUB_PUBLIC_URL`).
* **Errors:** every error is `application/problem+json` (RFC 9457) with `type`, `title`,
  `status`, `detail`, and `errors` (one entry per field) for validation failures. `type`
  names the kind of error, `/problems/<kind>`: the `Problem` schema lists them all.
* **Pagination:** `GET /api/v1/users?page=2&per_page=20` answers `items`, `total`, `pages` and
  `links` to the first, last, previous and next pages.
* **Search:** `GET /api/v1/users?q=zhang` lists only the accounts whose username or e-mail
  address contains `q`, ignoring case. A query parameter an operation does not take is refused
  (400, `/problems/unknown-parameter`), never ignored.
"""

PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
APIFLASK_ERROR_SCHEMAS = ("HTTPError", "ValidationError")
BODY_ERRORS = (400, 413, 415, 422)
UNSAFE_METHODS = frozenset({"post", "put", "patch", "delete"})
DATABASE_PATHS = frozenset({"/api/v1/tokens", "/api/v1/events", "/save_data_to_mysql"})  # and
# /api/v1/users...
CSRF_DESCRIPTION = (
    "Bad Request (a write made with the browser's session cookie lacks the X-CSRFToken header)"
)
ERROR_HEADERS: dict[int, dict[str, Any]] = {
    401: {
        "WWW-Authenticate": {
            "description": "The challenge: `Bearer`, or `Basic` for `POST /api/v1/tokens`.",
            "required": True,
            "schema": {"type": "string"},
        }
    },
    503: {
        "Retry-After": {
            "description": "Seconds to wait before trying again.",
            "schema": {"type": "string", "pattern": "^[0-9]+$"},
        }
    },
}
ID_SCHEMA = {"type": "integer", "format": "int64", "minimum": 1, "maximum": MAX_ID}
PATH_PARAMETERS: dict[str, dict[str, Any]] = {
    # Ids outside this range name nothing (404); SQLite could not even look them up.
    "user_id": ID_SCHEMA,
    "session_id": ID_SCHEMA,
    "key_id": ID_SCHEMA,
}
READ_ONLY_KEY = (
    "Forbidden: sent with an API key that has only the `read` scope "
    "(`/problems/insufficient-scope`)"
)


def problem_spec(status: int, description: str | None = None) -> dict[str, Any]:
    detail = status_detail(status, description or "")
    spec: dict[str, Any] = {
        "description": description or HTTP_STATUS_CODES.get(status, "Error"),
        "content": {
            PROBLEM_MIMETYPE: {
                "schema": PROBLEM_REF,
                "example": problem_document(status, detail),
            }
        },
    }
    if status in ERROR_HEADERS:
        spec["headers"] = ERROR_HEADERS[status]
    return spec


def problem_schema() -> dict[str, Any]:
    """The one error schema, with every ``type`` a problem can have, its status and meaning."""
    kinds = sorted(PROBLEM_TYPES.values(), key=lambda kind: (kind.status, kind.slug))
    return {
        "type": "object",
        "description": "An RFC 9457 problem document.",
        "required": ["type", "title", "status", "detail"],
        "properties": {
            "type": {
                "type": "string",
                "format": "uri-reference",
                "description": "The kind of error, for a client to switch on (a page at that "
                "path describes it); `about:blank` for a status with nothing more to say.\n\n"
                + "\n".join(f"* `{kind.uri}` ({kind.status}): {kind.meaning}" for kind in kinds),
                "enum": [kind.uri for kind in kinds] + [NO_TYPE],
            },
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


def _is_apiflask_error(response: dict[str, Any]) -> bool:
    schema = response.get("content", {}).get("application/json", {}).get("schema", {})
    return any(schema.get("$ref", "").endswith("/" + name) for name in APIFLASK_ERROR_SCHEMAS)


def _finish_operation(path: str, method: str, operation: dict[str, Any]) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    wanted: dict[int, str | None] = {500: None}
    if "requestBody" in operation:
        operation["requestBody"].setdefault("required", True)  # the token route's says False
        wanted.update(dict.fromkeys(BODY_ERRORS))
    security = operation.get("security") or []
    if any(requirement for requirement in security):
        wanted[401] = None
        if method in UNSAFE_METHODS and any("BearerAuth" in r for r in security):
            wanted.setdefault(400, CSRF_DESCRIPTION)  # the session is the other way in
            wanted.setdefault(403, READ_ONLY_KEY)
    if any(roles for requirement in security for roles in requirement.values()):
        wanted[403] = None  # an admin-only operation
    if "{" in path:
        wanted[404] = None
    if path in DATABASE_PATHS or path.startswith("/api/v1/users"):
        wanted[503] = None
    for status, description in sorted(wanted.items()):
        responses.setdefault(str(status), problem_spec(status, description))
    for code, response in responses.items():
        if int(code) >= 400 and (_is_apiflask_error(response) or not response.get("content")):
            finished = problem_spec(int(code), response.get("description"))
            if "headers" in response:  # a view's own (RATE_LIMITED's Retry-After)
                finished["headers"] = {**finished.get("headers", {}), **response["headers"]}
            responses[code] = finished
    for parameter in operation.get("parameters", []):
        if parameter.get("in") == "path" and parameter.get("name") in PATH_PARAMETERS:
            parameter["schema"] = PATH_PARAMETERS[parameter["name"]]


IDEMPOTENCY_PARAMETER: dict[str, Any] = {
    "name": idempotency.HEADER,
    "in": "header",
    "required": False,
    "description": "Makes a retry safe: the same key with the same request within 24 hours gets "
    "the first answer again (with `Idempotent-Replayed: true`) instead of acting twice. Use a "
    "new key, such as a UUID, for each new request.",
    "schema": {
        "type": "string",
        "minLength": 1,
        "maxLength": idempotency.KEY_MAX_LENGTH,
        "pattern": "^[!-~]([ -~]*[!-~])?$",
    },
    "example": "3f1c0a52-6a8e-4d2b-9d3e-1b2c3d4e5f60",
}
REPLAYED_HEADER: dict[str, Any] = {
    "description": "`true` when this is the stored answer to an earlier request with the same "
    "`Idempotency-Key`.",
    "schema": {"type": "string", "const": "true"},
}
IDEMPOTENCY_ERRORS = {
    400: "Bad Request (malformed JSON, or a malformed Idempotency-Key)",
    422: "Invalid fields, or an Idempotency-Key used before with a different request (or whose "
    "kept answer cannot be read back)",
}


def _document_idempotency(paths: dict[str, Any]) -> None:
    """The header, the replay marker and the key's errors, on each operation that takes it."""
    for name in idempotency.OPERATIONS:
        method, path = name.split(" ")
        operation = paths[path][method.lower()]
        operation.setdefault("parameters", []).append(IDEMPOTENCY_PARAMETER)
        created = operation["responses"]["201"]
        created.setdefault("headers", {})[idempotency.REPLAYED_HEADER] = REPLAYED_HEADER
        for status, description in IDEMPOTENCY_ERRORS.items():
            operation["responses"][str(status)] = problem_spec(status, description)


def _text_components() -> dict[str, dict[str, Any]]:
    """The name rules' patterns, each a few kilobytes, as components of their own."""
    return {
        "UsernameText": {
            "type": "string",
            "description": "A username: 1–20 characters of Unicode categories other than C "
            '(control, format, surrogate, private use, unassigned), not ":", the first and '
            "last not white space.",
            "pattern": username_pattern(),
        },
        "DisplayNameText": {
            "type": "string",
            "description": "A display name: characters of Unicode categories other than C, "
            "at least one of them not white space.",
            "pattern": display_name_pattern(),
        },
    }


def _hoist_patterns(node: Any, refs: dict[str, str]) -> None:
    """Replace each ``pattern`` that a text component holds with a reference to it."""
    if isinstance(node, dict):
        pattern = node.get("pattern")
        if isinstance(pattern, str) and pattern in refs:
            del node["pattern"]
            node["$ref"] = refs[pattern]
        for value in node.values():
            _hoist_patterns(value, refs)
    elif isinstance(node, list):
        for value in node:
            _hoist_patterns(value, refs)


def finish_spec(spec: Any) -> Any:
    """The spec processor: one error format, every error response, the optional token body.

    The spec is built once and cached, so its examples are written in English whatever the
    language of the request that happened to build it."""
    with force_locale(DEFAULT_LANGUAGE.locale):
        return _finish_spec(spec)


def _finish_spec(spec: Any) -> Any:
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    schemas["Problem"] = problem_schema()
    spec["paths"]["/api/v1/tokens"]["post"]["requestBody"] = {
        "required": False,
        "description": "The credentials as JSON, or leave the body empty and use HTTP Basic.",
        "content": {"application/json": {"schema": TokenRequest.model_json_schema()}},
    }
    for path, operations in spec.get("paths", {}).items():
        for method, operation in operations.items():
            if method in {"get", "post", "put", "patch", "delete"}:
                _finish_operation(path, method, operation)
    _document_idempotency(spec["paths"])
    for name in APIFLASK_ERROR_SCHEMAS:
        schemas.pop(name, None)
    texts = _text_components()
    refs = {text["pattern"]: f"#/components/schemas/{name}" for name, text in texts.items()}
    _hoist_patterns(spec, refs)
    schemas.update(texts)
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
    )
    app.spec_processor(finish_spec)
    app.register_blueprint(docs)
