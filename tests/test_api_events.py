"""``/api/v1/users/me/events`` and ``/api/v1/events``: the security log, a page at a time, the
newest first; administrators filter it. Bad query parameters are 4xx problems, never a 500.
Each test runs on SQLite and on MariaDB/MySQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from flask.testing import FlaskClient

from tests.helpers import (
    Account,
    ApiActions,
    assert_problem,
    bearer,
    error_fields,
    new_api_key,
)

MINE = "/api/v1/users/me/events"
ALL = "/api/v1/events"
EVENT_FIELDS = {
    "id",
    "type",
    "created_at",
    "ip",
    "user_agent",
    "session_id",
    "api_key_id",
    "actor_id",
    "details",
}
PAGE_FIELDS = {"items", "total", "page", "per_page", "pages", "links"}


def page_of(client: FlaskClient, url: str, headers: dict[str, str]) -> dict[str, Any]:
    response = client.get(url, headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    page: dict[str, Any] = response.get_json()
    assert set(page) == PAGE_FIELDS
    return page


def types_in(page: dict[str, Any]) -> list[str]:
    return [event["type"] for event in page["items"]]


# --- GET /api/v1/users/me/events -----------------------------------------------------------------


def test_my_log_shows_the_registration_and_the_log_in_newest_first(
    client: FlaskClient, api: ApiActions
) -> None:
    assert api.register("张三").status_code == 201
    response = client.post(
        "/api/v1/tokens",
        json={"username": "张三", "password": "correct horse battery"},
        headers={"User-Agent": "curl/8.5.0"},
    )
    token = response.get_json()["token"]
    page = page_of(client, MINE, bearer(token))
    assert types_in(page) == ["logged-in", "registered"]
    logged_in = page["items"][0]
    assert set(logged_in) == EVENT_FIELDS
    assert logged_in["details"] == {"method": "password"}
    assert (logged_in["ip"], logged_in["user_agent"]) == ("127.0.0.1", "curl 8")
    assert logged_in["api_key_id"] is not None and logged_in["session_id"] is None
    assert logged_in["actor_id"] is None
    assert logged_in["created_at"].endswith("Z")
    assert page["items"][1]["details"] == {}
    assert (page["total"], page["page"], page["per_page"], page["pages"]) == (2, 1, 20, 1)


def test_my_log_is_paginated_with_links(client: FlaskClient, member: Account) -> None:
    keys = [new_api_key(client, member.headers, "read", name=f"key {n}") for n in range(4)]
    # registered, logged-in, then four api-key-created: six in all
    first = page_of(client, f"{MINE}?per_page=4", member.headers)
    assert (first["total"], first["pages"]) == (6, 2)
    assert [event["details"].get("name") for event in first["items"]] == [
        "key 3",
        "key 2",
        "key 1",
        "key 0",
    ]
    assert first["links"] == {
        "self": f"{MINE}?page=1&per_page=4",
        "first": f"{MINE}?page=1&per_page=4",
        "last": f"{MINE}?page=2&per_page=4",
        "prev": None,
        "next": f"{MINE}?page=2&per_page=4",
    }
    second = page_of(client, first["links"]["next"], member.headers)
    assert types_in(second) == ["logged-in", "registered"]
    assert second["links"]["prev"] == f"{MINE}?page=1&per_page=4"
    assert second["links"]["next"] is None
    beyond = page_of(client, f"{MINE}?page=9&per_page=4", member.headers)
    assert beyond["items"] == [] and beyond["links"]["prev"] == f"{MINE}?page=2&per_page=4"
    assert keys[0]["id"] == first["items"][3]["details"]["key_id"]


def test_my_log_shows_only_my_events(client: FlaskClient, api: ApiActions, member: Account) -> None:
    other = api.account("other")
    new_api_key(client, other.headers, "read")
    assert types_in(page_of(client, MINE, member.headers)) == ["logged-in", "registered"]


def test_an_administrators_action_names_the_administrator(
    client: FlaskClient, admin: Account, member: Account
) -> None:
    body = {"display_name": "Renamed"}
    assert client.patch(f"/api/v1/users/{member.id}", json=body, headers=admin.headers).status_code
    newest = page_of(client, MINE, member.headers)["items"][0]
    assert newest["type"] == "account-updated"
    assert (newest["actor_id"], newest["details"]) == (admin.id, {"fields": ["display_name"]})


# --- GET /api/v1/events (admin) ------------------------------------------------------------------


def test_an_administrator_filters_by_user_type_and_time(
    client: FlaskClient, api: ApiActions, admin: Account
) -> None:
    start = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)
    with time_machine.travel(start, tick=False) as clock:
        token = bearer(api.token(admin.username))
        member = api.account("member")
        clock.shift(timedelta(minutes=4))  # within the member's log-in: a key needs a recent one
        new_api_key(client, member.headers, "read")
        everything = page_of(client, ALL, token)
        # the admin: registered, two log-ins; the member: registered, a log-in, a key made
        assert everything["total"] == 6
        assert types_in(everything)[0] == "api-key-created"
        theirs = page_of(client, f"{ALL}?user_id={member.id}", token)
        assert types_in(theirs) == ["api-key-created", "logged-in", "registered"]
        log_ins = page_of(client, f"{ALL}?type=logged-in&per_page=2", token)
        assert (types_in(log_ins), log_ins["total"]) == (["logged-in"] * 2, 3)
        assert log_ins["links"]["next"] == f"{ALL}?page=2&per_page=2&type=logged-in"
        since = "2030-06-01T20:02:00+08:00"  # 12:02 UTC: after the log-ins, before the key
        recent = page_of(client, f"{ALL}?since={since.replace('+', '%2B')}", token)
        assert types_in(recent) == ["api-key-created"]
        assert recent["links"]["self"] == f"{ALL}?page=1&per_page=20&since=2030-06-01T12:02:00Z"
        both = page_of(client, f"{ALL}?user_id={admin.id}&type=registered", token)
        assert [event["type"] for event in both["items"]] == ["registered"]


@pytest.mark.parametrize(
    ("since", "total"),
    [
        ("0001-01-01T00:00:00+23:59", 2),  # before year 1 in UTC: the earliest time there is
        ("9999-12-31T23:59:59.999999-23:59", 0),  # after year 9999: the latest
        ("2000-01-01t00:00:00.123456789z", 2),  # lower case, nanoseconds
    ],
)
def test_any_rfc_3339_time_is_taken(
    client: FlaskClient, admin: Account, since: str, total: int
) -> None:
    url = f"{ALL}?since={since.replace('+', '%2B')}"
    assert page_of(client, url, admin.headers)["total"] == total


def test_a_member_is_refused_the_whole_log(client: FlaskClient, member: Account) -> None:
    problem = assert_problem(client.get(ALL, headers=member.headers), 403)
    assert problem["type"] == "/problems/forbidden"
    assert_problem(client.get(ALL), 401)


def test_an_administrators_key_needs_the_admin_scope(client: FlaskClient, admin: Account) -> None:
    without = bearer(new_api_key(client, admin.headers, "read", "write")["key"])
    assert_problem(client.get(ALL, headers=without), 403)
    with_admin = bearer(new_api_key(client, admin.headers, "read", "admin")["key"])
    assert page_of(client, ALL, with_admin)["total"] >= 2


@pytest.mark.parametrize(
    ("query", "status", "field"),
    [
        ("type=bogus", 422, "type"),
        ("type=LOGGED-IN", 422, "type"),
        ("type=", 422, "type"),
        ("since=2026-01-01", 422, "since"),
        ("since=1700000000", 422, "since"),
        ("since=yesterday", 422, "since"),
        ("since=2026-02-30T00:00:00Z", 422, "since"),
        ("since=2026-01-01T24:00:00Z", 422, "since"),
        ("since=2026-01-01T12:99:00Z", 422, "since"),
        ("since=2026-01-01T00:00:00", 422, "since"),  # no offset
        ("since=2026-01-01T00:00:00%2B24:00", 422, "since"),
        ("since=2026-01-01 00:00:00Z", 422, "since"),
        ("user_id=0", 422, "user_id"),
        ("user_id=abc", 422, "user_id"),
        ("user_id=-1", 422, "user_id"),
        ("user_id=9223372036854775808", 422, "user_id"),
        ("user_id=1" + "0" * 40, 422, "user_id"),
        ("page=0", 422, "page"),
        ("per_page=101", 422, "per_page"),
        ("per_page=x", 422, "per_page"),
        ("username=zhang", 400, "username"),
        ("q=zhang", 400, "q"),
    ],
)
def test_bad_query_parameters_are_4xx_problems(
    client: FlaskClient, admin: Account, query: str, status: int, field: str
) -> None:
    problem = assert_problem(client.get(f"{ALL}?{query}", headers=admin.headers), status)
    assert error_fields(problem) == {field}


@pytest.mark.parametrize(
    ("query", "status"),
    [("user_id=1", 400), ("type=logged-in", 400), ("since=x", 400), ("page=0", 422)],
)
def test_my_log_takes_no_filters(
    client: FlaskClient, member: Account, query: str, status: int
) -> None:
    problem = assert_problem(client.get(f"{MINE}?{query}", headers=member.headers), status)
    assert error_fields(problem) == {query.split("=")[0]}


@pytest.mark.parametrize(
    ("query", "status"),
    [("type=bogus", 422), ("since=2026-01-01", 422), ("username=x", 400)],
)
def test_the_problems_speak_chinese(
    client: FlaskClient, admin: Account, query: str, status: int
) -> None:
    headers = admin.headers | {"Accept-Language": "zh-CN"}
    problem = assert_problem(client.get(f"{ALL}?{query}", headers=headers), status)
    assert not problem["errors"][0]["message"][0].isascii(), problem
