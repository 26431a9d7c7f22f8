"""``flask --app userhub create-admin``: a new administrator, or ``--promote`` an account."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner

from tests.helpers import PASSWORD, Account, ApiActions, AuthActions
from userhub.extensions import db
from userhub.services.users import find_user


def test_create_admin_with_password_on_stdin(app: Flask, runner: FlaskCliRunner) -> None:
    result = runner.invoke(
        args=["create-admin", "--username", "root-admin", "--password-stdin"], input=PASSWORD + "\n"
    )
    assert result.exit_code == 0, result.output
    assert "Created administrator 'root-admin'" in result.output
    assert PASSWORD not in result.output
    with app.app_context():
        admin = find_user("root-admin")
        assert admin is not None and admin.is_admin
        assert admin.password_hash.startswith("$argon2id$")


def test_create_admin_prompts_twice_and_hides_the_password(
    app: Flask, runner: FlaskCliRunner
) -> None:
    result = runner.invoke(
        args=["create-admin", "--username", "管理员"], input=f"{PASSWORD}\n{PASSWORD}\n"
    )
    assert result.exit_code == 0, result.output
    assert "Repeat for confirmation" in result.output
    assert PASSWORD not in result.output


def test_created_admin_can_log_in(app: Flask, runner: FlaskCliRunner, auth: AuthActions) -> None:
    runner.invoke(
        args=["create-admin", "--username", "boss", "--password-stdin"], input=PASSWORD + "\n"
    )
    assert auth.login("boss").status_code == 302


def test_create_admin_refuses_a_taken_username(app: Flask, runner: FlaskCliRunner) -> None:
    args = ["create-admin", "--username", "boss", "--password-stdin"]
    assert runner.invoke(args=args, input=PASSWORD + "\n").exit_code == 0
    result = runner.invoke(
        args=["create-admin", "--username", "BOSS", "--password-stdin"], input=PASSWORD + "\n"
    )
    assert result.exit_code == 1
    assert "Username already exists." in result.output


def test_create_admin_applies_the_password_policy(app: Flask, runner: FlaskCliRunner) -> None:
    result = runner.invoke(
        args=["create-admin", "--username", "boss", "--password-stdin"], input="short\n"
    )
    assert result.exit_code == 1
    assert "Password must be at least 8 characters." in result.output
    with app.app_context():
        assert find_user("boss") is None
        db.session.remove()


def test_create_admin_needs_a_username(runner: FlaskCliRunner) -> None:
    result = runner.invoke(args=["create-admin"])
    assert result.exit_code == 2
    assert "give --username NAME to create an administrator, or --promote NAME" in result.output


# --- create-admin --promote --------------------------------------------------------------------


def test_promote_makes_an_existing_account_an_administrator(
    app: Flask, runner: FlaskCliRunner, api: ApiActions
) -> None:
    member = api.account("zhang")  # a token from before the promotion
    assert api.client.get("/api/v1/users", headers=member.headers).status_code == 403
    result = runner.invoke(args=["create-admin", "--promote", "ZHANG"])  # as usernames compare
    assert result.exit_code == 0, result.output
    assert result.output == f"'zhang' (id {member.id}) is an administrator now.\n"
    assert api.client.get("/api/v1/users", headers=member.headers).status_code == 200
    assert api.token("zhang", PASSWORD)  # the password is untouched


def test_promoting_an_administrator_says_so(runner: FlaskCliRunner, admin: Account) -> None:
    result = runner.invoke(args=["create-admin", "--promote", "admin"])
    assert result.exit_code == 0, result.output
    assert result.output == f"'admin' (id {admin.id}) is an administrator already.\n"


def test_promoting_nobody_fails_clearly(app: Flask, runner: FlaskCliRunner) -> None:
    result = runner.invoke(args=["create-admin", "--promote", "nobody"])
    assert result.exit_code == 1
    assert result.output == "Error: no account named 'nobody'\n"
    with app.app_context():
        assert find_user("nobody") is None


@pytest.mark.parametrize(
    "extra", [["--username", "other"], ["--password-stdin"]], ids=["username", "password"]
)
def test_promote_takes_no_new_account_options(
    app: Flask, runner: FlaskCliRunner, member: Account, extra: list[str]
) -> None:
    result = runner.invoke(args=["create-admin", "--promote", "member", *extra], input="x\n")
    assert result.exit_code == 2
    assert "--promote takes no --username and no password." in result.output
    with app.app_context():
        user = find_user("member")
        assert user is not None and not user.is_admin
