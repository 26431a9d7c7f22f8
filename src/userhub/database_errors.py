"""Why the database cannot be reached, in words a person can act on.

The first hour with MySQL is spent on a handful of mistakes: a wrong password, a database not
created yet, a host misspelt, a server not started, a user whose log-in method PyMySQL cannot
speak. The driver says each one precisely, at the bottom of a long traceback. Here each becomes
one sentence: what is wrong, that it is in ``USERHUB_DATABASE_URL``, and what to type. The
commands (``db upgrade``, ``create-admin``, the bulk import and export) and ``userhub serve``
print it instead of the traceback (``flask --app userhub --debug ...`` still shows it); the
request log names the driver's reason (``cause``). Neither ever prints the password.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import click
from flask import current_app, has_app_context
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError

from .config.language import gettext

MYSQL_DEFAULT_PORT = 3306
PLACEHOLDER = "PASSWORD"  # noqa: S105 (the word printed where a password goes)
ACCOUNT = re.compile(r"user '(?P<user>[^']*)'@'(?P<host>[^']*)'")
NAME_NOT_FOUND = (
    "Name or service not known",
    "nodename nor servname",
    "getaddrinfo failed",
    "Temporary failure in name resolution",
    "No address associated",
)
# What PyMySQL raises, as RuntimeError, for a log-in method it needs a package for.
MISSING_AUTH_PACKAGE = "package is required for"


class DatabaseUnreachable(click.ClickException):
    """A command could not reach its database; the message says why and what to do.
    A ClickException, as ConfigError: a command prints ``Error: <message>`` and exits 1,
    ``userhub serve`` prints it and exits 2. Not a RuntimeError, which Flask-Migrate's
    commands would catch and log with a prefix of their own."""


@contextmanager
def explained(url: str | URL) -> Iterator[None]:
    """Turn a failure to reach the database at ``url`` into ``DatabaseUnreachable`` (unless
    the app runs with ``--debug``); any other error passes through unchanged."""
    try:
        yield
    except (DBAPIError, RuntimeError) as error:
        message = explain(error, make_url(url))
        if message is None or (has_app_context() and current_app.debug):
            raise
        raise DatabaseUnreachable(message) from None


def cause(error: BaseException) -> str:
    """The driver's own reason, for a log line: ``1045 Access denied for user 'root'@...``.
    MySQL's messages name the user and host, never the password."""
    driver_error: BaseException = getattr(error, "orig", None) or error
    coded = _mysql_code(driver_error)
    if coded:
        return f"{coded[0]} {coded[1]}"
    return f"{type(driver_error).__name__}: {driver_error}"


def _mysql_code(driver_error: BaseException) -> tuple[int, str] | None:
    """PyMySQL's errors carry (code, message); others, one message."""
    args = driver_error.args
    if len(args) == 2 and isinstance(args[0], int):
        return args[0], str(args[1])
    return None


def explain(error: BaseException, url: URL) -> str | None:
    """What keeps the database at ``url`` out of reach and what to do, or None when ``error``
    is not about reaching it (a failing query, say)."""
    if isinstance(error, RuntimeError) and not isinstance(error, DBAPIError):
        if MISSING_AUTH_PACKAGE in str(error):
            return _unusable_log_in_method(url, str(error))
        return None
    driver_error = getattr(error, "orig", None)
    if driver_error is None:
        return None
    if url.get_backend_name() == "sqlite":
        return _sqlite(url, str(driver_error))
    coded = _mysql_code(driver_error)
    explain_code = MYSQL_CODES.get(coded[0]) if coded else None
    return explain_code(url, coded[1]) if explain_code and coded else None


def _server(url: URL) -> str:
    return f"{url.host or 'localhost'}:{url.port or MYSQL_DEFAULT_PORT}"


def _with_placeholder_password(url: URL) -> str:
    """The URL to copy, with the word PASSWORD where the password goes."""
    return url.set(password=PLACEHOLDER).render_as_string(hide_password=False)


def _account(url: URL, reason: str) -> tuple[str, str]:
    """The account as the server saw it, user and client host (``root``, ``127.0.0.1``)."""
    match = ACCOUNT.search(reason)
    return (match["user"], match["host"]) if match else (url.username or "", "%")


def _quoted(account: tuple[str, str]) -> str:
    """``'root'@'127.0.0.1'``, as a GRANT or CREATE USER to copy names it."""
    return "'{}'@'{}'".format(*account)


