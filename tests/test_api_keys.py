"""``/api/v1/users/me/api-keys``: personal API keys with scopes, as a script sees them.

A key is made once (its secret shown only then), listed without it, used as a Bearer token
within its scopes, and revoked. Each test runs on SQLite and on MariaDB/MySQL.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from flask import Flask
from flask.testing import FlaskClient

from tests.helpers import (
    API_KEYS,
    ME,
    Account,
    ApiActions,
    AppBuilder,
    assert_problem,
    bearer,
    browser_of,
    csrf_header,
    error_fields,
    new_api_key,
    reauthenticate,
)

KEY_FIELDS = {"id", "name", "prefix", "scopes", "created_at", "expires_at", "last_used_at"}
CHINESE = {"Accept-Language": "zh-CN,zh;q=0.9"}


def utc(timestamp: str) -> datetime:
    assert timestamp.endswith("Z"), timestamp
    return datetime.fromisoformat(timestamp)


def events_of(api: ApiActions, kind: str) -> list[dict[str, Any]]:
    return [row for row in api.rows("security_event") if row["type"] == kind]


# --- POST: make a key ---------------------------------------------------------------------------


def test_a_new_key_is_shown_once_with_its_secret_and_never_cached(
    client: FlaskClient, api: ApiActions, member: Account
) -> None:
    before = datetime.now(UTC) - timedelta(seconds=2)
    body = {"name": "backup script", "scopes": ["write", "read"]}
    response = client.post(API_KEYS, json=body, headers=member.headers)
    assert response.status_code == 201, response.get_data(as_text=True)
    assert response.headers["Cache-Control"] == "no-store"
    key = response.get_json()
    assert set(key) == KEY_FIELDS | {"key"}
    assert key["name"] == "backup script"
    assert key["scopes"] == ["read", "write"]  # in the scopes' own order
    assert key["key"].startswith("uh_") and len(key["key"]) == 46
    assert key["prefix"] == key["key"][:11]
    assert key["last_used_at"] is None
    assert before <= utc(key["created_at"]) <= datetime.now(UTC)
    lifetime = utc(key["expires_at"]) - utc(key["created_at"])
    assert lifetime == timedelta(days=90)
    stored = next(row for row in api.rows("api_token") if row["id"] == key["id"])
    assert key["key"] not in str(stored)  # only its SHA-256 is kept
    assert (stored["name"], stored["scopes"]) == ("backup script", "read write")


@pytest.mark.parametrize("seconds", [3600, 3600.0])  # JSON Schema's integers both
def test_the_lifetime_is_the_one_asked_for(
    client: FlaskClient, member: Account, seconds: float
) -> None:
    body = {"name": "ci", "scopes": ["read"], "expires_in": seconds}
    key = client.post(API_KEYS, json=body, headers=member.headers).get_json()
    assert utc(key["expires_at"]) - utc(key["created_at"]) == timedelta(hours=1)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param({"name": "", "scopes": ["read"]}, "name", id="name-empty"),
        pytest.param({"name": "   ", "scopes": ["read"]}, "name", id="name-blank"),
        pytest.param({"name": "x" * 101, "scopes": ["read"]}, "name", id="name-too-long"),
        pytest.param({"name": "a\x00b", "scopes": ["read"]}, "name", id="name-nul"),
        pytest.param({"name": "a\u200bb", "scopes": ["read"]}, "name", id="name-invisible"),
        pytest.param({"name": 5, "scopes": ["read"]}, "name", id="name-number"),
        pytest.param({"scopes": ["read"]}, "name", id="name-missing"),
        pytest.param({"name": "ci", "scopes": []}, "scopes", id="scopes-empty"),
        pytest.param({"name": "ci", "scopes": ["root"]}, "scopes", id="scope-unknown"),
        pytest.param({"name": "ci", "scopes": ["READ"]}, "scopes", id="scope-upper-case"),
        pytest.param({"name": "ci", "scopes": "read"}, "scopes", id="scopes-string"),
        pytest.param({"name": "ci", "scopes": [1]}, "scopes.0", id="scope-number"),
        pytest.param({"name": "ci"}, "scopes", id="scopes-missing"),
        pytest.param({"name": "ci", "scopes": ["admin"]}, "scopes", id="admin-for-a-member"),
        pytest.param(
            {"name": "ci", "scopes": ["read"], "expires_in": 59}, "expires_in", id="too-short"
        ),
        pytest.param(
            {"name": "ci", "scopes": ["read"], "expires_in": 31622401}, "expires_in", id="too-long"
        ),
        pytest.param(
            {"name": "ci", "scopes": ["read"], "expires_in": -60}, "expires_in", id="negative"
        ),
        pytest.param(
            {"name": "ci", "scopes": ["read"], "expires_in": "3600"}, "expires_in", id="a-string"
        ),
        pytest.param(
            {"name": "ci", "scopes": ["read"], "expires_in": True}, "expires_in", id="a-boolean"
        ),
        pytest.param(
            {"name": "ci", "scopes": ["read"], "expires_in": 3600.5}, "expires_in", id="a-fraction"
        ),
        pytest.param({"name": "ci", "scopes": ["read"], "owner": 1}, "owner", id="unknown-field"),
    ],
)
def test_invalid_fields_are_422_naming_the_field_and_make_no_key(
    client: FlaskClient, api: ApiActions, member: Account, body: dict[str, Any], field: str
) -> None:
    problem = assert_problem(client.post(API_KEYS, json=body, headers=member.headers), 422)
    assert field in error_fields(problem), problem
    assert api.count("api_token") == 1  # the member's log-in token only
    assert events_of(api, "api-key-created") == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param(b'{"name": "a\\ud800b", "scopes": ["read"]}', "name", id="lone-surrogate"),
        pytest.param(b'{"name": NaN, "scopes": ["read"]}', "name", id="nan"),
        pytest.param(
            b'{"name": "ci", "scopes": ["read"], "expires_in": 1000000000000000000000000000000}',
            "expires_in",
            id="huge-lifetime",
        ),
    ],
)
def test_values_the_test_client_cannot_encode_are_422(
    client: FlaskClient, api: ApiActions, member: Account, body: bytes, field: str
) -> None:
    response = client.post(
        API_KEYS, data=body, content_type="application/json", headers=member.headers
    )
    assert error_fields(assert_problem(response, 422)) == {field}
    assert api.count("api_token") == 1


def test_admin_alone_is_refused_even_for_an_administrator(
    client: FlaskClient, admin: Account
) -> None:
    """A key with only ``admin`` could make no call at all: it needs read or write."""
    body = {"name": "ci", "scopes": ["admin"]}
    problem = assert_problem(client.post(API_KEYS, json=body, headers=admin.headers), 422)
    assert error_fields(problem) == {"scopes"}


@pytest.mark.parametrize(
    "name",
    [
        "<script>alert('key')</script>",
        "'; DROP TABLE api_token; --",
        'Robert"); DELETE FROM user; --',
        "张三的备份脚本",
        "🔑 key & <b>bold</b> \\ %s {}",
        "x" * 100,
    ],
)
def test_any_visible_name_is_stored_and_returned_verbatim(
    client: FlaskClient, api: ApiActions, member: Account, name: str
) -> None:
    made = new_api_key(client, member.headers, "read", name=name)
    assert made["name"] == name
    listed = client.get(API_KEYS, headers=member.headers)
    assert listed.mimetype == "application/json"
    assert [key["name"] for key in listed.get_json()] == [name]
    assert [row["name"] for row in api.rows("api_token") if row["name"]] == [name]
    events = client.get("/api/v1/users/me/events", headers=member.headers).get_json()["items"]
    assert events[0]["details"] == {"key_id": made["id"], "name": name, "scopes": ["read"]}
    assert api.count("user") == 1  # nothing was run as SQL


def test_surrounding_white_space_is_dropped(client: FlaskClient, member: Account) -> None:
    made = new_api_key(client, member.headers, "read", name="\u3000 nightly job  ")
    assert made["name"] == "nightly job"


# --- GET: list the keys -------------------------------------------------------------------------


def test_the_list_shows_live_keys_newest_first_without_secrets(
    client: FlaskClient, api: ApiActions, member: Account
) -> None:
    first = new_api_key(client, member.headers, "read", name="first")
    second = new_api_key(client, member.headers, "read", "write", name="second")
    api.account("other")
    new_api_key(client, bearer(api.token("other")), "read", name="someone else's")
    response = client.get(API_KEYS, headers=member.headers)
    assert response.status_code == 200
    keys = response.get_json()
    assert [key["id"] for key in keys] == [second["id"], first["id"]]  # not log-in tokens
    assert all(set(key) == KEY_FIELDS for key in keys)
    assert first["key"] not in response.get_data(as_text=True)
    assert keys[0]["scopes"] == ["read", "write"]


def test_an_expired_key_is_not_listed_and_does_not_work(
    client: FlaskClient, api: ApiActions, member: Account
) -> None:
    body = {"name": "short", "scopes": ["read"], "expires_in": 60}
    key = client.post(API_KEYS, json=body, headers=member.headers).get_json()
    assert client.get(ME, headers=bearer(key["key"])).status_code == 200
    with time_machine.travel(timedelta(seconds=61)):
        assert client.get(API_KEYS, headers=member.headers).get_json() == []
        assert_problem(client.get(ME, headers=bearer(key["key"])), 401)


# --- Scopes -------------------------------------------------------------------------------------


def test_a_read_key_reads_but_every_write_is_403_insufficient_scope(
    client: FlaskClient, api: ApiActions, member: Account
) -> None:
    read = bearer(new_api_key(client, member.headers, "read")["key"])
    assert client.get(ME, headers=read).get_json()["username"] == "member"
    assert client.get(API_KEYS, headers=read).status_code == 200
    writes = [
        client.patch(ME, json={"display_name": "changed"}, headers=read),
        client.post(API_KEYS, json={"name": "more", "scopes": ["read"]}, headers=read),
        client.delete(f"{API_KEYS}/1", headers=read),
        client.delete("/api/v1/tokens", headers=read),
    ]
    for response in writes:
        problem = assert_problem(response, 403)
        assert problem["type"] == "/problems/insufficient-scope"
        assert "read scope" in problem["detail"]
    assert api.user_row("member")["display_name"] is None
    assert api.count("api_token") == 2  # the log-in token and the read key


def test_a_write_key_writes(client: FlaskClient, api: ApiActions, member: Account) -> None:
    write = bearer(new_api_key(client, member.headers, "write")["key"])
    response = client.patch(ME, json={"display_name": "by a script"}, headers=write)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert api.user_row("member")["display_name"] == "by a script"


def test_a_write_key_makes_keys_as_strong_as_itself_and_the_event_names_it(
    client: FlaskClient, api: ApiActions, member: Account
) -> None:
    maker = new_api_key(client, member.headers, "write")
    reauthenticate(client, bearer(maker["key"]))  # a key is never a fresh log-in
    made = [new_api_key(client, bearer(maker["key"]), *scopes) for scopes in (["read"], ["write"])]
    assert [key["scopes"] for key in made] == [["read"], ["write"]]
    created = events_of(api, "api-key-created")
    assert [event["api_key_id"] for event in created[1:]] == [maker["id"], maker["id"]]


def test_no_key_can_make_a_key_stronger_than_itself(
    client: FlaskClient, api: ApiActions, admin: Account
) -> None:
    """An administrator's write key cannot mint an admin key: 403, not made."""
    write = bearer(new_api_key(client, admin.headers, "write")["key"])
    reauthenticate(client, write)
    body = {"name": "escalation", "scopes": ["read", "admin"]}
    problem = assert_problem(client.post(API_KEYS, json=body, headers=write), 403)
    assert problem["type"] == "/problems/insufficient-scope"
    assert error_fields(problem) == {"scopes"}
    assert "admin" in problem["detail"] and "POST /api/v1/tokens" in problem["detail"]
    assert [row["name"] for row in api.rows("api_token") if row["name"]] == ["script"]
    admin_key = bearer(new_api_key(client, admin.headers, "write", "admin")["key"])
    reauthenticate(client, admin_key)
    assert new_api_key(client, admin_key, "read", "admin")["scopes"] == ["read", "admin"]


