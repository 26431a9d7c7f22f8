"""What all of ``/api/`` shares: health, body and routing errors, CORS, the OpenAPI document
and the offline ``/docs`` page."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import validate

from tests.helpers import (
    BODY_LIMIT,
    PASSWORD,
    PROBLEM_MIMETYPE,
    SECRET_DETAIL,
    UNREACHABLE_MYSQL,
    Account,
    ApiActions,
    AppBuilder,
    assert_problem,
    get_a_crashing_route,
)
from userhub.config import ConfigError, load_config

HEALTH = "/api/v1/health"
FRONT_END = "http://localhost:5173"
TUTORIAL_JSON_OPERATIONS = {
    ("/test_get", "get"),
    ("/get_json", "post"),
    ("/response_json", "get"),
    ("/save_data_to_mysql", "post"),
}
PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
BODY_ERRORS = {"400", "413", "415", "422"}
# The operations a mailed link's token opens (POST, under /api/v1/).
MAILED_LINK_PATHS = (
    "email-verification",
    "password-reset/complete",
    "email-change/confirm",
    "email-change/undo",
    "unlock",
)


# --- GET /api/v1/health ------------------------------------------------------------------------


def test_health_is_ok_when_the_database_answers(client: FlaskClient) -> None:
    response = client.get(HEALTH)
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.get_json() == {"status": "ok", "database": "ok"}


@pytest.fixture(params=["mysql-port-9", "sqlite-file-is-a-folder"])
def app_without_database(
    request: pytest.FixtureRequest, tmp_path: Path, build_app: AppBuilder
) -> Flask:
    """An app whose database cannot be opened: nothing listens on MySQL's port, or the SQLite
    file's path is a folder."""
    if request.param == "mysql-port-9":
        url = UNREACHABLE_MYSQL
    else:
        folder = tmp_path / "userhub.sqlite3"
        folder.mkdir()
        url = f"sqlite:///{folder}"
    return build_app(url)


def test_health_is_503_when_the_database_is_unreachable(
    app_without_database: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="userhub"):
        response = app_without_database.test_client().get(HEALTH)
    assert response.status_code == 503
    assert response.get_json() == {"status": "unavailable", "database": "unreachable"}
    assert "unreachable" in caplog.text


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("post", "/api/v1/tokens", {"username": "张三", "password": PASSWORD}),
        ("post", "/api/v1/users", {"username": "张三", "password": PASSWORD}),
        ("get", "/api/v1/users/me", None),
    ],
)
def test_api_calls_answer_a_503_problem_when_the_database_is_unreachable(
    app_without_database: Flask, method: str, path: str, body: dict[str, str] | None
) -> None:
    client = app_without_database.test_client()
    headers = {"Authorization": "Bearer uh_" + "A" * 43}
    response = getattr(client, method)(path, json=body, headers=headers)
    assert_problem(response, 503)
    assert response.headers["Retry-After"].isdigit()
    assert "127.0.0.1" not in response.get_data(as_text=True)


# --- Errors under /api/ ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/api/v1/nothing", "/api/nothing", "/api/v2/users", "/api/v1/users/abc"]
)
def test_an_unknown_api_path_is_a_404_problem(client: FlaskClient, path: str) -> None:
    assert_problem(client.get(path), 404)


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("put", "/api/v1/users/me", {"GET", "PATCH"}),
        ("delete", "/api/v1/health", {"GET"}),
        ("get", "/api/v1/tokens", {"POST", "DELETE"}),
        ("post", "/api/v1/users/1", {"GET", "PATCH", "DELETE"}),
        ("delete", "/api/v1/users", {"GET", "POST"}),
    ],
)
def test_a_wrong_method_is_a_405_problem_with_allow(
    client: FlaskClient, method: str, path: str, allowed: set[str]
) -> None:
    response = getattr(client, method)(path)
    assert_problem(response, 405)
    assert allowed <= {m.strip() for m in response.headers["Allow"].split(",")}


