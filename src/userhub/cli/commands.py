"""Command-line tools (``flask --app userhub ...``); ``db upgrade`` comes from Flask-Migrate."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from ..config import available_cores
from ..database import check_ready
from ..database_errors import explained
from ..extensions import db
from ..services import bulk_export, bulk_import, housekeeping, import_file, users
from ..services.errors import NoSuchUser, UserError
from . import checks


def database_command(command: Callable[..., Any]) -> Callable[..., Any]:
    """``with_appcontext``, then the database checked before the command starts: one out of
    reach (a wrong password, a database not created, a server not started) or not upgraded
    stops it with one sentence that says what to fix, before any work is done; a failure to
    reach it later is said the same way (``database_errors.py``)."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        check_ready()
        with explained(db.engine.url):
            return command(*args, **kwargs)

    return with_appcontext(run)


@click.command("create-admin")
@click.option("--username", help="The new administrator's username.")
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from standard input instead of prompting (for scripts).",
)
@click.option(
    "--promote",
    metavar="NAME",
    help="Make the existing account NAME an administrator instead (no password asked).",
)
@database_command
def create_admin(username: str | None, password_stdin: bool, promote: str | None) -> None:
    """Create an administrator account (--username), or make an existing account one
    (--promote). The password is asked for, never given as an argument (arguments end up in
    shell history and process lists)."""
    if promote is not None:
        if username is not None or password_stdin:
            raise click.UsageError("--promote takes no --username and no password.")
        promote_admin(promote)
        return
    if username is None:
        raise click.UsageError(
            "give --username NAME to create an administrator, or --promote NAME to make an "
            "existing account one."
        )
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        user = users.register_user(username, password, is_admin=True)
    except UserError as exc:
        raise click.ClickException(exc.message) from exc
    click.echo(f"Created administrator {user.username!r} (id {user.id}).")


def promote_admin(name: str) -> None:
    """``create-admin --promote``: the way to the first administrator when the accounts exist
    already (the tutorial's table upgraded in place, or an import)."""
    missing = click.ClickException(f"no account named {name!r}")
    user = users.find_user(name)
    if user is None:
        raise missing
    try:
        promoted = users.make_admin(user)
    except NoSuchUser:  # deleted meanwhile
        raise missing from None
    if promoted:
        click.echo(f"{user.username!r} (id {user.id}) is an administrator now.")
    else:
        click.echo(f"{user.username!r} (id {user.id}) is an administrator already.")


@click.command("import-users")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Threads hashing passwords at once.  [default: one per CPU core]",
)
@click.option(
    "--batch-size",
    type=click.IntRange(1, bulk_import.MAX_BATCH_SIZE),
    default=bulk_import.DEFAULT_BATCH_SIZE,
    show_default=True,
    help="Rows inserted per transaction.",
)
@click.option(
    "--new-ids",
    is_flag=True,
    help="Ignore the file's ids: every account gets a new one (to add accounts to a database "
    "that has its own).",
)
@database_command
def import_users(file: Path, workers: int | None, batch_size: int, new_ids: bool) -> None:
    """Create accounts from a UTF-8 CSV FILE whose header is username and password (or
    password_hash) and optionally is_admin, display_name, email, id, created_at (in any
    order), or from the JSON array of export-users --format json (a FILE named *.json, or
    starting with [). What export-users --with-hashes writes imports as it is.

    Every row follows registration's rules. A password is hashed (on every core); an argon2id
    password_hash is kept, and replaced with the configured parameters at its owner's next
    log-in. Ids and creation times are kept; an id another account has is a bad row unless
    --new-ids. A username that already exists is skipped, so running the same file again
    creates nothing new. Each bad row is reported with its line number and reason; the good
    rows are still imported.

    Exit status: 0 if every row was imported or skipped, 1 if some rows were bad (or the
    database failed part-way; committed rows stay, run again to continue), 2 if the file
    cannot be imported at all (missing, not UTF-8, wrong header) -- then nothing is written.
    """
    try:
        plan = import_file.read_import_file(file, new_ids=new_ids)
    except import_file.ImportFileError as exc:
        raise click.BadParameter(str(exc), param_hint="FILE") from exc
    with click.progressbar(
        length=plan.total,
        label="Importing users",
        file=sys.stderr,
        hidden=not sys.stderr.isatty(),
    ) as bar:
        try:
            result = bulk_import.import_users(
                plan,
                workers=workers or available_cores(),
                batch_size=batch_size,
                progress=bar.update,
            )
        except bulk_import.ImportAborted as exc:
            raise click.ClickException(str(exc)) from exc
    click.echo(result.summary())
    for bad in result.bad:
        click.echo(str(bad))
    if result.bad:
        sys.exit(1)