def test_only_an_administrator_makes_admin_keys_and_they_act_as_one(
    client: FlaskClient, admin: Account, member: Account
) -> None:
    body = {"name": "ops", "scopes": ["read", "admin"]}
    problem = assert_problem(client.post(API_KEYS, json=body, headers=member.headers), 422)
    assert error_fields(problem) == {"scopes"}
    assert "administrator" in problem["detail"]
    key = bearer(new_api_key(client, admin.headers, "read", "admin")["key"])
    assert client.get("/api/v1/users", headers=key).get_json()["total"] == 2
    assert client.get(f"/api/v1/users/{member.id}", headers=key).status_code == 200
    refused = client.patch(f"/api/v1/users/{member.id}", json={"is_admin": True}, headers=key)
    assert assert_problem(refused, 403)["type"] == "/problems/insufficient-scope"


def test_an_administrators_key_without_admin_is_refused_admin_operations(
    client: FlaskClient, admin: Account, member: Account
) -> None:
    key = bearer(new_api_key(client, admin.headers, "read", "write")["key"])
    assert client.get(ME, headers=key).get_json()["is_admin"] is True
    for response in (
        client.get("/api/v1/users", headers=key),
        client.get("/api/v1/events", headers=key),
        client.delete(f"/api/v1/users/{member.id}", headers=key),
    ):
        problem = assert_problem(response, 403)
        assert "admin scope" in problem["detail"]
    assert client.get(f"/api/v1/users/{member.id}", headers=admin.headers).status_code == 200


