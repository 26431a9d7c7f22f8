"""How each kind of setting is read from its text: a parser returns the value or raises
ValueError with words that say what was expected (``load_config`` names the variable)."""

from __future__ import annotations

import contextlib
import ipaddress
import re
from collections.abc import Callable

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from .language import gettext


def parse_bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ValueError("expected true or false")


def one_of(*choices: str) -> Callable[[str], str]:
    """A parser for a setting that takes one of ``choices`` (any case)."""

    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in choices:
            raise ValueError(f"expected {', '.join(choices[:-1])} or {choices[-1]}")
        return value

    return parse


SERVERS = ("granian", "gunicorn")


def parse_count(raw: str) -> int:
    """A whole number, 0 or more."""
    value = int(raw.strip())
    if value < 0:
        raise ValueError("expected 0 or a positive whole number")
    return value


def parse_rate_limits(raw: str) -> str:
    """Flask-Limiter's notation, checked now rather than at the first request:
    ``30 per minute``, ``10/minute; 100/hour``."""
    from limits import parse_many  # imported here: nothing runs at import time

    parse_many(raw)  # ValueError names the part it cannot read
    return raw.strip()


def parse_rate_limit(raw: str) -> str:
    """One limit only (``10 per 6 minutes``)."""
    from limits import parse_many

    value = parse_rate_limits(raw)
    if len(parse_many(value)) != 1:
        raise ValueError("expected one limit, like 10 per 6 minutes")
    return value


MYSQL_BACKENDS = ("mysql", "mariadb")
MYSQL_EXAMPLE = "mysql+pymysql://USER:PASSWORD@127.0.0.1:3306/DATABASE?charset=utf8mb4"


class WholeMessage(ValueError):
    """A ValueError whose words name the setting already, and must not be followed by the
    value itself (``load_config`` quotes other values): a database URL may hold a password."""


MIN_METRICS_TOKEN_LENGTH = 32


def parse_metrics_token(raw: str) -> str:
    """The bearer token a Prometheus scraper sends: as hard to guess as the secret key."""
    token = raw.strip()
    if len(token) < MIN_METRICS_TOKEN_LENGTH:
        raise WholeMessage(
            gettext(
                "USERHUB_METRICS_TOKEN must be at least %(length)d characters (it guards "
                "/metrics). Generate one with: %(command)s, or leave it unset to turn /metrics "
                "off.",
                length=MIN_METRICS_TOKEN_LENGTH,
                command='python -c "import secrets; print(secrets.token_hex(32))"',
            )
        )
    return token


def parse_database_url(raw: str) -> str:
    """A URL userhub can run on: SQLite (any file) or MySQL/MariaDB through PyMySQL, with a
    database named. Checked here so that ``mysql://`` (SQLAlchemy's default driver, MySQLdb,
    is not installed) or a typo stops start-up with what to write instead, not a traceback."""
    value = raw.strip()
    try:
        url = make_url(value)
    except ArgumentError:
        raise WholeMessage(
            gettext(
                "USERHUB_DATABASE_URL is not a database URL. Write %(example)s, or leave it "
                "empty for the embedded SQLite file.",
                example=MYSQL_EXAMPLE,
            )
        ) from None
    backend, _, driver = url.drivername.partition("+")
    if backend == "sqlite":
        return value
    if backend not in MYSQL_BACKENDS:
        raise WholeMessage(
            gettext(
                "USERHUB_DATABASE_URL names a %(backend)s database; userhub runs on MySQL or "
                "MariaDB (%(example)s), or on the embedded SQLite file when it is empty.",
                backend=backend,
                example=MYSQL_EXAMPLE,
            )
        )
    if driver != "pymysql":
        raise WholeMessage(
            gettext(
                "USERHUB_DATABASE_URL=%(url)s does not say to use PyMySQL, the MySQL driver "
                "userhub installs. Write it as %(fixed)s",
                url=shown(url),
                fixed=shown(url.set(drivername=backend + "+pymysql")),
            )
        )
    if not url.database:
        raise WholeMessage(
            gettext(
                "USERHUB_DATABASE_URL=%(url)s names no database: add its name after the "
                "port, as in %(example)s",
                url=shown(url),
                example=MYSQL_EXAMPLE,
            )
        )
    return value


