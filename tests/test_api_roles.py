"""Roles in the API (``services/roles.py``): support reads what administrators read and changes
nothing; an administrator deactivates, reactivates, gives roles and mails reset links; the
list of users filters by role, status, verification and creation time. On SQLite and MySQL.

Which operations are staff operations is read from the OpenAPI document (the roles each
operation's security names), so a new administrator's write is checked for support's 403
without a word here, and the administrator's own check of it fails until it gets a case.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
import time_machine
from flask import Flask
from flask.testing import FlaskClient

from tests.helpers import (
    ME,
    PASSWORD,
    Account,
    ApiActions,
    AppBuilder,
    assert_problem,
    bearer,
    browser_of,
    error_fields,
    new_api_key,
)
from tests.mail_support import Mailbox, token_in
from userhub.extensions import db
from userhub.models import User
from userhub.services import users

READ_ONLY = "Your role can see users and their activity but change nothing."
ADDRESS = "zhang@example.com"


def make_account(api: ApiActions, username: str, role: str = "none") -> Account:
    """An account with ``role`` (set as the command line does) and a token."""
    with api.app.app_context():
        user = users.register_user(username, PASSWORD)
        users.set_role(user, role)
        user_id = user.id
    return Account(user_id, username, api.token(username))


@pytest.fixture
def support(api: ApiActions) -> Account:
    return make_account(api, "helpdesk", "support")


def user_of(api: ApiActions, user_id: int) -> dict[str, Any]:
    return next(row for row in api.rows("user") if row["id"] == user_id)


# --- who may call what: the staff operations of the OpenAPI document ---------------------------


def staff_operations(client: FlaskClient) -> list[tuple[str, str, set[str]]]:
    """(method, path, roles) of every operation whose security names roles."""
    spec = client.get("/openapi.json").get_json()
    found = []
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            named = {
                role for need in operation.get("security", []) for r in need.values() for role in r
            }
            if named:
                found.append((method, path, named))
    return found


def filled(path: str, **ids: int) -> str:
    for name, value in ids.items():
        path = path.replace("{" + name + "}", str(value))
    return path


def test_support_reads_every_staff_read_and_is_refused_every_write(
    app: Flask, client: FlaskClient, api: ApiActions, support: Account, member: Account
) -> None:
    session_id = live_session(app, client, support, member)
    ids = {"user_id": member.id, "session_id": session_id}
    operations = staff_operations(client)
    reads = [(m, p) for m, p, roles in operations if "support" in roles]
    writes = [(m, p) for m, p, roles in operations if roles == {"admin"}]
    assert {m for m, _ in reads} == {"get"} and len(reads) >= 3
    assert {"patch", "delete", "post"} <= {m for m, _ in writes}
    before = user_of(api, member.id)
    for method, path in reads:
        answer = client.open(filled(path, **ids), method=method.upper(), headers=support.headers)
        assert answer.status_code == 200, (path, answer.get_data(as_text=True))
    for method, path in writes:
        answer = client.open(
            filled(path, **ids), method=method.upper(), json={}, headers=support.headers
        )
        problem = assert_problem(answer, 403)
        assert (problem["type"], problem["detail"]) == ("/problems/forbidden", READ_ONLY), path
    assert user_of(api, member.id) == before
    assert client.get(f"/api/v1/users/{member.id}", headers=support.headers).status_code == 200


def live_session(app: Flask, client: FlaskClient, staff: Account, member: Account) -> int:
    """The id of a browser session the member logs in, as staff see it."""
    browser_of(app, member.username)
    listed = client.get(f"/api/v1/users/{member.id}/sessions", headers=staff.headers)
    assert listed.status_code == 200, listed.get_data(as_text=True)
    return int(listed.get_json()[0]["id"])


def admin_writes(member: Account, session_id: int) -> dict[tuple[str, str], tuple[str, Any]]:
    """What the administrator sends to each write, and the status it gets (the deletion last)."""
    user = f"/api/v1/users/{member.id}"
    return {
        ("delete", "/api/v1/users/{user_id}/sessions/{session_id}"): (
            f"{user}/sessions/{session_id}",
            None,
        ),
        ("patch", "/api/v1/users/{user_id}"): (user, {"display_name": "Zhang"}),
        ("delete", "/api/v1/users/{user_id}/second-factors"): (f"{user}/second-factors", None),
        ("post", "/api/v1/users/{user_id}/password-reset"): (f"{user}/password-reset", None),
        ("delete", "/api/v1/users/{user_id}"): (user, None),
    }


def test_an_administrator_may_call_every_staff_operation(
    app: Flask, client: FlaskClient, api: ApiActions, admin: Account
) -> None:
    member = make_account(api, "zhang")
    with app.app_context():
        user = db.session.get(User, member.id)
        assert user is not None
        user.set_address(ADDRESS, verified=True)  # for the reset link
        db.session.commit()
    session_id = live_session(app, client, admin, member)
    cases = admin_writes(member, session_id)
    for method, path, roles in staff_operations(client):
        if "support" in roles:
            url = filled(path, user_id=member.id, session_id=session_id)
            assert client.get(url, headers=admin.headers).status_code == 200, path
        else:
            assert (method, path) in cases, f"{method} {path}: give it a case in admin_writes"
    for (method, _path), (url, body) in cases.items():  # in order: the deletion last
        answer = client.open(url, method=method.upper(), json=body, headers=admin.headers)
        assert 200 <= answer.status_code < 300, (url, answer.get_data(as_text=True))


def test_keys_act_in_their_owners_role_only_with_the_admin_scope(
    client: FlaskClient, api: ApiActions, support: Account, member: Account
) -> None:
    staff_key = new_api_key(client, support.headers, "read", "admin")["key"]
    plain_key = new_api_key(client, support.headers, "read", "write")["key"]
    assert client.get("/api/v1/users", headers=bearer(staff_key)).status_code == 200
    assert client.get(f"/api/v1/users/{member.id}", headers=bearer(staff_key)).status_code == 200
    refused = client.patch(
        f"/api/v1/users/{member.id}", json={"is_admin": True}, headers=bearer(plain_key)
    )
    assert assert_problem(refused, 403)["type"] == "/problems/forbidden"
    for url in ("/api/v1/users", f"/api/v1/users/{member.id}"):
        assert_problem(client.get(url, headers=bearer(plain_key)), 403)
    asked = client.post(
        "/api/v1/users/me/api-keys",
        json={"name": "x", "scopes": ["read", "admin"]},
        headers=member.headers,
    )
    assert "scopes" in error_fields(assert_problem(asked, 422))


def test_support_without_a_second_factor_is_refused_when_it_is_required(
    build_app: AppBuilder, database_url: str
) -> None:
    app = build_app(database_url, USERHUB_REQUIRE_MFA_FOR_ADMINS=True)
    api = ApiActions(app, app.test_client())
    support = make_account(api, "helpdesk", "support")
    refused = api.client.get("/api/v1/users", headers=support.headers)
    assert assert_problem(refused, 403)["type"] == "/problems/mfa-enrolment-required"
    assert api.client.get(ME, headers=support.headers).status_code == 200


def test_the_owner_sees_the_new_fields(client: FlaskClient, member: Account) -> None:
    me = client.get(ME, headers=member.headers).get_json()
    assert me["is_support"] is False and me["is_active"] is True
    assert me["deactivated_at"] is None and me["deletion_due_at"] is None


# --- PATCH /api/v1/users/{id}: is_active, is_support -------------------------------------------


def events_of(api: ApiActions, user_id: int) -> list[dict[str, Any]]:
    return [row for row in api.rows("security_event") if row["user_id"] == user_id]


def test_one_patch_deactivates_gives_support_and_renames_together(
    client: FlaskClient, api: ApiActions, admin: Account, member: Account
) -> None:
    body = {"is_active": False, "is_support": True, "display_name": "Help"}
    answer = client.patch(f"/api/v1/users/{member.id}", json=body, headers=admin.headers)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    user = answer.get_json()
    assert (user["is_active"], user["is_support"], user["display_name"]) == (False, True, "Help")
    assert user["deactivated_at"].endswith("Z")
    assert client.get(ME, headers=member.headers).status_code == 401  # its token ended
    kinds = {row["type"]: row for row in events_of(api, member.id)}
    assert kinds["account-deactivated"]["actor_id"] == admin.id
    assert '"is_support"' in kinds["account-updated"]["details"]

    back = client.patch(
        f"/api/v1/users/{member.id}",
        json={"is_active": True, "is_support": False},
        headers=admin.headers,
    )
    assert (back.get_json()["is_active"], back.get_json()["is_support"]) == (True, False)
    assert [
        r["actor_id"] for r in events_of(api, member.id) if r["type"] == "account-reactivated"
    ] == [admin.id]


def test_an_administrator_cannot_deactivate_themselves_and_nothing_changes(
    client: FlaskClient, api: ApiActions, admin: Account
) -> None:
    answer = client.patch(
        f"/api/v1/users/{admin.id}",
        json={"is_active": False, "display_name": "Gone"},
        headers=admin.headers,
    )
    problem = assert_problem(answer, 409)
    assert problem["type"] == "/problems/own-deactivation"
    assert error_fields(problem) == {"is_active"}
    row = user_of(api, admin.id)
    assert row["deactivated_at"] is None and row["display_name"] is None
    assert client.get(ME, headers=admin.headers).status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {"is_active": None},
        {"is_support": None},
        {"is_active": "false"},
        {"is_active": False, "email": "not an address"},
    ],
)
def test_a_bad_patch_deactivates_nothing(
    client: FlaskClient, api: ApiActions, admin: Account, member: Account, body: dict[str, Any]
) -> None:
    answer = client.patch(f"/api/v1/users/{member.id}", json=body, headers=admin.headers)
    assert assert_problem(answer, 422)
    assert user_of(api, member.id)["deactivated_at"] is None
    assert client.get(ME, headers=member.headers).status_code == 200


def test_the_owner_cannot_deactivate_or_promote_themselves(
    client: FlaskClient, member: Account
) -> None:
    for body in ({"is_active": False}, {"is_support": True}):
        answer = client.patch(ME, json=body, headers=member.headers)
        assert assert_problem(answer, 422)["type"] == "/problems/invalid-fields"


# --- POST /api/v1/users/{id}/password-reset -----------------------------------------------------


def test_an_administrator_mails_a_reset_link_and_ends_the_accounts_access(
    mailbox: Mailbox,
) -> None:
    client = mailbox.app.test_client()
    api = ApiActions(mailbox.app, client)
    admin = api.account("admin", is_admin=True)
    assert api.register("zhang", email=ADDRESS).status_code == 201
    member = Account(api.user_row("zhang")["id"], "zhang", api.token("zhang"))
    mailbox.new_mail()  # the verification link

    answer = client.post(f"/api/v1/users/{member.id}/password-reset", headers=admin.headers)
    assert answer.status_code == 202, answer.get_data(as_text=True)
    assert answer.get_json() == {
        "detail": "A link to reset the password is on its way to the account's address."
    }
    assert client.get(ME, headers=member.headers).status_code == 401
    mail = mailbox.only(ADDRESS)
    assert mail["Subject"] == "Reset your password"
    done = client.post(
        "/api/v1/password-reset/complete",
        json={"token": token_in(mail, "/password/reset"), "password": "a brand new passphrase"},
    )
    assert done.status_code == 204
    assert api.token("zhang", "a brand new passphrase")
    [event] = [e for e in events_of(api, member.id) if e["type"] == "password-reset-sent"]
    assert event["actor_id"] == admin.id


def test_a_reset_link_needs_an_address_and_an_account(
    client: FlaskClient, admin: Account, member: Account
) -> None:
    no_address = client.post(f"/api/v1/users/{member.id}/password-reset", headers=admin.headers)
    assert assert_problem(no_address, 409)["type"] == "/problems/no-email-address"
    assert client.get(ME, headers=member.headers).status_code == 200  # nothing ended
    unknown = client.post("/api/v1/users/999999/password-reset", headers=admin.headers)
    assert assert_problem(unknown, 404)
    mine = client.post(f"/api/v1/users/{admin.id}/password-reset", headers=member.headers)
    assert assert_problem(mine, 403)


# --- GET /api/v1/users: the filters ---------------------------------------------------------


def at(moment: str) -> time_machine.travel:
    return time_machine.travel(datetime.fromisoformat(moment), tick=False)


@pytest.fixture
def population(app: Flask, api: ApiActions, admin: Account) -> Iterator[Account]:
    """Besides the admin (made today): ann (support, verified address, made 10 January), bob
    (deactivated, unverified address, 10 February 09:00 UTC), cat (waiting to be deleted, no
    address, 10 March). Yields the admin."""
    with app.app_context():
        for name, moment in (
            ("ann", "2026-01-10T12:00:00+00:00"),
            ("bob", "2026-02-10T09:00:00+00:00"),
            ("cat", "2026-03-10T12:00:00+00:00"),
        ):
            with at(moment):
                users.register_user(
                    name, PASSWORD, email=f"{name}@example.com" if name != "cat" else None
                )
        ann, bob, cat = (users.find_user(name) for name in ("ann", "bob", "cat"))
        assert ann is not None and bob is not None and cat is not None
        users.set_role(ann, "support")
        ann.set_address(ann.email, verified=True)
        bob.deactivated_at = datetime(2026, 4, 1)
        cat.deletion_due_at = datetime(2027, 1, 1)
        db.session.commit()
    yield admin


def listed(client: FlaskClient, admin: Account, query: str) -> list[str]:
    answer = client.get(f"/api/v1/users?{query}", headers=admin.headers)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return [user["username"] for user in answer.get_json()["items"]]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("role=admin", ["admin"]),
        ("role=support", ["ann"]),
        ("role=none", ["bob", "cat"]),
        ("status=active", ["admin", "ann"]),
        ("status=deactivated", ["bob"]),
        ("status=pending-deletion", ["cat"]),
        ("verified=true", ["ann"]),
        ("verified=false", ["admin", "bob", "cat"]),
        ("created_to=2026-02-10", ["ann", "bob"]),  # the whole day
        ("created_to=2026-02-10T00:00:00Z", ["ann"]),
        ("created_from=2026-02-10T16:00:00%2B08:00", ["bob", "cat", "admin"]),  # 08:00 UTC
        ("created_from=2026-02-11&created_to=2026-06-30", ["cat"]),
        ("role=none&status=deactivated&q=BO", ["bob"]),
        ("role=none&verified=true", []),
    ],
)
def test_each_filter_narrows_the_list(
    client: FlaskClient, population: Account, query: str, expected: list[str]
) -> None:
    assert sorted(listed(client, population, query)) == sorted(expected)


def test_the_links_keep_the_filters(client: FlaskClient, population: Account) -> None:
    query = "role=none&verified=false&created_from=2026-01-01&created_to=2026-12-31&per_page=1"
    page = client.get(f"/api/v1/users?{query}", headers=population.headers).get_json()
    assert page["total"] == 2 and page["pages"] == 2
    following = client.get(page["links"]["next"], headers=population.headers).get_json()
    assert following["total"] == 2
    assert [u["username"] for u in page["items"] + following["items"]] == ["bob", "cat"]
    assert "created_to=2027-01-01T00:00:00Z" in page["links"]["next"]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("role=owner", "role"),
        ("status=gone", "status"),
        ("verified=maybe", "verified"),
        ("created_from=yesterday", "created_from"),
        ("created_to=2026-02-30", "created_to"),
        ("created_from=2026-12-01T08:00:00", "created_from"),  # no offset
        ("created_to=1700000000", "created_to"),
    ],
)
def test_a_bad_filter_is_a_422_naming_it(
    client: FlaskClient, admin: Account, query: str, field: str
) -> None:
    problem = assert_problem(client.get(f"/api/v1/users?{query}", headers=admin.headers), 422)
    assert error_fields(problem) == {field}