def test_a_log_in_token_works_as_before(
    client: FlaskClient, admin: Account, member: Account
) -> None:
    """No scopes: a log-in token does whatever its user may."""
    assert client.patch(ME, json={"display_name": "M"}, headers=member.headers).status_code == 200
    assert client.get("/api/v1/users", headers=admin.headers).status_code == 200
    assert client.delete(f"/api/v1/users/{member.id}", headers=admin.headers).status_code == 204
    assert client.delete("/api/v1/tokens", headers=admin.headers).status_code == 204
    assert_problem(client.get(ME, headers=admin.headers), 401)


def test_a_browser_session_makes_keys_with_the_csrf_header(
    app: Flask, api: ApiActions, member: Account
) -> None:
    browser = browser_of(app, "member")
    body = {"name": "from the browser", "scopes": ["read", "write"]}
    problem = assert_problem(browser.post(API_KEYS, json=body), 400)
    assert problem["type"] == "/problems/csrf-failed"
    response = browser.post(API_KEYS, json=body, headers=csrf_header(browser))
    assert response.status_code == 201, response.get_data(as_text=True)
    assert browser.get(API_KEYS).get_json()[0]["name"] == "from the browser"


# --- last_used_at --------------------------------------------------------------------------------


def test_last_used_is_written_at_most_once_per_interval(
    build_app: AppBuilder, database_url: str
) -> None:
    app = build_app(database_url, USERHUB_LAST_USED_INTERVAL_SECONDS=60)
    client = app.test_client()
    start = datetime(2030, 1, 1, 8, 0, tzinfo=UTC)
    with time_machine.travel(start, tick=False) as clock:
        owner = ApiActions(app, client).account("owner")
        script = bearer(new_api_key(client, owner.headers, "read")["key"])

        def last_used() -> datetime | None:
            [key] = client.get(API_KEYS, headers=owner.headers).get_json()
            return utc(key["last_used_at"]) if key["last_used_at"] else None

        assert last_used() is None
        for seconds, written in [(5, 5), (50, 5), (11, 66), (59, 66), (1, 126)]:
            clock.shift(timedelta(seconds=seconds))
            assert client.get(ME, headers=script).status_code == 200
            assert last_used() == start + timedelta(seconds=written)


