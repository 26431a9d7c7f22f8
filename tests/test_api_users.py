"""``/api/v1/users``: register, read and change your own account; administrators manage all.

Every test asserts what a client sees (status, headers, JSON) and, where it matters, what the
database then holds. Failures are problem+json and write nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner

from tests.helpers import (
    ME,
    NEW_PASSWORD,
    PASSWORD,
    Account,
    ApiActions,
    AuthActions,
    assert_problem,
    bearer,
    browser_of,
    csrf_token,
    error_fields,
    is_logged_in,
)
from userhub.services import users

USER_FIELDS = {
    "id",
    "username",
    "display_name",
    "email",
    "email_verified",
    "pending_email",
    "is_admin",
    "is_support",
    "is_active",
    "deactivated_at",
    "deletion_due_at",
    "created_at",
    "updated_at",
}


def user_url(user_id: int | str) -> str:
    return f"/api/v1/users/{user_id}"


def utc(timestamp: str) -> datetime:
    """An RFC 3339 time the API sent: always UTC, written with a ``Z``."""
    assert timestamp.endswith("Z"), timestamp
    return datetime.fromisoformat(timestamp)


def can_get_token(client: FlaskClient, username: str, password: str) -> bool:
    response = client.post("/api/v1/tokens", json={"username": username, "password": password})
    assert response.status_code in {201, 401}, response.get_data(as_text=True)
    return response.status_code == 201


# --- POST /api/v1/users ------------------------------------------------------------------------


def test_register_answers_201_with_the_user_and_its_location(api: ApiActions) -> None:
    before = datetime.now(UTC) - timedelta(seconds=2)
    response = api.register("张三", display_name="Zhang San")
    assert response.status_code == 201
    assert response.mimetype == "application/json"
    user = response.get_json()
    assert set(user) == USER_FIELDS
    assert response.headers["Location"] == user_url(user["id"])
    assert user["username"] == "张三"
    assert user["display_name"] == "Zhang San"
    assert user["email"] is None
    assert user["is_admin"] is False
    assert before <= utc(user["created_at"]) <= utc(user["updated_at"])
    assert utc(user["created_at"]) <= datetime.now(UTC) + timedelta(seconds=2)


@pytest.mark.real_hashing
def test_register_never_sends_the_password_back_and_stores_an_argon2id_hash(
    api: ApiActions,
) -> None:
    response = api.register("张三")
    text = response.get_data(as_text=True)
    assert response.status_code == 201
    assert PASSWORD not in text and "argon2" not in text and "hash" not in text
    stored = api.user_row("张三")["password_hash"]
    assert stored.startswith("$argon2id$")
    assert PASSWORD not in stored


def test_register_stores_the_email_in_lower_case(api: ApiActions) -> None:
    response = api.register("张三", email="Zhang.San@Example.COM")
    assert response.status_code == 201
    assert response.get_json()["email"] == "zhang.san@example.com"
    assert api.user_row("张三")["email"] == "zhang.san@example.com"


@pytest.mark.parametrize("second", ["zhang", "ZHANG", "Ｚｈａｎｇ"])
def test_register_refuses_a_username_taken_in_another_case(api: ApiActions, second: str) -> None:
    assert api.register("Zhang").status_code == 201
    problem = assert_problem(api.register(second), 409)
    assert error_fields(problem) == {"username"}
    assert api.count("user") == 1


def test_register_refuses_an_email_taken_in_another_case(api: ApiActions) -> None:
    assert api.register("张三", email="zhang@example.com").status_code == 201
    problem = assert_problem(api.register("李四", email="ZHANG@example.com"), 409)
    assert error_fields(problem) == {"email"}
    assert api.count("user") == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param({"username": 5, "password": PASSWORD}, "username", id="username-number"),
        pytest.param({"username": "张三", "password": 12345678}, "password", id="password-number"),
        pytest.param({"username": ["张三"], "password": PASSWORD}, "username", id="username-list"),
        pytest.param({"password": PASSWORD}, "username", id="username-missing"),
        pytest.param({"username": "张三"}, "password", id="password-missing"),
        pytest.param({"username": "", "password": PASSWORD}, "username", id="username-empty"),
        pytest.param({"username": "x" * 21, "password": PASSWORD}, "username", id="username-long"),
        pytest.param({"username": "a:b", "password": PASSWORD}, "username", id="username-colon"),
        pytest.param({"username": " 张三", "password": PASSWORD}, "username", id="username-space"),
        pytest.param({"username": "张三", "password": "short"}, "password", id="password-short"),
        pytest.param(
            {"username": "张三", "password": "x" * 129}, "password", id="password-too-long"
        ),
        pytest.param(
            {"username": "张三", "password": PASSWORD, "email": "not-an-address"},
            "email",
            id="email-invalid",
        ),
        pytest.param(
            {"username": "张三", "password": PASSWORD, "display_name": "x" * 51},
            "display_name",
            id="display-name-too-long",
        ),
        pytest.param(
            {"username": "张三", "password": PASSWORD, "display_name": "   "},
            "display_name",
            id="display-name-blank",
        ),
        pytest.param(
            {"username": "张三", "password": PASSWORD, "nickname": "zs"},
            "nickname",
            id="unknown-field",
        ),
        pytest.param(
            {"username": "张三", "password": PASSWORD, "is_admin": True},
            "is_admin",
            id="is-admin-not-allowed",
        ),
    ],
)
def test_register_refuses_invalid_fields_with_422_naming_the_field(
    api: ApiActions, body: dict[str, Any], field: str
) -> None:
    problem = assert_problem(api.client.post("/api/v1/users", json=body), 422)
    assert field in error_fields(problem)
    assert all(error["message"] for error in problem["errors"])
    assert api.count("user") == 0


# --- GET /api/v1/users/me ----------------------------------------------------------------------


def test_me_with_a_token_is_the_token_owner(client: FlaskClient, member: Account) -> None:
    response = client.get(ME, headers=member.headers)
    assert response.status_code == 200
    me = response.get_json()
    assert set(me) == USER_FIELDS
    assert (me["id"], me["username"], me["is_admin"]) == (member.id, "member", False)


def test_me_without_credentials_is_401_with_a_bearer_challenge(client: FlaskClient) -> None:
    response = client.get(ME)
    assert_problem(response, 401)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


# --- PATCH /api/v1/users/me --------------------------------------------------------------------


def test_patch_me_changes_the_display_name_and_keeps_absent_fields(
    client: FlaskClient, api: ApiActions
) -> None:
    assert api.register("张三", email="zs@example.com").status_code == 201
    headers = bearer(api.token("张三"))
    response = client.patch(ME, json={"display_name": "Zhang San"}, headers=headers)
    assert response.status_code == 200
    assert response.get_json()["display_name"] == "Zhang San"
    assert response.get_json()["email"] == "zs@example.com"
    assert client.get(ME, headers=headers).get_json()["display_name"] == "Zhang San"


def test_patch_me_stores_a_new_email_in_lower_case(client: FlaskClient, member: Account) -> None:
    response = client.patch(ME, json={"email": "Member@Example.ORG"}, headers=member.headers)
    assert response.status_code == 200
    assert response.get_json()["email"] == "member@example.org"


def test_patch_me_null_clears_display_name_and_email(client: FlaskClient, api: ApiActions) -> None:
    assert api.register("张三", display_name="ZS", email="zs@example.com").status_code == 201
    headers = bearer(api.token("张三"))
    response = client.patch(ME, json={"display_name": None, "email": None}, headers=headers)
    assert response.status_code == 200
    assert (response.get_json()["display_name"], response.get_json()["email"]) == (None, None)
    row = api.user_row("张三")
    assert (row["display_name"], row["email"]) == (None, None)


def test_patch_me_refuses_an_email_another_account_uses(
    client: FlaskClient, api: ApiActions, member: Account
) -> None:
    assert api.register("张三", email="zs@example.com").status_code == 201
    problem = assert_problem(
        client.patch(ME, json={"email": "ZS@example.com"}, headers=member.headers), 409
    )
    assert error_fields(problem) == {"email"}
    assert api.user_row("member")["email"] is None


def test_a_taken_email_with_a_new_password_is_409_and_changes_nothing(
    client: FlaskClient, api: ApiActions, member: Account
) -> None:
    """The token revocation that a new password brings must not write the row early."""
    assert api.register("张三", email="zs@example.com").status_code == 201
    before = api.user_row("member")
    body = {"email": "zs@example.com", "password": "a brand new password"}
    problem = assert_problem(
        client.patch(ME, json={**body, "current_password": PASSWORD}, headers=member.headers), 409
    )
    assert error_fields(problem) == {"email"}
    assert api.user_row("member") == before
    assert client.get(ME, headers=member.headers).status_code == 200  # no token was revoked


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"display_name": "x" * 51}, "display_name"),
        ({"display_name": 7}, "display_name"),
        ({"email": "nope"}, "email"),
        ({"password": "short", "current_password": PASSWORD}, "password"),
        ({"username": "renamed"}, "username"),
    ],
)
def test_patch_me_refuses_invalid_fields_and_changes_nothing(
    client: FlaskClient, api: ApiActions, member: Account, body: dict[str, Any], field: str
) -> None:
    before = api.user_row("member")
    problem = assert_problem(client.patch(ME, json=body, headers=member.headers), 422)
    assert field in error_fields(problem)
    assert api.user_row("member") == before


def test_patch_me_cannot_make_a_user_admin(
    client: FlaskClient, api: ApiActions, member: Account
) -> None:
    problem = assert_problem(client.patch(ME, json={"is_admin": True}, headers=member.headers), 422)
    assert error_fields(problem) == {"is_admin"}
    assert client.get(ME, headers=member.headers).get_json()["is_admin"] is False
    assert api.user_row("member")["is_admin"] is False


@pytest.mark.parametrize(
    "current",
    [pytest.param({}, id="missing"), pytest.param({"current_password": "wrong guess"}, id="wrong")],
)
def test_new_password_needs_the_right_current_password(
    client: FlaskClient, api: ApiActions, member: Account, current: dict[str, str]
) -> None:
    before = api.user_row("member")
    body = {"password": NEW_PASSWORD, "display_name": "changed", **current}
    problem = assert_problem(client.patch(ME, json=body, headers=member.headers), 422)
    assert error_fields(problem) == {"current_password"}
    assert api.user_row("member") == before
    assert can_get_token(client, "member", PASSWORD)
    assert not can_get_token(client, "member", NEW_PASSWORD)


def test_new_password_replaces_the_old_one_and_revokes_only_other_tokens(
    client: FlaskClient, api: ApiActions, member: Account
) -> None:
    other_token = api.token("member")
    body = {"password": NEW_PASSWORD, "current_password": PASSWORD}
    response = client.patch(ME, json=body, headers=member.headers)
    assert response.status_code == 200
    assert NEW_PASSWORD not in response.get_data(as_text=True)
    assert not can_get_token(client, "member", PASSWORD)
    assert can_get_token(client, "member", NEW_PASSWORD)
    assert client.get(ME, headers=member.headers).status_code == 200
    assert_problem(client.get(ME, headers=bearer(other_token)), 401)


def test_new_password_ends_the_users_browser_sessions(
    app: Flask, client: FlaskClient, member: Account
) -> None:
    browser = browser_of(app, "member")
    body = {"password": NEW_PASSWORD, "current_password": PASSWORD}
    assert client.patch(ME, json=body, headers=member.headers).status_code == 200
    assert not is_logged_in(browser, "/account")


# --- The browser session as API credentials ----------------------------------------------------


def test_a_logged_in_browser_reads_me_without_a_token(
    client: FlaskClient, auth: AuthActions, member: Account
) -> None:
    assert auth.login("member").status_code == 302
    response = client.get(ME)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["username"] == "member"


def test_a_session_write_without_the_csrf_header_is_refused_with_400(
    client: FlaskClient, api: ApiActions, auth: AuthActions, member: Account
) -> None:
    assert auth.login("member").status_code == 302
    problem = assert_problem(client.patch(ME, json={"display_name": "forged"}), 400)
    assert "X-CSRFToken" in problem["detail"]
    assert api.user_row("member")["display_name"] is None


def test_a_session_write_with_the_csrf_header_succeeds(
    client: FlaskClient, auth: AuthActions, member: Account
) -> None:
    assert auth.login("member").status_code == 302
    token = csrf_token(client.get("/account").get_data(as_text=True))
    response = client.patch(
        ME, json={"display_name": "via session"}, headers={"X-CSRFToken": token}
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["display_name"] == "via session"


def test_a_bearer_write_needs_no_csrf_header_even_beside_a_session(
    client: FlaskClient, auth: AuthActions, member: Account
) -> None:
    assert auth.login("member").status_code == 302
    response = client.patch(ME, json={"display_name": "via token"}, headers=member.headers)
    assert response.status_code == 200
    assert response.get_json()["display_name"] == "via token"


def test_a_password_change_through_the_session_keeps_that_session(
    app: Flask, client: FlaskClient, auth: AuthActions, member: Account
) -> None:
    assert auth.login("member").status_code == 302
    other_browser = browser_of(app, "member")
    token = csrf_token(client.get("/account").get_data(as_text=True))
    body = {"password": NEW_PASSWORD, "current_password": PASSWORD}
    response = client.patch(ME, json=body, headers={"X-CSRFToken": token})
    assert response.status_code == 200, response.get_data(as_text=True)
    assert is_logged_in(client, "/account")
    assert client.get(ME).status_code == 200
    assert not is_logged_in(other_browser, "/account")
    assert_problem(client.get(ME, headers=member.headers), 401)  # every token is revoked


# --- GET /api/v1/users (admin) -----------------------------------------------------------------


def list_page(client: FlaskClient, admin: Account, query: str) -> Any:
    return client.get(f"/api/v1/users?{query}", headers=admin.headers)


@pytest.fixture
def five_users(api: ApiActions, admin: Account) -> list[int]:
    """The admin and four more accounts: their ids in creation order."""
    with api.app.app_context():
        others = [users.register_user(name, PASSWORD).id for name in ("u1", "u2", "u3", "u4")]
    return [admin.id, *others]


def test_admin_lists_users_in_id_order_with_page_links(
    client: FlaskClient, admin: Account, five_users: list[int]
) -> None:
    response = list_page(client, admin, "page=2&per_page=2")
    assert response.status_code == 200
    page = response.get_json()
    assert [user["id"] for user in page["items"]] == five_users[2:4]
    assert all(set(user) == USER_FIELDS for user in page["items"])
    assert (page["total"], page["page"], page["per_page"], page["pages"]) == (5, 2, 2, 3)
    link = "/api/v1/users?page={}&per_page=2".format
    assert page["links"] == {
        "self": link(2),
        "first": link(1),
        "last": link(3),
        "prev": link(1),
        "next": link(3),
    }


def test_the_first_and_last_pages_have_no_prev_and_no_next(
    client: FlaskClient, admin: Account, five_users: list[int]
) -> None:
    first = list_page(client, admin, "page=1&per_page=2").get_json()
    last = list_page(client, admin, "page=3&per_page=2").get_json()
    assert first["links"]["prev"] is None and first["links"]["next"] is not None
    assert last["links"]["next"] is None and last["links"]["prev"] is not None
    assert [user["id"] for user in last["items"]] == five_users[4:]


def test_list_defaults_to_the_first_page_of_twenty(
    client: FlaskClient, admin: Account, five_users: list[int]
) -> None:
    page = client.get("/api/v1/users", headers=admin.headers).get_json()
    assert (page["page"], page["per_page"], page["pages"]) == (1, 20, 1)
    assert [user["id"] for user in page["items"]] == five_users


def test_a_page_past_the_end_is_empty_not_an_error(client: FlaskClient, admin: Account) -> None:
    response = list_page(client, admin, "page=7&per_page=10")
    assert response.status_code == 200
    page = response.get_json()
    assert (page["items"], page["total"], page["page"], page["pages"]) == ([], 1, 7, 1)
    assert page["links"]["next"] is None


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("per_page=101", "per_page"),
        ("per_page=0", "per_page"),
        ("per_page=many", "per_page"),
        ("page=0", "page"),
        ("page=-1", "page"),
        ("page=two", "page"),
        ("page=1.5", "page"),
    ],
)
def test_list_refuses_bad_page_parameters_with_422(
    client: FlaskClient, admin: Account, query: str, field: str
) -> None:
    problem = assert_problem(list_page(client, admin, query), 422)
    assert error_fields(problem) == {field}


# --- GET /api/v1/users?q= (search) ---------------------------------------------------------------

SEARCHABLE = {  # username: e-mail address
    "Alice": "alice@example.com",
    "张三": "zhangsan@example.cn",
    "bob": "Robert@Mail.Example.org",
    "a_b": None,
    "a%b": None,
    "a\\b": None,
    "axb": "AXB@example.com",
    "<b>bold</b>": None,
    "'; DROP TABLE user--": None,
}


@pytest.fixture
def searchable(api: ApiActions, admin: Account) -> dict[str, int]:
    """The admin and the accounts of ``SEARCHABLE``: their ids by username."""
    with api.app.app_context():
        ids = {
            name: users.register_user(name, PASSWORD, email=email).id
            for name, email in SEARCHABLE.items()
        }
    return {"admin": admin.id, **ids}


def search(client: FlaskClient, admin: Account, q: str, **params: Any) -> dict[str, Any]:
    response = client.get("/api/v1/users", query_string={"q": q, **params}, headers=admin.headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    page: dict[str, Any] = response.get_json()
    assert page["total"] == len(page["items"]) or page["per_page"] < page["total"]
    return page


def found(client: FlaskClient, admin: Account, q: str) -> list[str]:
    return [user["username"] for user in search(client, admin, q)["items"]]


@pytest.mark.parametrize(
    ("q", "usernames"),
    [
        ("ali", ["Alice"]),  # a substring of the username, whatever its case
        ("ALICE", ["Alice"]),
        ("ａｌｉｃｅ", ["Alice"]),  # compared as usernames are: full-width is the same name
        ("张", ["张三"]),
        ("example.cn", ["张三"]),  # or of the e-mail address
        ("robert@mail", ["bob"]),  # stored in lower case, found in any case
        ("ROBERT@MAIL", ["bob"]),
        ("axb", ["axb"]),
        ("_", ["a_b"]),  # LIKE's wildcards match themselves
        ("%", ["a%b"]),
        ("\\", ["a\\b"]),
        ("a_", ["a_b"]),
        ("<b>", ["<b>bold</b>"]),  # HTML and SQL are text
        ("drop table", ["'; DROP TABLE user--"]),
        ("' OR '1'='1", []),
        ("nobody", []),
        ("\0", []),
    ],
)
def test_search_finds_usernames_and_addresses_containing_q(
    client: FlaskClient, admin: Account, searchable: dict[str, int], q: str, usernames: list[str]
) -> None:
    assert found(client, admin, q) == usernames


def test_search_pages_count_the_matches_and_keep_q_in_the_links(
    client: FlaskClient, admin: Account, searchable: dict[str, int]
) -> None:
    page = search(client, admin, "example", per_page=2, page=2)  # 4 addresses match
    assert [user["username"] for user in page["items"]] == ["bob", "axb"]
    assert (page["total"], page["pages"]) == (4, 2)
    link = "/api/v1/users?page={}&per_page=2&q=example".format
    assert page["links"] == {
        "self": link(2),
        "first": link(1),
        "last": link(2),
        "prev": link(1),
        "next": None,
    }
    unicode_links = search(client, admin, "张三")["links"]
    assert unicode_links["self"] == "/api/v1/users?page=1&per_page=20&q=%E5%BC%A0%E4%B8%89"
    assert client.get(unicode_links["self"], headers=admin.headers).get_json()["total"] == 1


def test_an_empty_q_lists_everyone(
    client: FlaskClient, admin: Account, searchable: dict[str, int]
) -> None:
    page = search(client, admin, "")
    assert [user["id"] for user in page["items"]] == sorted(searchable.values())
    assert page["links"]["self"] == "/api/v1/users?page=1&per_page=20"


def test_a_q_too_long_for_any_address_is_a_422(client: FlaskClient, admin: Account) -> None:
    response = client.get("/api/v1/users", query_string={"q": "x" * 255}, headers=admin.headers)
    assert error_fields(assert_problem(response, 422)) == {"q"}


@pytest.mark.parametrize(
    ("query", "unknown"),
    [
        ("username=alice", ["username"]),
        ("email=alice%40example.com&page=1", ["email"]),
        ("search=张三&sort=id", ["search", "sort"]),
        ("Q=alice", ["Q"]),
    ],
)
def test_an_unknown_query_parameter_is_a_400_that_says_to_use_q(
    client: FlaskClient, admin: Account, searchable: dict[str, int], query: str, unknown: list[str]
) -> None:
    response = client.get(f"/api/v1/users?{query}", headers=admin.headers)
    problem = assert_problem(response, 400)
    assert problem["type"] == "/problems/unknown-parameter"
    assert all(f'"{name}"' in problem["detail"] for name in unknown)
    assert "page, per_page, q" in problem["detail"]
    assert "use q, e.g. ?q=zhang" in problem["detail"]
    assert error_fields(problem) == set(unknown)


def test_an_unknown_parameter_is_explained_in_chinese(client: FlaskClient, admin: Account) -> None:
    response = client.get(
        "/api/v1/users?username=x", headers={**admin.headers, "Accept-Language": "zh-CN"}
    )
    detail = assert_problem(response, 400)["detail"]
    assert detail.startswith(
        '这个地址没有查询参数 "username"，它只接受 page, per_page, q, role, status, verified, '
        "created_from, created_to。"
    )
    assert "?q=zhang" in detail


def test_who_may_list_is_answered_before_the_parameters(
    client: FlaskClient, member: Account
) -> None:
    assert_problem(client.get("/api/v1/users?username=x"), 401)
    assert_problem(client.get("/api/v1/users?username=x", headers=member.headers), 403)


def test_list_is_for_admins_only(client: FlaskClient, member: Account) -> None:
    assert_problem(client.get("/api/v1/users", headers=member.headers), 403)


def test_list_without_credentials_is_401(client: FlaskClient) -> None:
    assert_problem(client.get("/api/v1/users"), 401)


def test_an_admin_made_with_the_cli_can_list_users(
    client: FlaskClient, api: ApiActions, runner: FlaskCliRunner
) -> None:
    result = runner.invoke(
        args=["create-admin", "--username", "boss", "--password-stdin"], input=PASSWORD + "\n"
    )
    assert result.exit_code == 0, result.output
    response = client.get("/api/v1/users", headers=bearer(api.token("boss")))
    assert response.status_code == 200
    assert [(u["username"], u["is_admin"]) for u in response.get_json()["items"]] == [
        ("boss", True)
    ]


# --- GET /api/v1/users/<id> --------------------------------------------------------------------


def test_admin_reads_any_user(client: FlaskClient, admin: Account, member: Account) -> None:
    response = client.get(user_url(member.id), headers=admin.headers)
    assert response.status_code == 200
    assert response.get_json()["username"] == "member"


def test_a_user_reads_their_own_account_by_id(client: FlaskClient, member: Account) -> None:
    response = client.get(user_url(member.id), headers=member.headers)
    assert response.status_code == 200
    assert response.get_json()["id"] == member.id


def test_a_user_cannot_read_another_account(
    client: FlaskClient, admin: Account, member: Account
) -> None:
    assert_problem(client.get(user_url(admin.id), headers=member.headers), 403)


@pytest.mark.parametrize("missing", ["9999", "2147483648", "99999999999999999999"])
def test_an_unknown_id_is_404(client: FlaskClient, admin: Account, missing: str) -> None:
    assert_problem(client.get(user_url(missing), headers=admin.headers), 404)


# --- PATCH /api/v1/users/<id> (admin) ----------------------------------------------------------


def test_admin_changes_another_users_profile_and_admin_flag(
    client: FlaskClient, admin: Account, member: Account
) -> None:
    body = {"display_name": "Member", "email": "Member@Example.com", "is_admin": True}
    response = client.patch(user_url(member.id), json=body, headers=admin.headers)
    assert response.status_code == 200
    changed = client.get(user_url(member.id), headers=admin.headers).get_json()
    assert (changed["display_name"], changed["email"], changed["is_admin"]) == (
        "Member",
        "member@example.com",
        True,
    )
    assert client.get("/api/v1/users", headers=member.headers).status_code == 200


def test_admin_resets_a_password_without_the_current_one_and_revokes_its_tokens(
    app: Flask, client: FlaskClient, admin: Account, member: Account
) -> None:
    browser = browser_of(app, "member")
    response = client.patch(
        user_url(member.id), json={"password": NEW_PASSWORD}, headers=admin.headers
    )
    assert response.status_code == 200
    assert_problem(client.get(ME, headers=member.headers), 401)
    assert not is_logged_in(browser, "/account")
    assert not can_get_token(client, "member", PASSWORD)
    assert can_get_token(client, "member", NEW_PASSWORD)
    assert client.get(ME, headers=admin.headers).status_code == 200


def test_admin_cannot_remove_their_own_admin_flag(
    client: FlaskClient, api: ApiActions, admin: Account
) -> None:
    problem = assert_problem(
        client.patch(user_url(admin.id), json={"is_admin": False}, headers=admin.headers), 409
    )
    assert error_fields(problem) == {"is_admin"}
    assert client.get(ME, headers=admin.headers).get_json()["is_admin"] is True


def test_admin_flag_null_is_refused_not_taken_as_false(
    client: FlaskClient, api: ApiActions, admin: Account
) -> None:
    other = api.account("admin2", is_admin=True)
    response = client.patch(user_url(other.id), json={"is_admin": None}, headers=admin.headers)
    problem = assert_problem(response, 422)
    assert error_fields(problem) == {"is_admin"}
    assert client.get(user_url(other.id), headers=admin.headers).get_json()["is_admin"] is True


def test_admin_update_with_an_invalid_field_changes_nothing(
    client: FlaskClient, api: ApiActions, admin: Account, member: Account
) -> None:
    before = api.user_row("member")
    body = {"is_admin": True, "display_name": "ok", "email": "not-an-address"}
    problem = assert_problem(
        client.patch(user_url(member.id), json=body, headers=admin.headers), 422
    )
    assert error_fields(problem) == {"email"}
    assert api.user_row("member") == before


def test_a_non_admin_cannot_patch_users_by_id_not_even_their_own(
    client: FlaskClient, member: Account
) -> None:
    body = {"is_admin": True}
    assert_problem(client.patch(user_url(member.id), json=body, headers=member.headers), 403)
    assert client.get(ME, headers=member.headers).get_json()["is_admin"] is False


def test_patching_an_unknown_user_is_404(client: FlaskClient, admin: Account) -> None:
    response = client.patch(user_url(9999), json={"display_name": "x"}, headers=admin.headers)
    assert_problem(response, 404)


# --- DELETE /api/v1/users/<id> (admin) ---------------------------------------------------------


def test_admin_deletes_a_user_and_its_tokens(
    client: FlaskClient, api: ApiActions, admin: Account, member: Account
) -> None:
    response = client.delete(user_url(member.id), headers=admin.headers)
    assert response.status_code == 204
    assert response.get_data() == b""
    assert_problem(client.get(ME, headers=member.headers), 401)
    assert_problem(client.get(user_url(member.id), headers=admin.headers), 404)
    assert [row["user_id"] for row in api.rows("api_token")] == [admin.id]
    assert api.count("user") == 1


def test_deleting_an_unknown_user_is_404(client: FlaskClient, admin: Account) -> None:
    assert_problem(client.delete(user_url(9999), headers=admin.headers), 404)


def test_admin_cannot_delete_their_own_account(
    client: FlaskClient, api: ApiActions, admin: Account
) -> None:
    assert_problem(client.delete(user_url(admin.id), headers=admin.headers), 409)
    assert client.get(ME, headers=admin.headers).status_code == 200
    assert api.count("user") == 1


def test_a_non_admin_cannot_delete_users(
    client: FlaskClient, api: ApiActions, admin: Account, member: Account
) -> None:
    assert_problem(client.delete(user_url(admin.id), headers=member.headers), 403)
    assert_problem(client.delete(user_url(member.id), headers=member.headers), 403)
    assert api.count("user") == 2


def test_deleting_without_credentials_is_401(
    client: FlaskClient, api: ApiActions, member: Account
) -> None:
    assert_problem(client.delete(user_url(member.id)), 401)
    assert api.count("user") == 1
