"""Rate limits on the routes that cost a password hash: log-in, register, token.

Two kinds of limit, both through Flask-Limiter and its storage (by default a SQLite file that
every worker of the host shares, ``limit_storage.py``; Redis when several hosts must share the
counts):

* **per client IP**, on every attempt: ``USERHUB_RATELIMIT_LOGIN`` for the log-in routes
  (the form behind ``/test_post`` and ``/test_request``, ``POST /api/v1/tokens``) and every
  password asked for again (``/account/password``, a new password through
  ``PATCH /api/v1/users/me``), and ``USERHUB_RATELIMIT_REGISTER`` for the registering routes
  (``/register``, ``/save_data_to_mysql``, ``POST /api/v1/users``). Each group shares one
  counter.
* **per account**, on wrong passwords only: ``services/login_limits.py``, with the device
  cookie of ``web/devices.py``.

Over a limit, the client gets 429 with ``Retry-After`` (problem+json on JSON routes, the page
otherwise). If the storage cannot be reached, limits are not enforced and a warning is logged:
an outage of Redis (or an unwritable limits file) must not lock every user out.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from flask import Flask, current_app
from flask_babel import gettext as _
from flask_limiter import RateLimitExceeded

from .. import limit_storage  # noqa: F401 (defining its storage registers the sqlite:// scheme)
from ..extensions import limiter
from ..services.login_limits import seconds_until
from .errors import handle_http_exception

log = logging.getLogger("userhub")

# The OpenAPI description of a 429, for every limited route.
RATE_LIMITED: Any = {
    "description": "Too many attempts from this address, or failed log-ins for this account",
    "headers": {
        "Retry-After": {
            "description": "Seconds to wait before trying again.",
            "required": True,
            "schema": {"type": "integer", "minimum": 1},
        }
    },
}


def _configured(key: str) -> Callable[[], str]:
    return lambda: str(current_app.config[key])


login_limit = limiter.shared_limit(
    _configured("USERHUB_RATELIMIT_LOGIN"), scope="log-in", methods=["POST"]
)
register_limit = limiter.shared_limit(
    _configured("USERHUB_RATELIMIT_REGISTER"), scope="register", methods=["POST"]
)
# The same "log-in" count, for any method: a view spends from it only when it checks a password.
_password_check_limit = limiter.shared_limit(_configured("USERHUB_RATELIMIT_LOGIN"), scope="log-in")


def count_password_check() -> None:
    """Count an attempt against this client's per-IP log-in limit from inside a view, for a
    request that checks a password only sometimes (a PATCH that sets a new one): Flask-Limiter's
    limits are also context managers. Over the limit, RateLimitExceeded (a 429, below)."""
    with _password_check_limit:
        pass


def handle_rate_limit(error: RateLimitExceeded) -> Any:
    """A per-IP limit was hit: 429 in the route's format, with ``Retry-After``."""
    current = limiter.current_limit
    retry_after = seconds_until(current.reset_at) if current else 60
    error.retry_after = retry_after  # werkzeug's TooManyRequests turns this into the header
    error.description = _(
        "Too many attempts from your address. Try again in %(seconds)d seconds.",
        seconds=retry_after,
    )
    return handle_http_exception(error)


def init_app(app: Flask) -> None:
    limiter.init_app(app)
    app.register_error_handler(RateLimitExceeded, handle_rate_limit)