# --- DELETE: revoke -----------------------------------------------------------------------------


def test_a_revoked_key_is_refused_at_once(
    client: FlaskClient, api: ApiActions, member: Account
) -> None:
    key = new_api_key(client, member.headers, "read")
    assert client.get(ME, headers=bearer(key["key"])).status_code == 200
    response = client.delete(f"{API_KEYS}/{key['id']}", headers=member.headers)
    assert response.status_code == 204
    assert response.get_data() == b""
    problem = assert_problem(client.get(ME, headers=bearer(key["key"])), 401)
    assert problem["type"] == "/problems/unauthenticated"
    assert client.get(API_KEYS, headers=member.headers).get_json() == []
    [revoked] = events_of(api, "api-key-revoked")
    assert (revoked["user_id"], revoked["actor_id"]) == (member.id, None)


def test_a_write_key_revokes_itself(client: FlaskClient, member: Account) -> None:
    key = new_api_key(client, member.headers, "write")
    assert client.delete(f"{API_KEYS}/{key['id']}", headers=bearer(key["key"])).status_code == 204
    assert_problem(client.get(ME, headers=bearer(key["key"])), 401)


def test_revoking_what_is_not_my_key_is_404(
    client: FlaskClient, api: ApiActions, member: Account
) -> None:
    theirs = new_api_key(client, api.account("other").headers, "read")
    login_tokens = [row["id"] for row in api.rows("api_token") if row["name"] is None]
    for key_id in [theirs["id"], *login_tokens, 999999, 0, 2**63 - 1, 2**63, 10**30]:
        problem = assert_problem(client.delete(f"{API_KEYS}/{key_id}", headers=member.headers), 404)
        assert problem["type"] == "/problems/not-found"
    assert client.get(ME, headers=bearer(theirs["key"])).status_code == 200
    assert api.count("api_token") == 3


def test_the_problems_speak_chinese(client: FlaskClient, member: Account) -> None:
    headers = member.headers | CHINESE
    missing = assert_problem(client.delete(f"{API_KEYS}/42", headers=headers), 404)
    assert "42" in missing["detail"] and "API" in missing["detail"]
    assert not missing["detail"].startswith("You have")
    read = bearer(new_api_key(client, member.headers, "read")["key"]) | CHINESE
    refused = assert_problem(client.patch(ME, json={"display_name": "x"}, headers=read), 403)
    assert "read" in refused["detail"] and not refused["detail"].startswith("This API key")
    body = {"name": " ", "scopes": ["root"]}
    invalid = assert_problem(client.post(API_KEYS, json=body, headers=headers), 422)
    assert all(not error["message"][0].isascii() for error in invalid["errors"])
