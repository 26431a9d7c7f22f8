"""``flask --app userhub users …``: deactivate, reactivate, give a role, list accounts.

For whoever runs the server, who needs no account of their own: the security log records these
changes with no actor (``actor_id`` null). Words are in the reader's language (the locale, as
``config/language.py`` reads it); the values of the table (roles, statuses) are the ones the
options and the API take, and stay as they are.
"""

from __future__ import annotations

from collections.abc import Iterator

import click

from ..config.language import gettext
from ..models import User, utc_iso
from ..services import account_status, roles, users
from ..services.errors import NoSuchUser
from .commands import database_command

PAGE = 500  # accounts read at a time by users list


@click.group("users")
def users_group() -> None:
    """Deactivate, reactivate, give roles to and list accounts (no actor in their log)."""


def _named(name: str) -> User:
    """The account NAME (as usernames compare: case and width ignored), or exit 1 saying so."""
    user = users.find_user(name)
    if user is None:
        raise _unknown(name)
    return user


def _unknown(name: str) -> click.ClickException:
    return click.ClickException(gettext("no account named %(name)s", name=repr(name)))


@users_group.command("deactivate")
@click.argument("name")
@database_command
def deactivate(name: str) -> None:
    """Deactivate the account NAME: it cannot log in by any route, and every session, token
    and key it has ends at once, on every server; its data stays."""
    user = _named(name)
    named = {"name": repr(user.username), "id": user.id}
    try:
        done = account_status.deactivate(user, by=None)
    except NoSuchUser:  # deleted meanwhile
        raise _unknown(name) from None
    if done:
        click.echo(
            gettext(
                "%(name)s (id %(id)s) is deactivated: it cannot log in, and its sessions, "
                "tokens and keys have ended.",
                **named,
            )
        )
    else:
        click.echo(gettext("%(name)s (id %(id)s) was deactivated already.", **named))


@users_group.command("reactivate")
@click.argument("name")
@database_command
def reactivate(name: str) -> None:
    """Let the deactivated account NAME log in again (its ended sessions, tokens and keys stay
    ended)."""
    user = _named(name)
    named = {"name": repr(user.username), "id": user.id}
    try:
        done = account_status.reactivate(user, by=None)
    except NoSuchUser:
        raise _unknown(name) from None
    if done:
        click.echo(gettext("%(name)s (id %(id)s) is active again: it can log in.", **named))
    else:
        click.echo(gettext("%(name)s (id %(id)s) was not deactivated.", **named))


@users_group.command("set-role")
@click.argument("name")
@click.argument("role", type=click.Choice(users.ROLES))
@database_command
def set_role(name: str, role: str) -> None:
    """Give the account NAME the role ROLE: admin (sees and changes every account), support
    (sees them, changes nothing) or none."""
    user = _named(name)
    named = {"name": repr(user.username), "id": user.id, "role": role}
    try:
        changed = users.set_role(user, role)
    except NoSuchUser:
        raise _unknown(name) from None
    if changed:
        click.echo(gettext("%(name)s (id %(id)s) has the role %(role)s now.", **named))
    else:
        click.echo(gettext("%(name)s (id %(id)s) has the role %(role)s already.", **named))


@users_group.command("list")
@click.option("--role", type=click.Choice(users.ROLES), help="Only accounts with this role.")
@click.option("--status", type=click.Choice(users.STATUSES), help="Only accounts in this status.")
@click.option(
    "--search", metavar="TEXT", help="Only accounts whose username or e-mail address has TEXT."
)
@database_command
def list_users(role: str | None, status: str | None, search: str | None) -> None:
    """The accounts in id order, a line each, tab-separated: id, username, role, status,
    e-mail address, created (UTC); then how many."""
    where = users.UserFilter(search=search or None, role=role, status=status)
    click.echo(gettext("id\tusername\trole\tstatus\te-mail\tcreated (UTC)"))
    count = 0
    for user in _every(where):
        count += 1
        cells = (
            str(user.id),
            user.username,
            roles.role_of(user) or roles.NO_ROLE,
            account_status.status_of(user),
            user.email or "-",
            utc_iso(user.created_at),
        )
        click.echo("\t".join(cells))
    click.echo(gettext("%(count)s account(s)", count=count))


def _every(where: users.UserFilter) -> Iterator[User]:
    page = 1
    while True:
        rows, total = users.list_users(page, PAGE, where=where)
        yield from rows
        if page * PAGE >= total:
            return
        page += 1