def test_an_unexpected_error_is_a_500_problem_without_internals(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    response = get_a_crashing_route(app, "/api/v1/explode", caplog)
    assert_problem(response, 500)
    assert SECRET_DETAIL not in response.get_data(as_text=True)
    assert SECRET_DETAIL in caplog.text


# --- Request bodies on every JSON endpoint -----------------------------------------------------


def body_endpoint(name: str, member: Account, admin: Account) -> tuple[str, str, dict[str, str]]:
    """An endpoint that reads a JSON body: its method, path and the credentials it needs."""
    return {
        "register": ("POST", "/api/v1/users", {}),
        "token": ("POST", "/api/v1/tokens", {}),
        "update-me": ("PATCH", "/api/v1/users/me", member.headers),
        "update-user": ("PATCH", f"/api/v1/users/{member.id}", admin.headers),
    }[name]


BAD_BODIES: dict[str, tuple[bytes, str, int]] = {
    "no-body": (b"", "application/json", 400),
    "broken-json": (b'{"username": "x", ', "application/json", 400),
    "not-utf8": ('{"username": "张三"}'.encode("gb18030"), "application/json", 400),
    "form": (b"username=x&password=12345678", "application/x-www-form-urlencoded", 415),
    "text": (b'{"username": "x"}', "text/plain", 415),
    "array": (b'[{"username": "x"}]', "application/json", 422),
    "null": (b"null", "application/json", 422),
    "over-the-limit": (b'{"username": "' + b"x" * BODY_LIMIT + b'"}', "application/json", 413),
}


@pytest.mark.parametrize("endpoint", ["register", "token", "update-me", "update-user"])
@pytest.mark.parametrize("kind", list(BAD_BODIES))
def test_a_bad_body_gets_its_problem_and_writes_nothing(
    client: FlaskClient,
    api: ApiActions,
    member: Account,
    admin: Account,
    endpoint: str,
    kind: str,
) -> None:
    method, path, headers = body_endpoint(endpoint, member, admin)
    data, content_type, status = BAD_BODIES[kind]
    if endpoint == "token" and kind == "no-body":
        status = 401  # an empty body means "use HTTP Basic", and there was none
    before = (api.rows("user"), api.rows("api_token"))
    response = client.open(
        path, method=method, data=data, content_type=content_type, headers=headers
    )
    assert_problem(response, status)
    assert (api.rows("user"), api.rows("api_token")) == before


# --- CORS --------------------------------------------------------------------------------------


def allowed_origin(response: Any) -> str | None:
    origin: str | None = response.headers.get("Access-Control-Allow-Origin")
    return origin


def preflight(client: FlaskClient, origin: str, path: str = "/api/v1/users/me") -> Any:
    return client.options(
        path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "PATCH",
            "Access-Control-Request-Headers": "Authorization, Content-Type",
        },
    )


@pytest.fixture
def cors_client(build_app: AppBuilder, database_url: str) -> FlaskClient:
    return build_app(database_url, USERHUB_CORS_ORIGINS=(FRONT_END,)).test_client()


def test_no_cross_origin_access_by_default(client: FlaskClient) -> None:
    assert allowed_origin(client.get(HEALTH, headers={"Origin": FRONT_END})) is None
    assert allowed_origin(preflight(client, FRONT_END)) is None


def test_a_configured_origin_may_call_the_api(cors_client: FlaskClient) -> None:
    response = cors_client.get(HEALTH, headers={"Origin": FRONT_END})
    assert response.status_code == 200
    assert allowed_origin(response) == FRONT_END


def test_a_configured_origin_can_read_error_problems_and_their_challenge(
    cors_client: FlaskClient,
) -> None:
    response = cors_client.get("/api/v1/users/me", headers={"Origin": FRONT_END})
    assert_problem(response, 401)
    assert allowed_origin(response) == FRONT_END
    exposed = response.headers["Access-Control-Expose-Headers"].lower()
    assert "www-authenticate" in exposed


def test_a_configured_origin_passes_the_preflight(cors_client: FlaskClient) -> None:
    response = preflight(cors_client, FRONT_END)
    assert response.status_code in {200, 204}
    assert allowed_origin(response) == FRONT_END
    assert "PATCH" in response.headers["Access-Control-Allow-Methods"]
    allowed_headers = response.headers["Access-Control-Allow-Headers"].lower()
    assert "authorization" in allowed_headers and "content-type" in allowed_headers


@pytest.mark.parametrize(
    "origin", ["http://evil.example", "http://localhost:5174", "https://localhost:5173"]
)
def test_another_origin_gets_no_cross_origin_access(cors_client: FlaskClient, origin: str) -> None:
    assert allowed_origin(cors_client.get(HEALTH, headers={"Origin": origin})) is None
    assert allowed_origin(preflight(cors_client, origin)) is None


