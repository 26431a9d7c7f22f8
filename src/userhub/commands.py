"""Command-line tools (``flask --app userhub ...``); ``db upgrade`` comes from Flask-Migrate."""

from __future__ import annotations

import sys

import click
from flask import Flask
from flask.cli import with_appcontext

from . import users


@click.command("create-admin")
@click.option("--username", required=True, help="The new administrator's username.")
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from standard input instead of prompting (for scripts).",
)
@with_appcontext
def create_admin(username: str, password_stdin: bool) -> None:
    """Create an administrator account. The password is asked for, never given as an argument
    (arguments end up in shell history and process lists)."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        user = users.register_user(username, password, is_admin=True)
    except users.UserError as exc:
        raise click.ClickException(exc.message) from exc
    click.echo(f"Created administrator {user.username!r} (id {user.id}).")


def register_commands(app: Flask) -> None:
    app.cli.add_command(create_admin)
