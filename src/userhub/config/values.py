"""How each kind of setting is read from its text: a parser returns the value or raises
ValueError with words that say what was expected (``load_config`` names the variable)."""

from __future__ import annotations

import contextlib
import ipaddress
import re
from collections.abc import Callable


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
