"""Allowed hosts: userhub answers only requests that name one of its own hosts.

Werkzeug builds absolute URLs from the host the client names: the ``Location`` of its routing
redirects (``/static//hello-flask.gif`` is answered 308 to ``http://<Host>/static/hello-flask.gif``,
merging the slashes) and ``url_for(..., _external=True)``. A forged ``Host`` would put another
site into them: a cache in front would keep the poisoned redirect for everyone. So the hosts
this site is reached by are a setting, ``USERHUB_ALLOWED_HOSTS``, which is Flask's
``TRUSTED_HOSTS``, and a request for any other host is refused with 400 in the route's format
before anything else runs (rate limits, CSRF, the view). The refused host is never written into
a header or a body.

What ``TRUSTED_HOSTS`` matches (Werkzeug 3.1, ``werkzeug.sansio.utils.host_is_trusted``): an
entry equal to the host, or, with a leading dot, the host or a parent of it (``.example.com``
matches ``example.com`` and ``a.example.com``, not ``badexample.com``); the port is never
compared. Behind a trusted proxy (``USERHUB_TRUSTED_PROXIES``) the host is the one ProxyFix took
from ``X-Forwarded-Host``. Werkzeug compares the host as sent (``LOCALHOST`` is not
``localhost``) and never matches an IPv6 host (it cuts each entry at its first colon, so ``::1``
matches neither ``[::1]`` nor ``[::1]:5000``); a host it refuses is asked about again here, in
lower case and with IPv6 addresses compared as addresses, before it is refused.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import re
from collections.abc import Collection

from flask import Flask, Request, request
from flask_babel import gettext as _
from werkzeug.routing import MapAdapter
from werkzeug.sansio.utils import host_is_trusted
from werkzeug.wsgi import get_host

from .problems import Problem

log = logging.getLogger("userhub")

REFUSED_HOST = "userhub.refused_host"  # in the environ: the host this request was refused for
# "[address]" with an optional port, as werkzeug's own check reads it (no leading zero).
IPV6_HOST = re.compile(r"\[([0-9a-f:.]+)\](?::([1-9][0-9]{0,4}))?", re.ASCII)
MAX_PORT = 65535


def is_allowed(host: str, allowed: Collection[str]) -> bool:
    """The second look at a host Werkzeug refused: in lower case, and IPv6 as an address."""
    host = host.lower()
    literal = IPV6_HOST.fullmatch(host)
    if literal is None:
        return host_is_trusted(host, allowed)
    if literal[2] and int(literal[2]) > MAX_PORT:
        return False
    try:
        address = str(ipaddress.IPv6Address(literal[1]))
    except ValueError:
        return False
    return address in allowed  # entries are in ipaddress's form (config/values.py)


@functools.lru_cache(maxsize=64)
def trusted(host: str, allowed: tuple[str, ...]) -> bool:
    """Werkzeug's own verdict on a ``Host`` value, remembered: it encodes every allowed host to
    IDNA again on each request (~2 µs each), and a site is reached by a handful of hosts."""
    return host_is_trusted(host, allowed)


def bind_known_host(app: Flask, request: Request) -> MapAdapter | None:
    """The URL adapter Flask's ``create_url_adapter`` would make, for a request whose ``Host``
    Werkzeug has trusted before; None for any other (Flask then checks it, and refuses it)."""
    allowed = app.config["TRUSTED_HOSTS"]
    header = request.environ.get("HTTP_HOST")
    if not allowed or header is None or app.url_map.host_matching or app.subdomain_matching:
        return None
    if not trusted(header, tuple(allowed)):
        return None
    request.trusted_hosts = allowed
    request.host = get_host(request.environ)  # the port dropped as Flask drops it
    return app.url_map.bind_to_environ(
        request.environ,
        server_name=app.config["SERVER_NAME"],
        subdomain=app.url_map.default_subdomain or "",
    )


def bind_refused_host(app: Flask, request: Request) -> MapAdapter:
    """The URL adapter for a request whose host Flask refused (``create_url_adapter`` raised
    ``SecurityError``).

    For a host :func:`is_allowed` accepts after all, the adapter Flask would have made. For any
    other, one bound to no host: the request still finds its view (so its error has the view's
    format, and the error page builds its links, all relative), but no URL can name the refused
    host, and ``refuse_foreign_host`` answers 400 before the view or a routing redirect."""
    host = request.environ.get("HTTP_HOST", "")
    if is_allowed(host, app.config["TRUSTED_HOSTS"]):
        request.host = host
        server_name = app.config["SERVER_NAME"]
    else:
        request.host = server_name = ""  # as Werkzeug has it for a Host it cannot use
        request.environ[REFUSED_HOST] = host
    return app.url_map.bind_to_environ(
        request.environ, server_name=server_name, subdomain=app.url_map.default_subdomain or ""
    )


def refuse_foreign_host() -> None:
    host = request.environ.get(REFUSED_HOST)
    if host is not None:
        log.info("refused a request for a host USERHUB_ALLOWED_HOSTS does not list: %r", host)
        raise Problem(
            400,
            _(
                "This server does not answer to the host name the request was sent to (its Host "
                "header). Use the site's own address."
            ),
            kind="host-not-allowed",
        )


def init_app(app: Flask) -> None:
    # First of all the checks: nothing (rate limits, CSRF, the view) runs for a foreign host.
    app.before_request_funcs.setdefault(None, []).insert(0, refuse_foreign_host)
