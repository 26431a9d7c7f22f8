"""The Postman collection covers the app: every OpenAPI operation and every tutorial route has a
request, every request tests its status, and there are enough tests in all.

This reads the collection as data, against the routes of an app built here; newman runs it
against a live server (``scripts/newman.sh``, ``make newman``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from tests.helpers import AppBuilder

POSTMAN = Path(__file__).resolve().parent.parent / "postman"
COLLECTION = POSTMAN / "userhub.postman_collection.json"
ENVIRONMENT = POSTMAN / "userhub.postman_environment.json"
SCHEMA_V21 = "https://schema.getpostman.com/json/collection/v2.1.0/collection.json"
MIN_TESTS = 30
IGNORED_METHODS = {"HEAD", "OPTIONS"}

PM_TEST = re.compile(r"\bpm\.test\(")
STATUS_CHECK = re.compile(
    r"pm\.response\.to\.(?:have\.status|be\.(?:ok|success|created))\b|pm\.response\.code\b"
)
BODY_READ = re.compile(r"pm\.response\.(?:json|text|stream)\b|\$\(|require\('cheerio'\)")
BODY_VARIABLE = re.compile(r"const (\w+) = pm\.response\.json\(\)")
POSTMAN_VARIABLE = re.compile(r"\{\{[^{}]+\}\}")
PATH_PARAMETER = re.compile(r"\{[^{}/]+\}|<[^<>/]+>")


@pytest.fixture(scope="module")
def collection() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(COLLECTION.read_text(encoding="utf-8"))
    return data


@pytest.fixture
def route_app(tmp_path: Path, build_app: AppBuilder) -> Flask:
    """An app for its routes and OpenAPI document only: no database is touched."""
    return build_app(f"sqlite:///{tmp_path / 'routes.sqlite3'}")


def walk(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every request item, depth first, in run order; folders are items with ``item``."""
    for item in items:
        if "item" in item:
            yield from walk(item["item"])
        else:
            yield item


def scripts(item: dict[str, Any], listen: str) -> str:
    return "\n".join(
        "\n".join(event["script"]["exec"])
        for event in item.get("event", [])
        if event.get("listen") == listen
    )


def all_scripts(node: dict[str, Any]) -> Iterator[str]:
    """The text of every script in the collection: its own, its folders' and its requests'."""
    for event in node.get("event", []):
        yield "\n".join(event["script"]["exec"])
    for child in node.get("item", []):
        yield from all_scripts(child)


def request_path(item: dict[str, Any]) -> str:
    """``{{baseUrl}}/api/v1/users/{{userId}}?x=1`` → ``/api/v1/users/{}``."""
    url = item["request"]["url"]
    raw = url["raw"] if isinstance(url, dict) else url
    assert raw.startswith("{{baseUrl}}/"), f"{item['name']!r}: URL must start with {{{{baseUrl}}}}"
    path = raw.removeprefix("{{baseUrl}}").split("?", 1)[0].split("#", 1)[0]
    return POSTMAN_VARIABLE.sub("{}", path)


def template(path: str) -> str:
    """``/users/{user_id}`` (OpenAPI) or ``/users/<int:user_id>`` (Werkzeug) → ``/users/{}``."""
    return PATH_PARAMETER.sub("{}", path)


def requested(collection: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (item["request"]["method"].upper(), request_path(item)) for item in walk(collection["item"])
    }


def test_collection_is_v21_with_a_base_url(collection: dict[str, Any]) -> None:
    assert collection["info"]["schema"] == SCHEMA_V21
    variables = {v["key"]: v.get("value") for v in collection.get("variable", [])}
    assert variables.get("baseUrl") == "http://127.0.0.1:5000"
    environment = json.loads(ENVIRONMENT.read_text(encoding="utf-8"))
    values = {v["key"]: v.get("value") for v in environment["values"]}
    assert values["baseUrl"] == "http://127.0.0.1:5000"
    assert {"adminUsername", "adminPassword"} <= values.keys()


def test_every_openapi_operation_has_a_request(
    collection: dict[str, Any], route_app: Flask
) -> None:
    spec = route_app.test_client().get("/openapi.json").get_json()
    operations = {
        (method.upper(), template(path))
        for path, item in spec["paths"].items()
        for method in item
        if method.upper() in {"GET", "PUT", "POST", "DELETE", "PATCH"}
    }
    assert operations, "the OpenAPI document lists no operations"
    missing = sorted(operations - requested(collection))
    assert not missing, f"OpenAPI operations without a request in the collection: {missing}"


def test_every_tutorial_route_has_a_request(collection: dict[str, Any], route_app: Flask) -> None:
    routes = {
        (method, template(rule.rule))
        for rule in route_app.url_map.iter_rules()
        if rule.endpoint.startswith("tutorial.")
        for method in rule.methods or ()
        if method not in IGNORED_METHODS
    }
    assert len(routes) >= 10, f"too few tutorial routes found: {sorted(routes)}"
    missing = sorted(routes - requested(collection))
    assert not missing, f"tutorial routes without a request in the collection: {missing}"


def test_enough_tests_in_all(collection: dict[str, Any]) -> None:
    count = sum(len(PM_TEST.findall(text)) for text in all_scripts(collection))
    assert count >= MIN_TESTS, f"only {count} pm.test calls; at least {MIN_TESTS} are needed"


def test_every_request_tests_its_status(collection: dict[str, Any]) -> None:
    untested = []
    for item in walk(collection["item"]):
        # The text of each pm.test(...) call runs from its start to the next one.
        blocks = PM_TEST.split(scripts(item, "test"))[1:]
        if not any(STATUS_CHECK.search(block) for block in blocks):
            untested.append(item["name"])
    assert not untested, f"requests without a pm.test on the status: {untested}"


def test_every_request_tests_its_body(collection: dict[str, Any]) -> None:
    untested = []
    for item in walk(collection["item"]):
        script = scripts(item, "test")
        # The body is read directly, through a parsed page ($), or through a variable holding it.
        names = BODY_VARIABLE.findall(script)
        reads = [BODY_READ.pattern, *(rf"\b{re.escape(name)}\b" for name in names)]
        body = re.compile("|".join(reads))
        if not any(body.search(block) for block in PM_TEST.split(script)[1:]):
            untested.append(item["name"])
    assert not untested, f"requests without a pm.test on the body: {untested}"


def test_request_names_are_unique(collection: dict[str, Any]) -> None:
    names = [item["name"] for item in walk(collection["item"])]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    assert not duplicates, f"request names used more than once: {duplicates}"


def test_form_posts_do_not_follow_redirects(collection: dict[str, Any]) -> None:
    """The log-in posts answer 302; the tests must see it, not the page it leads to."""
    for item in walk(collection["item"]):
        method, path = item["request"]["method"].upper(), request_path(item)
        if (method, path) in {("POST", "/test_post"), ("POST", "/test_request")}:
            behaviour = item.get("protocolProfileBehavior", {})
            assert behaviour.get("followRedirects") is False, item["name"]
