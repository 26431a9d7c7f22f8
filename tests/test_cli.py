"""``flask --app userhub create-admin``."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskCliRunner

from tests.helpers import PASSWORD, AuthActions
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
    assert "--username" in result.output