def shown(url: URL) -> str:
    """A database URL as it may be printed or logged: the password as ``***``."""
    return url.render_as_string(hide_password=True)


RATE_LIMIT_STORAGES = ("memory://", "redis://", "rediss://", "redis+unix://", "redis+sentinel://")


def parse_limit_storage(raw: str) -> str:
    value = raw.strip()
    if value.startswith("sqlite:"):
        from ..limit_storage import file_of  # imported here: nothing runs at import time

        file_of(value)  # ValueError says what a SQLite URI looks like
        return value
    if not value.startswith(RATE_LIMIT_STORAGES):
        raise ValueError(
            "expected a SQLite file like sqlite:////var/lib/userhub/ratelimits.sqlite3, "
            "memory:// or a Redis URL like redis://127.0.0.1:6379/0"
        )
    return value


# An exact origin: scheme, host (name or [IPv6]) and optional port. Flask-CORS would read
# anything else ("*", "https://*.example.com") as a regular expression matched by prefix.
# ASCII digits only: a browser never sends "٥١٧٣" as a port.
ORIGIN = re.compile(
    r"https?://(?:[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*|\[[0-9A-Fa-f:.]+\])(?::(?P<port>\d{1,5}))?",
    re.ASCII,
)
MAX_PORT = 65535


def parse_origins(raw: str) -> tuple[str, ...]:
    origins = tuple(o.strip().rstrip("/") for o in raw.split(",") if o.strip())
    for origin in origins:
        match = ORIGIN.fullmatch(origin)
        if match and match["port"] and not 1 <= int(match["port"]) <= MAX_PORT:
            raise ValueError(
                f"{origin!r} is not an exact origin: its port is outside 1 to {MAX_PORT}"
            )
        if not match:
            raise ValueError(
                f"{origin!r} is not an exact origin; expected a comma-separated list like "
                "https://app.example.com,http://localhost:5173 (no wildcards or paths)"
            )
    return origins


# A host name as a Host header carries it once lower-cased: labels of letters, digits and
# hyphens (an IPv4 address is one too), and a leading dot for "this name and its subdomains".
HOST_NAME = re.compile(r"\.?[a-z0-9-]+(?:\.[a-z0-9-]+)*", re.ASCII)


def parse_allowed_hosts(raw: str) -> tuple[str, ...]:
    """``USERHUB_ALLOWED_HOSTS``: host names (``example.com``; ``.example.com`` for it and its
    subdomains), IPv4 addresses and IPv6 addresses (``::1`` or ``[::1]``), comma-separated,
    lower-cased; a name in Unicode is stored as IDNA (``xn--…``), as browsers send it. No port
    (the port is never compared), scheme, path or ``*``."""
    hosts = tuple(allowed_host(entry.strip()) for entry in raw.split(",") if entry.strip())
    if not hosts:
        raise ValueError("expected at least one host name, like userhub.example.com")
    return hosts


def allowed_host(entry: str) -> str:
    """One entry of ``USERHUB_ALLOWED_HOSTS`` in the form it is compared in."""
    address = entry[1:-1] if entry.startswith("[") and entry.endswith("]") else entry
    if ":" in address and "%" not in address:  # no zone (fe80::1%eth0): a Host never has one
        with contextlib.suppress(ValueError):  # else a name with a port, say: refused below
            return str(ipaddress.IPv6Address(address))  # ::1, not [::1] or 0:0:0:0:0:0:0:1
    dot, name = ("." if entry.startswith(".") else ""), entry.removeprefix(".").lower()
    if not name.isascii():
        with contextlib.suppress(UnicodeError):  # else refused below
            name = name.encode("idna").decode("ascii")
    if HOST_NAME.fullmatch(dot + name) is None:
        raise ValueError(
            f"{entry!r} is not a host name: expected a comma-separated list like "
            "userhub.example.com,.example.org,127.0.0.1,::1 (a leading dot allows the subdomains "
            "too; no port, scheme, path or *)"
        )
    return dot + name