def _access_denied(url: URL, reason: str) -> str:
    if "using password: NO" in reason:
        return gettext(
            "USERHUB_DATABASE_URL: MySQL at %(server)s wants a password for user '%(user)s' "
            "(error 1045). Add it to the URL: %(example)s",
            server=_server(url),
            user=url.username or "",
            example=_with_placeholder_password(url),
        )
    return gettext(
        "USERHUB_DATABASE_URL: MySQL at %(server)s refused user '%(user)s': the password is "
        "wrong (error 1045 access denied). Put the right one in the URL: %(example)s",
        server=_server(url),
        user=url.username or "",
        example=_with_placeholder_password(url),
    )


def _no_password_log_in(url: URL, reason: str) -> str:
    account = _account(url, reason)
    return gettext(
        "USERHUB_DATABASE_URL: MySQL at %(server)s refused %(account)s (error 1698): no such "
        "user, or one that may log in only as the system user of that name (root, on Debian "
        "and Ubuntu). Create a user for userhub: CREATE USER 'userhub'@'%(client)s' IDENTIFIED "
        "BY 'a password'; GRANT ALL ON `%(database)s`.* TO 'userhub'@'%(client)s'; and put "
        "it in the URL.",
        server=_server(url),
        account=_quoted(account),
        client=account[1],
        database=url.database or "",
    )


def _database_denied(url: URL, reason: str) -> str:
    return gettext(
        "USERHUB_DATABASE_URL: user %(account)s may not use the database '%(database)s' on "
        "%(server)s (error 1044). As an administrator: GRANT ALL ON `%(database)s`.* TO "
        "%(account)s; or name a database the user may use.",
        server=_server(url),
        account=_quoted(_account(url, reason)),
        database=url.database or "",
    )


def _unknown_database(url: URL, _reason: str) -> str:
    return gettext(
        "USERHUB_DATABASE_URL: the database '%(database)s' does not exist on %(server)s "
        "(error 1049). Create it: CREATE DATABASE `%(database)s` CHARACTER SET utf8mb4; "
        "(or fix its name in the URL), then run: flask --app userhub db upgrade",
        server=_server(url),
        database=url.database or "",
    )


def _host_refused(url: URL, reason: str) -> str:
    return gettext(
        "USERHUB_DATABASE_URL: MySQL at %(server)s does not accept user '%(user)s' from this "
        "machine (error 1130: %(reason)s). Create the user for this machine's address there, "
        "or connect from the database's own machine.",
        server=_server(url),
        user=url.username or "",
        reason=reason,
    )


def _cannot_connect(url: URL, reason: str) -> str:
    if any(text in reason for text in NAME_NOT_FOUND):
        return gettext(
            "USERHUB_DATABASE_URL: the host '%(host)s' is unknown (no such name). Fix the "
            "host in the URL: 127.0.0.1 for a database on this machine.",
            host=url.host or "",
        )
    if "refused" in reason:
        return gettext(
            "USERHUB_DATABASE_URL: nothing answers at %(server)s (connection refused). Start "
            "MySQL or MariaDB there (sudo systemctl start mariadb), or fix the host and port "
            "in the URL.",
            server=_server(url),
        )
    return gettext(
        "USERHUB_DATABASE_URL: cannot reach MySQL at %(server)s (%(reason)s). Check that it "
        "runs and that this machine may reach it, or fix the host and port in the URL.",
        server=_server(url),
        reason=reason,
    )


def _unusable_log_in_method(url: URL, reason: str) -> str:
    return gettext(
        "USERHUB_DATABASE_URL: user '%(user)s' logs in to %(server)s with a method PyMySQL "
        "cannot use here (%(reason)s). Give the user a plain password, which MySQL and "
        "MariaDB both check in a way PyMySQL speaks: ALTER USER '%(user)s'@'%%' IDENTIFIED BY "
        "'a password'; (use the user's host for %%).",
        server=_server(url),
        user=url.username or "",
        reason=reason,
    )


def _sqlite(url: URL, reason: str) -> str | None:
    if "unable to open" not in reason and "readonly" not in reason:
        return None
    return gettext(
        "USERHUB_DATABASE_URL: cannot open or write the SQLite file %(path)s (%(reason)s). "
        "Make its folder writable by this user, or name another file in the URL.",
        path=url.database or "",
        reason=reason,
    )


MYSQL_CODES: dict[int, Callable[[URL, str], str]] = {
    1044: _database_denied,
    1045: _access_denied,
    1049: _unknown_database,
    1130: _host_refused,
    1698: _no_password_log_in,
    2003: _cannot_connect,
    2005: _cannot_connect,  # unknown host, on some platforms
    2006: _cannot_connect,
    2013: _cannot_connect,
    2059: _unusable_log_in_method,
}