def test_origins_come_from_the_environment(
    build_app: AppBuilder, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("USERHUB_CORS_ORIGINS", f"{FRONT_END}/, https://app.example.com")
    client = build_app(database_url).test_client()
    response = client.get(HEALTH, headers={"Origin": "https://app.example.com"})
    assert allowed_origin(response) == "https://app.example.com"
    response = client.get(HEALTH, headers={"Origin": FRONT_END})
    assert allowed_origin(response) == FRONT_END


def test_the_origins_setting_is_read_as_a_tuple_of_origins() -> None:
    config = load_config({"USERHUB_CORS_ORIGINS": " http://localhost:5173/ ,https://a.example "})
    assert config["USERHUB_CORS_ORIGINS"] == ("http://localhost:5173", "https://a.example")
    assert load_config({})["USERHUB_CORS_ORIGINS"] == ()


@pytest.mark.parametrize(
    "value", ["*", "localhost:5173", "ftp://files.example.com", "http://a.example, *"]
)
def test_an_unsafe_origins_setting_is_refused(value: str) -> None:
    with pytest.raises(ConfigError, match="USERHUB_CORS_ORIGINS"):
        load_config({"USERHUB_CORS_ORIGINS": value})


@pytest.mark.parametrize(
    "value", ["https://*.example.com", "https://app.example.com.*", "https://(app|www).example.com"]
)
def test_a_wildcard_or_pattern_origin_is_refused(value: str) -> None:
    """Flask-CORS reads an origin holding ``*``, ``(`` or ``$`` as a regular expression that is
    matched only at the start: ``https://*.example.com`` would let in
    ``https://aexample.com.attacker.net``. Such a value must stop start-up like ``*`` does."""
    with pytest.raises(ConfigError, match="USERHUB_CORS_ORIGINS"):
        load_config({"USERHUB_CORS_ORIGINS": value})


# --- OpenAPI -----------------------------------------------------------------------------------


@pytest.fixture
def docs_app(tmp_path: Path, build_app: AppBuilder) -> Flask:
    """An app for the document and the docs page, which need no database."""
    return build_app(f"sqlite:///{tmp_path / 'unused.sqlite3'}")


@pytest.fixture
def spec(docs_app: Flask) -> dict[str, Any]:
    response = docs_app.test_client().get("/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    document: dict[str, Any] = response.get_json()
    return document


def operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, items in spec["paths"].items():
        for method, operation in items.items():
            if method in {"get", "put", "post", "patch", "delete"}:
                yield path, method, operation


def served_operations(app: Flask) -> set[tuple[str, str]]:
    """(OpenAPI path, method) of every rule the app serves."""
    served = set()
    for rule in app.url_map.iter_rules():
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        served |= {(path, m.lower()) for m in rule.methods or () if m not in {"HEAD", "OPTIONS"}}
    return served


def api_operations(app: Flask) -> set[tuple[str, str]]:
    return {(path, method) for path, method in served_operations(app) if path.startswith("/api/")}


def test_the_document_is_valid_openapi_3_1(spec: dict[str, Any]) -> None:
    assert spec["openapi"] == "3.1.0"
    validate(spec)


def test_the_document_covers_every_api_operation_and_the_tutorials_json_routes(
    docs_app: Flask, spec: dict[str, Any]
) -> None:
    documented = {(path, method) for path, method, _ in operations(spec)}
    wanted = api_operations(docs_app) | TUTORIAL_JSON_OPERATIONS
    assert len(api_operations(docs_app)) == 44
    assert wanted - documented == set()


def test_the_document_describes_no_operation_the_app_does_not_serve(
    docs_app: Flask, spec: dict[str, Any]
) -> None:
    documented = {(path, method) for path, method, _ in operations(spec)}
    assert documented - served_operations(docs_app) == set()


def test_every_error_response_is_a_problem_document(spec: dict[str, Any]) -> None:
    other_media = {
        ("/api/v1/health", "get", "503"): {"application/json"},
        ("/api/v1/health/ready", "get", "503"): {"application/json"},
        ("/test_get", "get", "400"): {PROBLEM_MIMETYPE, "text/plain"},
    }
    wrong = []
    for path, method, operation in operations(spec):
        for status, response in operation["responses"].items():
            if int(status) < 400:
                continue
            content = response.get("content", {})
            expected = other_media.get((path, method, status), {PROBLEM_MIMETYPE})
            problem = content.get(PROBLEM_MIMETYPE, {}).get("schema")
            if set(content) != expected or (PROBLEM_MIMETYPE in expected) != (
                problem == PROBLEM_REF
            ):
                wrong.append((method, path, status, sorted(content)))
    assert wrong == []


def test_the_health_check_documents_its_503_as_a_health_body(spec: dict[str, Any]) -> None:
    response = spec["paths"]["/api/v1/health"]["get"]["responses"]["503"]
    assert response["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Health"
    }


def test_the_problem_schema_requires_the_rfc_9457_members(spec: dict[str, Any]) -> None:
    problem = spec["components"]["schemas"]["Problem"]
    assert {"type", "title", "status", "detail"} <= set(problem["required"])
    assert "errors" in problem["properties"]


def test_every_operation_with_a_body_documents_the_body_errors(spec: dict[str, Any]) -> None:
    missing = {
        (method, path): sorted(BODY_ERRORS - set(operation["responses"]))
        for path, method, operation in operations(spec)
        if "requestBody" in operation
    }
    assert len(missing) >= 6  # the tutorial's two, register, token, and the two updates
    assert {key: codes for key, codes in missing.items() if codes} == {}


def test_every_operation_that_needs_a_token_documents_401(
    docs_app: Flask, spec: dict[str, Any]
) -> None:
    public = {("/api/v1/users", "post"), ("/api/v1/tokens", "post")}
    public |= {(f"/api/v1/health{probe}", "get") for probe in ("", "/live", "/ready")}
    # A mailed link is its own proof: whoever holds it acts without a token.
    public |= {(f"/api/v1/{path}", "post") for path in MAILED_LINK_PATHS}
    # The caller forgot the password, or cannot log in before the address is verified.
    public |= {("/api/v1/password-reset", "post"), ("/api/v1/email-verification/requests", "post")}
    secured = api_operations(docs_app) - public
    paths = spec["paths"]
    unsecured = [op for op in sorted(secured) if not paths[op[0]][op[1]].get("security")]
    assert unsecured == []
    undocumented = [
        (method, path)
        for path, method, operation in operations(spec)
        if operation.get("security") and "401" not in operation["responses"]
    ]
    assert undocumented == []


@pytest.mark.parametrize("path", MAILED_LINK_PATHS)
def test_a_dead_link_is_answered_as_the_document_shows_it(
    client: FlaskClient, spec: dict[str, Any], path: str
) -> None:
    """Each operation of a mailed link documents both kinds of a dead link by example, and a
    token nobody was sent gets the first of them, word for word."""
    responses = spec["paths"][f"/api/v1/{path}"]["post"]["responses"]
    examples = responses["400"]["content"][PROBLEM_MIMETYPE]["examples"]
    assert set(examples) == {"invalid-link", "expired-link"}
    assert examples["expired-link"]["value"]["type"] == "/problems/expired-link"
    body = {"token": "never-sent", "password": "a-new-long-password"}
    if path != "password-reset/complete":
        del body["password"]
    answer = assert_problem(client.post(f"/api/v1/{path}", json=body), 400)
    assert answer == examples["invalid-link"]["value"]
    assert "503" in responses


def test_every_write_a_browser_session_may_make_documents_400(spec: dict[str, Any]) -> None:
    """A session-authenticated write without ``X-CSRFToken`` is a 400 (and ``DELETE
    /api/v1/tokens`` answers 400 to a session, which has no token to revoke)."""
    undocumented = [
        (method, path)
        for path, method, operation in operations(spec)
        if method in {"post", "put", "patch", "delete"}
        and any("BearerAuth" in requirement for requirement in operation.get("security", []))
        and "400" not in operation["responses"]
    ]
    assert undocumented == []


def test_every_admin_operation_documents_403(spec: dict[str, Any]) -> None:
    admin_only = [
        ("/api/v1/users", "get"),
        ("/api/v1/users/{user_id}", "patch"),
        ("/api/v1/users/{user_id}", "delete"),
    ]
    paths = spec["paths"]
    assert [op for op in admin_only if "403" not in paths[op[0]][op[1]]["responses"]] == []


def test_every_operation_that_checks_a_password_documents_429_with_retry_after(
    spec: dict[str, Any],
) -> None:
    """Log-in, register, and a new password (its current one): each can be rate limited."""
    paths = spec["paths"]
    for path, method in [
        ("/api/v1/tokens", "post"),
        ("/api/v1/users", "post"),
        ("/api/v1/users/me", "patch"),
        ("/save_data_to_mysql", "post"),
    ]:
        limited = paths[path][method]["responses"]["429"]
        assert limited["headers"]["Retry-After"]["required"] is True, (method, path)


def test_the_token_operation_documents_the_device_cookie(spec: dict[str, Any]) -> None:
    set_cookie = spec["paths"]["/api/v1/tokens"]["post"]["responses"]["201"]["headers"]
    assert "userhub_device" in set_cookie["Set-Cookie"]["description"]


def test_every_documented_example_matches_its_schema(spec: dict[str, Any]) -> None:
    def examples(media: dict[str, Any]) -> list[Any]:
        found = [media["example"]] if "example" in media else []
        return found + [each["value"] for each in media.get("examples", {}).values()]

    mismatches = []
    for path, method, operation in operations(spec):
        bodies = {"request": operation.get("requestBody", {})}
        bodies.update(operation["responses"])
        for where, body in bodies.items():
            for media_type, media in body.get("content", {}).items():
                if "schema" not in media:
                    continue
                schema = {**media["schema"], "components": spec["components"]}
                for example in examples(media):
                    errors = [e.message for e in OAS31Validator(schema).iter_errors(example)]
                    if errors:
                        mismatches.append((method, path, where, media_type, errors))
    assert mismatches == []


# --- /docs -------------------------------------------------------------------------------------


class PageAssets(HTMLParser):
    """The scripts (src and inline text) and linked files of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[tuple[str | None, str]] = []
        self.links: list[str | None] = []
        self.spec_urls: list[str | None] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "script":
            self.scripts.append((found.get("src"), ""))
            self._in_script = True
        elif tag == "link":
            self.links.append(found.get("href"))
        if "data-spec-url" in found:
            self.spec_urls.append(found["data-spec-url"])

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            src, text = self.scripts[-1]
            self.scripts[-1] = (src, text + data)


@pytest.fixture
def docs_page(docs_app: Flask) -> tuple[str, PageAssets]:
    response = docs_app.test_client().get("/docs")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    assets = PageAssets()
    assets.feed(html)
    return html, assets


def test_the_docs_page_loads_only_its_own_files(docs_page: tuple[str, PageAssets]) -> None:
    html, assets = docs_page
    assert assets.scripts and assets.links
    assert [src for src, _ in assets.scripts if not (src or "").startswith("/static/")] == []
    assert [text for _, text in assets.scripts if text.strip()] == []  # no inline script
    assert [href for href in assets.links if not (href or "").startswith("/static/")] == []
    assert re.findall(r"https?://", html) == []


@pytest.mark.parametrize(
    ("asset", "content_type"),
    [
        ("/static/swagger-ui/swagger-ui-bundle.js", "javascript"),
        ("/static/swagger-ui/swagger-ui.css", "text/css"),
        ("/static/swagger-ui/favicon-32x32.png", "image/png"),
        ("/static/docs.js", "javascript"),
    ],
)
def test_the_docs_page_files_are_served(
    docs_app: Flask, docs_page: tuple[str, PageAssets], asset: str, content_type: str
) -> None:
    _, assets = docs_page
    assert asset in {src for src, _ in assets.scripts} | set(assets.links)
    with docs_app.test_client().get(asset) as response:
        assert response.status_code == 200
        assert content_type in response.headers["Content-Type"]
        assert len(response.get_data()) > 0


def test_the_docs_script_loads_the_document_the_page_names(
    docs_app: Flask, docs_page: tuple[str, PageAssets]
) -> None:
    _, assets = docs_page
    assert assets.spec_urls == ["/openapi.json"]
    client = docs_app.test_client()
    with client.get("/static/docs.js") as response:
        script = response.get_data(as_text=True)
    assert "dataset.specUrl" in script
    assert client.get("/openapi.json").get_json()["openapi"] == "3.1.0"