MAIL_SCHEMES = ("smtp", "smtps", "file")
MAIL_URL_EXAMPLE = "smtp://USER:PASSWORD@smtp.example.com:587"


def parse_mail_url(raw: str) -> str:
    """``USERHUB_MAIL_URL``: ``smtp://`` (STARTTLS when offered, ``?starttls=require`` to
    insist), ``smtps://`` (TLS from the first byte) or ``file:///folder``. Only the form is
    checked here; ``services/mail_transport.py`` reads the parts. Never echoed: it may hold a
    password."""
    from urllib.parse import parse_qs, urlsplit

    value = raw.strip()
    try:
        url = urlsplit(value)
        port = url.port
    except ValueError:
        url, port = None, None
    if url is None or url.scheme not in MAIL_SCHEMES:
        raise WholeMessage(
            gettext(
                "USERHUB_MAIL_URL is not a mail URL. Write %(example)s (STARTTLS), "
                "smtps://… (TLS on connect, usually port 465), or file:///folder to write each "
                "mail into a folder as a .eml file.",
                example=MAIL_URL_EXAMPLE,
            )
        )
    if url.scheme == "file":
        if not url.path or url.netloc:
            raise WholeMessage(
                gettext(
                    "USERHUB_MAIL_URL=file:… needs an absolute folder: file:///var/mail/userhub"
                )
            )
        return value
    if not url.hostname:
        raise WholeMessage(
            gettext("USERHUB_MAIL_URL names no server: write %(example)s", example=MAIL_URL_EXAMPLE)
        )
    options = parse_qs(url.query)
    unknown = set(options) - {"starttls"}
    if unknown or options.get("starttls", ["require"]) not in (["require"], ["never"], ["auto"]):
        raise WholeMessage(
            gettext(
                "USERHUB_MAIL_URL takes one option, starttls=require, auto (the default) or "
                "never: %(example)s?starttls=require",
                example=MAIL_URL_EXAMPLE,
            )
        )
    del port  # read above only to refuse a port that is not a number
    return value


def path_after_origin(value: str) -> str | None:
    """What follows ``value``'s origin (``scheme://host[:port]``), or None when it does not
    start with one: the check of both URL settings below."""
    scheme, separator, rest = value.partition("://")
    host, _, path = rest.partition("/")
    return path if separator and ORIGIN.fullmatch(f"{scheme}://{host}") else None


def parse_public_url(raw: str) -> str:
    """``USERHUB_PUBLIC_URL``: the origin links in mail start with, like
    ``https://userhub.example.com`` (an optional path prefix; no query)."""
    value = raw.strip().rstrip("/")
    path = path_after_origin(value)
    if path is None or "?" in path or "#" in path:
        raise ValueError("expected an origin like https://userhub.example.com")
    return value


def parse_http_url(raw: str) -> str:
    """``USERHUB_OTEL_ENDPOINT``: an OTLP/HTTP traces URL, like
    ``http://127.0.0.1:4318/v1/traces``, used as it is; a bare origin
    (``http://127.0.0.1:4318``) gets the standard path ``/v1/traces``."""
    value = raw.strip()
    path = path_after_origin(value)
    if path is None or "#" in path:
        raise ValueError("expected a URL like http://127.0.0.1:4318/v1/traces")
    return value if path.strip("/") else f"{value.rstrip('/')}/v1/traces"


def parse_address(raw: str) -> str:
    """``USERHUB_MAIL_FROM``: ``noreply@example.com`` or ``userhub <noreply@example.com>``."""
    from email.headerregistry import Address
    from email.utils import parseaddr

    name, address = parseaddr(raw.strip())
    if "@" not in address:
        raise ValueError("expected an address like userhub <noreply@example.com>")
    Address(display_name=name, addr_spec=address)  # ValueError for what a header cannot carry
    return raw.strip()
