"""Every problem names its kind: ``type`` is ``/problems/<kind>``, documented and served.

A client switches on ``type`` instead of parsing words; these tests hold the kinds to what a
user sees: the right kind for each refusal, the same list in the OpenAPI document, and a page
at each address in both languages.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from tests.helpers import PASSWORD, Account, ApiActions, AuthActions, assert_problem
from userhub.services.errors import ServiceError
from userhub.web.errors import service_status
from userhub.web.problems import NO_TYPE, PROBLEM_TYPES, STATUS_TYPES


def all_subclasses(cls: type[ServiceError]) -> list[type[ServiceError]]:
    found = []
    for sub in cls.__subclasses__():
        found += [sub, *all_subclasses(sub)]
    return found


@pytest.mark.parametrize("error_class", all_subclasses(ServiceError), ids=lambda c: c.__name__)
def test_every_refusal_of_the_services_has_a_documented_kind_of_its_status(
    error_class: type[ServiceError],
) -> None:
    kind = PROBLEM_TYPES[error_class.code]
    refusal = error_class.__new__(error_class)  # the status depends on the class alone
    assert kind.status == service_status(refusal)


def test_each_status_falls_back_to_a_kind_of_that_status() -> None:
    for status, slug in STATUS_TYPES.items():
        assert PROBLEM_TYPES[slug].status == status


def kind_of(response: TestResponse, status: int) -> str:
    body = assert_problem(response, status)
    kind: str = body["type"]
    return kind


def test_refusals_name_their_kind(api: ApiActions, member: Account, admin: Account) -> None:
    client = api.client
    assert kind_of(api.register("MEMBER"), 409) == "/problems/username-taken"
    api.register("someone", email="taken@example.com")
    other = api.register("other", email="TAKEN@example.com")
    assert kind_of(other, 409) == "/problems/email-taken"
    assert kind_of(api.register("x", "short"), 422) == "/problems/invalid-fields"
    wrong = client.post("/api/v1/tokens", json={"username": "member", "password": "wrong-pass"})
    assert kind_of(wrong, 401) == "/problems/bad-credentials"
    assert kind_of(client.get("/api/v1/users/me"), 401) == "/problems/unauthenticated"
    assert kind_of(client.get("/api/v1/users", headers=member.headers), 403) == (
        "/problems/forbidden"
    )
    demote = client.patch(
        f"/api/v1/users/{admin.id}", json={"is_admin": False}, headers=admin.headers
    )
    assert kind_of(demote, 409) == "/problems/own-admin-rights"
    delete_self = client.delete(f"/api/v1/users/{admin.id}", headers=admin.headers)
    assert kind_of(delete_self, 409) == "/problems/own-account"
    assert kind_of(client.get("/api/v1/nothing-here"), 404) == "/problems/not-found"
    assert kind_of(client.delete("/api/v1/health"), 405) == "/problems/method-not-allowed"


@pytest.mark.parametrize(
    ("body", "headers", "status", "kind"),
    [
        (b"", {"Content-Type": "application/json"}, 400, "missing-body"),
        (b'{"username": ', {"Content-Type": "application/json"}, 400, "malformed-json"),
        (b"username=x", {"Content-Type": "text/plain"}, 415, "unsupported-media-type"),
        (b"[1, 2]", {"Content-Type": "application/json"}, 422, "not-a-json-object"),
    ],
)
def test_bodies_that_are_not_a_json_object_name_their_kind(
    client: FlaskClient, body: bytes, headers: dict[str, str], status: int, kind: str
) -> None:
    response = client.post("/save_data_to_mysql", data=body, headers=headers)
    assert kind_of(response, status) == f"/problems/{kind}"


def test_idempotency_key_refusals_name_their_kind(api: ApiActions) -> None:
    new = {"username": "wangwu", "password": PASSWORD}
    malformed = api.client.post("/api/v1/users", json=new, headers={"Idempotency-Key": "x" * 300})
    assert kind_of(malformed, 400) == "/problems/idempotency-key-malformed"
    key = {"Idempotency-Key": "7d4a3c1e-0000-4000-8000-000000000001"}
    assert api.client.post("/api/v1/users", json=new, headers=key).status_code == 201
    reused = api.client.post("/api/v1/users", json={**new, "username": "zhaoliu"}, headers=key)
    assert kind_of(reused, 422) == "/problems/idempotency-key-reused"


def test_a_session_write_without_its_csrf_header_is_csrf_failed(
    auth: AuthActions, client: FlaskClient
) -> None:
    auth.register()
    auth.login()
    response = client.patch("/api/v1/users/me", json={"display_name": "Zhang San"})
    assert kind_of(response, 400) == "/problems/csrf-failed"


def test_the_openapi_document_lists_every_kind(client: FlaskClient) -> None:
    spec = json.loads(client.get("/openapi.json").get_data(as_text=True))
    documented = spec["components"]["schemas"]["Problem"]["properties"]["type"]
    assert documented["enum"] == [
        *sorted(
            (kind.uri for kind in PROBLEM_TYPES.values()),
            key=lambda uri: (PROBLEM_TYPES[uri.rsplit("/", 1)[1]].status, uri),
        ),
        NO_TYPE,
    ]
    for kind in PROBLEM_TYPES.values():
        assert f"`{kind.uri}` ({kind.status})" in documented["description"]


@pytest.mark.parametrize("language", ["en", "zh-CN"])
def test_each_kind_has_a_page_at_its_address(client: FlaskClient, language: str) -> None:
    headers = {"Accept-Language": language}
    index = client.get("/problems", headers=headers)
    assert index.status_code == 200
    listed = set(re.findall(r'<li id="([a-z-]+)">', index.get_data(as_text=True)))
    assert listed == set(PROBLEM_TYPES)
    for kind in PROBLEM_TYPES.values():
        page = client.get(kind.uri, headers=headers)
        html = page.get_data(as_text=True)
        assert page.status_code == 200
        assert f"<code>{kind.uri}</code>" in html and f"<strong>{kind.status}</strong>" in html
    chinese = client.get("/problems/username-taken", headers={"Accept-Language": "zh-CN"})
    assert "已有其他账户使用这个用户名。" in chinese.get_data(as_text=True)


def test_an_unknown_kind_has_no_page(client: FlaskClient) -> None:
    assert client.get("/problems/no-such-kind").status_code == 404


def test_a_page_route_keeps_its_error_page(app: Flask) -> None:
    """Pages are not JSON routes: a refusal there is a page, not a problem document."""
    response = app.test_client().post("/register", data={})
    assert response.status_code == 400 and response.mimetype == "text/html"


def test_docs_api_lists_every_kind() -> None:
    """docs/api.md's table of problem types follows the code."""
    text = (Path(__file__).resolve().parents[1] / "docs" / "api.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `/problems/([a-z-]+)` \| (\d{3}) \|", text, flags=re.M))
    assert documented == {(kind.slug, str(kind.status)) for kind in PROBLEM_TYPES.values()}
