"""``/api/v1/users/.../sessions``: the browsers logged in to an account, and logging one out
from another, as two real browsers (test clients with their own cookies) see it. Each test runs
on SQLite and on MariaDB/MySQL."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from flask import Flask
from flask.testing import FlaskClient

from tests.helpers import (
    ME,
    Account,
    ApiActions,
    AppBuilder,
    assert_problem,
    bearer,
    browser_of,
    csrf_header,
    is_logged_in,
    new_api_key,
)

MINE = "/api/v1/users/me/sessions"
SESSION_FIELDS = {
    "id",
    "created_at",
    "last_seen_at",
    "expires_at",
    "ip",
    "user_agent",
    "auth_method",
    "current",
}
FIREFOX = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0"


def sessions_of(client: FlaskClient, headers: dict[str, str] | None = None) -> list[dict[str, Any]]:
    response = client.get(MINE, headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    found: list[dict[str, Any]] = response.get_json()
    return found


def user_sessions(user_id: int) -> str:
    return f"/api/v1/users/{user_id}/sessions"


def ended_events(api: ApiActions) -> list[dict[str, Any]]:
    return [row for row in api.rows("security_event") if row["type"] == "session-ended"]


@pytest.fixture
def two_browsers(app: Flask, member: Account) -> tuple[FlaskClient, FlaskClient]:
    """The member logged in twice: here, then elsewhere (in Firefox)."""
    return browser_of(app, "member"), browser_of(app, "member", user_agent=FIREFOX)


# --- GET /api/v1/users/me/sessions ---------------------------------------------------------------


def test_the_list_marks_the_session_the_call_came_with(
    two_browsers: tuple[FlaskClient, FlaskClient],
) -> None:
    here, elsewhere = two_browsers
    seen_here, seen_elsewhere = sessions_of(here), sessions_of(elsewhere)
    assert len(seen_here) == 2
    assert all(set(session) == SESSION_FIELDS for session in seen_here)
    [current] = [session for session in seen_here if session["current"]]
    [other] = [session for session in seen_elsewhere if session["current"]]
    assert current["id"] != other["id"]
    assert {session["id"] for session in seen_here} == {current["id"], other["id"]}
    firefox = next(session for session in seen_here if session["id"] == other["id"])
    assert firefox["user_agent"] == "Firefox 133 on Windows"
    assert (firefox["ip"], firefox["auth_method"]) == ("127.0.0.1", "password")
    assert firefox["created_at"] <= firefox["last_seen_at"] < firefox["expires_at"]


def test_a_token_sees_the_sessions_and_none_is_current(
    client: FlaskClient, member: Account, two_browsers: tuple[FlaskClient, FlaskClient]
) -> None:
    listed = sessions_of(client, member.headers)
    assert len(listed) == 2 and not any(session["current"] for session in listed)


def test_only_my_live_sessions_are_listed(
    app: Flask, api: ApiActions, client: FlaskClient, member: Account
) -> None:
    api.account("other")
    browser_of(app, "other")
    assert sessions_of(client, member.headers) == []
    browser_of(app, "member")
    assert len(sessions_of(client, member.headers)) == 1
    with time_machine.travel(timedelta(days=8)):  # past the idle lifetime (7 days)
        assert sessions_of(client, bearer(api.token("member"))) == []


# --- DELETE /api/v1/users/me/sessions/{id} -------------------------------------------------------


def test_ending_another_session_logs_that_browser_out_at_once(
    api: ApiActions, member: Account, two_browsers: tuple[FlaskClient, FlaskClient]
) -> None:
    here, elsewhere = two_browsers
    [other] = [session for session in sessions_of(elsewhere) if session["current"]]
    response = here.delete(f"{MINE}/{other['id']}", headers=csrf_header(here))
    assert response.status_code == 204, response.get_data(as_text=True)
    assert response.get_data() == b""
    assert_problem(elsewhere.get(ME), 401)
    assert not is_logged_in(elsewhere, "/account")  # the page sends it to log in
    assert here.get(ME).status_code == 200
    assert [session["current"] for session in sessions_of(here)] == [True]
    [event] = ended_events(api)
    assert (event["user_id"], event["actor_id"]) == (member.id, None)
    assert json.loads(event["details"]) == {"ended_session_id": other["id"]}


def test_a_browser_ending_a_session_needs_the_csrf_header(
    two_browsers: tuple[FlaskClient, FlaskClient],
) -> None:
    here, elsewhere = two_browsers
    [other] = [session for session in sessions_of(elsewhere) if session["current"]]
    problem = assert_problem(here.delete(f"{MINE}/{other['id']}"), 400)
    assert problem["type"] == "/problems/csrf-failed"
    assert elsewhere.get(ME).status_code == 200


def test_a_script_ends_a_session_with_a_write_key_not_a_read_key(
    client: FlaskClient, member: Account, two_browsers: tuple[FlaskClient, FlaskClient]
) -> None:
    here, _elsewhere = two_browsers
    [mine] = [session for session in sessions_of(here) if session["current"]]
    read = bearer(new_api_key(client, member.headers, "read")["key"])
    problem = assert_problem(client.delete(f"{MINE}/{mine['id']}", headers=read), 403)
    assert problem["type"] == "/problems/insufficient-scope"
    write = bearer(new_api_key(client, member.headers, "write")["key"])
    assert client.delete(f"{MINE}/{mine['id']}", headers=write).status_code == 204
    assert_problem(here.get(ME), 401)


def test_ending_this_very_session_logs_this_browser_out(
    build_app: AppBuilder, database_url: str
) -> None:
    """Also in a request that first writes its "last seen" (a commit of its own)."""
    app = build_app(database_url, USERHUB_LAST_USED_INTERVAL_SECONDS=1)
    ApiActions(app, app.test_client()).account("member")
    here = browser_of(app, "member")
    headers = csrf_header(here)
    [mine] = sessions_of(here)
    with time_machine.travel(timedelta(seconds=5)):
        assert here.delete(f"{MINE}/{mine['id']}", headers=headers).status_code == 204
        assert_problem(here.get(ME), 401)
        assert not is_logged_in(here, "/account")


def test_what_is_not_my_live_session_is_404(
    app: Flask, api: ApiActions, client: FlaskClient, member: Account
) -> None:
    other = api.account("other")
    browser_of(app, "other")
    [theirs] = sessions_of(client, other.headers)
    browser_of(app, "member")
    [mine] = sessions_of(client, member.headers)
    for session_id in [theirs["id"], 999999, 0, 2**63 - 1, 2**63, 10**30]:
        response = client.delete(f"{MINE}/{session_id}", headers=member.headers)
        assert assert_problem(response, 404)["type"] == "/problems/not-found"
    with time_machine.travel(timedelta(days=8)):  # idle too long: no longer a session
        late = bearer(api.token("member"))
        assert_problem(client.delete(f"{MINE}/{mine['id']}", headers=late), 404)
    assert len(sessions_of(client, other.headers)) == 1
    assert ended_events(api) == []


# --- Administrators ------------------------------------------------------------------------------


def test_an_administrator_lists_and_ends_a_users_sessions(
    api: ApiActions,
    client: FlaskClient,
    admin: Account,
    member: Account,
    two_browsers: tuple[FlaskClient, FlaskClient],
) -> None:
    here, elsewhere = two_browsers
    listed = client.get(user_sessions(member.id), headers=admin.headers)
    assert listed.status_code == 200
    sessions = listed.get_json()
    assert len(sessions) == 2 and not any(session["current"] for session in sessions)
    [other] = [session for session in sessions_of(elsewhere) if session["current"]]
    ended = client.delete(f"{user_sessions(member.id)}/{other['id']}", headers=admin.headers)
    assert ended.status_code == 204
    assert_problem(elsewhere.get(ME), 401)
    assert here.get(ME).status_code == 200
    [event] = ended_events(api)
    assert (event["user_id"], event["actor_id"]) == (member.id, admin.id)


def test_the_administrators_operations_refuse_everyone_else(
    client: FlaskClient, admin: Account, member: Account
) -> None:
    admin_without_scope = bearer(new_api_key(client, admin.headers, "read", "write")["key"])
    for headers in (member.headers, admin_without_scope):
        assert_problem(client.get(user_sessions(admin.id), headers=headers), 403)
        assert_problem(client.delete(f"{user_sessions(admin.id)}/1", headers=headers), 403)
    assert_problem(client.get(user_sessions(admin.id)), 401)


def test_an_unknown_user_or_session_is_404_for_an_administrator(
    client: FlaskClient, admin: Account, member: Account
) -> None:
    for path in (
        user_sessions(999),
        f"{user_sessions(999)}/1",
        f"{user_sessions(member.id)}/1",
        f"{user_sessions(2**63)}/1",
        f"{user_sessions(member.id)}/{2**63}",
    ):
        method = client.get if path.endswith("sessions") else client.delete
        assert_problem(method(path, headers=admin.headers), 404)


def test_the_problems_speak_chinese(client: FlaskClient, admin: Account, member: Account) -> None:
    chinese = {"Accept-Language": "zh-CN"}
    mine = assert_problem(client.delete(f"{MINE}/42", headers=member.headers | chinese), 404)
    theirs = client.delete(f"{user_sessions(member.id)}/42", headers=admin.headers | chinese)
    for problem in (mine, assert_problem(theirs, 404)):
        assert "42" in problem["detail"] and not problem["detail"].isascii()
