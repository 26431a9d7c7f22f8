"""userhub: the Flask backend tutorial's user system, built as real software.

``create_app`` reads like a table of contents: configuration, extensions, blueprints, error
handling, commands. Any WSGI server loads it as ``userhub:create_app()``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from apiflask import APIFlask
from flask import Request
from werkzeug.exceptions import SecurityError
from werkzeug.routing import MapAdapter

from . import api, database, pages
from .cli import commands
from .config import finish_config, load_config, read_environment
from .config.instance import default_instance_path
from .services import passwords
from .web import (
    csrf,
    errors,
    hosts,
    i18n,
    origin,
    proxies,
    ratelimits,
    request_limits,
    security_headers,
    sessions,
    tracing,
)
from .web import metrics as request_metrics  # not to hide the package's own metrics module
from .web.fastjson import OrjsonProvider
from .web.logs import register_logging


class UserhubFlask(APIFlask):
    """APIFlask, minus a check Flask repeats on every hook and view of every request, and with
    a URL adapter even for a request whose host it refuses.

    Flask asks ``inspect.iscoroutinefunction`` of each function each time it calls it (six
    times for a plain GET); the answer never changes, so it is worked out once per function.

    For a host outside ``TRUSTED_HOSTS`` Flask makes no URL adapter, and every ``url_for``
    (the error page's links) would then fail with a 500; ``web/hosts.py`` makes one that names
    no host, and answers the request 400.
    """

    def create_url_adapter(self, request: Request | None) -> MapAdapter | None:
        if request is not None and (known := hosts.bind_known_host(self, request)) is not None:
            return known
        try:
            return super().create_url_adapter(request)
        except SecurityError:
            if request is None:
                raise
            return hosts.bind_refused_host(self, request)

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        cache: dict[Callable[..., Any], Callable[..., Any]] = self.__dict__.setdefault(
            "_sync_functions", {}
        )
        sync = cache.get(func)
        if sync is None:
            sync = cache[func] = super().ensure_sync(func)
        return sync


def create_app(config: Mapping[str, Any] | None = None) -> APIFlask:
    """Build the application. ``config`` overrides settings (tests pass a database URL)."""
    environ = read_environment()
    app = UserhubFlask(
        __name__,
        title="userhub",
        version="1.0.0",
        json_errors=False,
        spec_path="/openapi.json",
        docs_path=None,  # our own /docs page (openapi.py): offline assets, no inline script
        instance_path=environ.get("USERHUB_INSTANCE_PATH") or default_instance_path(),
        instance_relative_config=True,
    )
    app.config.update(load_config(environ))
    app.config.update(config or {})
    finish_config(app.config, app.instance_path)
    app.json = OrjsonProvider(app)  # the tutorial's key order, 张三 not \u5f20\u4e09

    request_metrics.init_app(
        app
    )  # with USERHUB_METRICS_TOKEN: /metrics, each request counted and timed
    proxies.init_app(app)  # the client's address and scheme, when behind nginx
    hosts.init_app(app)  # first of the checks: a request for another site's host is refused
    request_limits.init_app(app)  # before CSRF: nothing may read a cut-off body
    ratelimits.init_app(app)  # before CSRF and the views: every attempt counts
    database.init_app(app)
    tracing.init_app(app)  # opt-in OpenTelemetry: nothing loaded unless configured
    passwords.init_app(app)
    sessions.init_app(app)  # server-side: the cookie carries a session row's key
    origin.init_app(app)  # who and where, for the security log and the session list
    csrf.init_app(app)
    security_headers.init_app(app)
    i18n.init_app(app)  # the reader's language: pages, flash messages, error texts

    pages.init_app(app)  # the tutorial's routes and the account pages
    api.init_app(app)  # /api/v1, /openapi.json and /docs

    errors.register_errors(app)
    commands.register_commands(app)
    register_logging(app)
    return app