@click.command("export-users")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(bulk_export.FORMATS),
    default="csv",
    show_default=True,
    help="CSV (a header, then a row per account) or one JSON array.",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    default=None,
    help="Write to this file (replaced once complete) instead of standard output.",
)
@click.option("--with-hashes", is_flag=True, help="Add each account's password_hash column.")
@database_command
def export_users(fmt: str, output: Path | None, with_hashes: bool) -> None:
    """Write every account in id order: id, username, display_name, email, is_admin,
    created_at (UTC, ISO 8601), never a password hash unless --with-hashes.

    In CSV, a text cell starting with = + - @ (or an apostrophe, a tab, a carriage return)
    gets a leading apostrophe, so a spreadsheet does not run it as a formula; JSON is exact.
    """
    if output is None:
        sys.stdout.flush()
        bulk_export.export_to_binary(sys.stdout.buffer, fmt=fmt, with_hashes=with_hashes)
        return
    count = bulk_export.export_to_file(output, fmt=fmt, with_hashes=with_hashes)
    click.echo(f"Exported {count} users to {output}.")


@click.command("prune")
@database_command
def prune() -> None:
    """Delete what has served its time, and say how many rows of each kind went: sent mail
    and dead mailed links, ended browser sessions, security events older than
    USERHUB_SECURITY_LOG_RETENTION_DAYS, expired API tokens and keys, log-in steps and passkey
    ceremonies never finished, authenticator apps set up a day ago and never confirmed; and
    delete for good the accounts whose owners asked for it and whose grace period is over.

    Every `userhub serve` worker does this hourly by itself; this command is for cron, or for
    another server. Safe to run at any time, and beside running servers."""
    pruned = housekeeping.prune_all()
    click.echo(f"sent mail and dead links: {pruned.mail_and_links}")
    click.echo(f"ended sessions: {pruned.sessions}")
    click.echo(f"old security events: {pruned.security_events}")
    click.echo(f"expired tokens and keys: {pruned.tokens}")
    click.echo(f"unfinished log-in steps and passkey ceremonies: {pruned.challenges}")
    click.echo(f"authenticator apps never confirmed: {pruned.totp_set_ups}")
    click.echo(f"accounts deleted after their grace period: {pruned.deleted_accounts}")


@click.command("check")
@with_appcontext
def check() -> None:
    """Report what is unsafe to deploy in the current configuration (the same USERHUB_*
    variables and .env the server reads); exit 1 if anything is. Warnings (mail that reaches
    nobody) are printed too, and leave the exit status alone."""
    problems = checks.unsafe_settings(current_app.config, debug=current_app.debug)
    for problem in problems:
        click.echo(f"UNSAFE: {problem}")
    for warning in checks.mail_warnings(current_app.config):
        click.echo(f"WARNING: {warning}")
    if problems:
        raise click.exceptions.Exit(1)
    click.echo("OK: nothing unsafe found in this configuration.")


def register_commands(app: Flask) -> None:
    from .calibrate import calibrate_hashing
    from .mail import mail  # they build on database_command, above
    from .users import users_group

    app.cli.add_command(check)
    app.cli.add_command(mail)
    app.cli.add_command(users_group)
    app.cli.add_command(create_admin)
    app.cli.add_command(import_users)
    app.cli.add_command(export_users)
    app.cli.add_command(prune)
    app.cli.add_command(calibrate_hashing)
