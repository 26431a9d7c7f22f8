"""``flask --app userhub users ...``: deactivate, reactivate, set-role, list, through the
command line as its operator runs it (Click's runner, the app's real database), in English and
in the reader's Chinese."""

from __future__ import annotations

from datetime import datetime

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner

from tests.helpers import ME, PASSWORD, Account, ApiActions, AuthActions, assert_problem, basic
from userhub.extensions import db
from userhub.services.users import find_user

CHINESE = {"LANGUAGE": None, "LC_ALL": None, "LC_MESSAGES": None, "LANG": "zh_CN.UTF-8"}
ENGLISH = {"LANGUAGE": None, "LC_ALL": None, "LC_MESSAGES": None, "LANG": "C"}


def run(runner: FlaskCliRunner, *args: str, chinese: bool = False) -> tuple[int, str]:
    result = runner.invoke(args=["users", *args], env=CHINESE if chinese else ENGLISH)
    return result.exit_code, result.output


def events(api: ApiActions, user_id: int, kind: str) -> list[dict[str, object]]:
    return [r for r in api.rows("security_event") if r["user_id"] == user_id and r["type"] == kind]


def test_deactivate_ends_access_and_reactivate_restores_the_log_in(
    runner: FlaskCliRunner, api: ApiActions, auth: AuthActions, member: Account
) -> None:
    assert run(runner, "deactivate", "MEMBER") == (
        0,
        f"'member' (id {member.id}) is deactivated: it cannot log in, and its sessions, tokens "
        "and keys have ended.\n",
    )
    assert_problem(api.client.get(ME, headers=member.headers), 401)
    refused = api.client.post("/api/v1/tokens", headers=basic("member", PASSWORD))
    assert assert_problem(refused, 403)["type"] == "/problems/account-deactivated"
    [event] = events(api, member.id, "account-deactivated")
    assert event["actor_id"] is None
    assert run(runner, "deactivate", "member") == (
        0,
        f"'member' (id {member.id}) was deactivated already.\n",
    )

    assert run(runner, "reactivate", "member") == (
        0,
        f"'member' (id {member.id}) is active again: it can log in.\n",
    )
    assert auth.login("member").status_code == 302
    assert run(runner, "reactivate", "member") == (
        0,
        f"'member' (id {member.id}) was not deactivated.\n",
    )
    assert [e["actor_id"] for e in events(api, member.id, "account-reactivated")] == [None]


def test_set_role_gives_and_takes_roles(
    app: Flask, runner: FlaskCliRunner, api: ApiActions, member: Account
) -> None:
    assert api.client.get("/api/v1/users", headers=member.headers).status_code == 403
    assert run(runner, "set-role", "member", "support") == (
        0,
        f"'member' (id {member.id}) has the role support now.\n",
    )
    assert api.client.get("/api/v1/users", headers=member.headers).status_code == 200
    denied = api.client.delete("/api/v1/users/1", headers=member.headers)
    assert assert_problem(denied, 403)["type"] == "/problems/forbidden"
    assert run(runner, "set-role", "member", "support")[1].endswith(
        "has the role support already.\n"
    )
    assert run(runner, "set-role", "member", "admin")[0] == 0
    assert (
        api.client.delete(f"/api/v1/users/{member.id}", headers=member.headers).status_code == 409
    )
    assert run(runner, "set-role", "member", "none")[0] == 0
    assert api.client.get("/api/v1/users", headers=member.headers).status_code == 403
    with app.app_context():
        user = find_user("member")
        assert user is not None and not user.is_admin and not user.is_support
    changes = [e["details"] for e in events(api, member.id, "account-updated")]
    assert len(changes) == 3 and all(
        e["actor_id"] is None for e in events(api, member.id, "account-updated")
    )
    assert changes[1] == '{"fields": ["is_admin", "is_support"]}'


def test_list_prints_a_table_filtered_like_the_api(
    app: Flask, runner: FlaskCliRunner, api: ApiActions, admin: Account, member: Account
) -> None:
    api.account("lisi")
    with app.app_context():
        lisi = find_user("lisi")
        assert lisi is not None
        lisi.set_address("lisi@example.com", verified=True)
        lisi.deactivated_at = datetime(2026, 12, 1)
        db.session.commit()
    code, output = run(runner, "list")
    lines = output.splitlines()
    assert code == 0
    assert lines[0] == "id\tusername\trole\tstatus\te-mail\tcreated (UTC)"
    assert [line.split("\t")[1:5] for line in lines[1:4]] == [
        ["admin", "admin", "active", "-"],
        ["member", "none", "active", "-"],
        ["lisi", "none", "deactivated", "lisi@example.com"],
    ]
    assert all(line.split("\t")[5].endswith("Z") for line in lines[1:4])
    assert lines[4] == "3 account(s)"
    assert run(runner, "list", "--status", "deactivated")[1].splitlines()[1:] == [
        lines[3],
        "1 account(s)",
    ]
    assert run(runner, "list", "--role", "admin", "--search", "ADM")[1].splitlines()[1:] == [
        lines[1],
        "1 account(s)",
    ]
    assert run(runner, "list", "--search", "nobody")[1].splitlines()[1:] == ["0 account(s)"]


@pytest.mark.parametrize(
    "args",
    [["deactivate", "nobody"], ["reactivate", "nobody"], ["set-role", "nobody", "admin"]],
)
def test_an_unknown_name_fails_clearly(runner: FlaskCliRunner, args: list[str]) -> None:
    assert run(runner, *args) == (1, "Error: no account named 'nobody'\n")


@pytest.mark.parametrize(
    "args", [["set-role", "member", "owner"], ["list", "--status", "gone"], ["deactivate"]]
)
def test_bad_arguments_are_usage_errors(
    runner: FlaskCliRunner, member: Account, args: list[str]
) -> None:
    code, output = run(runner, *args)
    assert code == 2 and "Error:" in output


def test_the_commands_speak_the_readers_chinese(runner: FlaskCliRunner, member: Account) -> None:
    assert run(runner, "deactivate", "member", chinese=True) == (
        0,
        f"'member'（id {member.id}）已停用：它无法登录，它的会话、令牌和密钥都已结束。\n",
    )
    assert run(runner, "deactivate", "nobody", chinese=True) == (
        1,
        "Error: 没有名为 'nobody' 的账户\n",
    )
    lines = run(runner, "list", chinese=True)[1].splitlines()
    assert lines[0] == "id\t用户名\t角色\t状态\t电子邮件\t创建时间（UTC）"
    assert lines[-1] == "共 1 个账户"
