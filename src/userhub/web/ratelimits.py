"""Rate limits on the routes that cost a password hash: log-in, register, token.

Two kinds of limit, both through Flask-Limiter and its storage (``memory://`` in one process,
Redis when several processes or hosts must share the counts):

* **per client IP**, on every attempt: ``USERHUB_RATELIMIT_LOGIN`` for the log-in routes
  (the form behind ``/test_post`` and ``/test_request``, ``POST /api/v1/tokens``) and
  ``USERHUB_RATELIMIT_REGISTER`` for the registering routes (``/register``,
  ``/save_data_to_mysql``, ``POST /api/v1/users``). Each group shares one counter.
* **per account**, on failed log-ins only (``USERHUB_RATELIMIT_ACCOUNT``, by default 10 in any
  6 minutes, a moving window): at most 100 failures an hour can be tried against one account
  (OWASP ASVS 2.2.1), yet the owner is never locked out for long: the wait is at most the
  window, and a successful log-in costs nothing. Unknown usernames are counted the same way,
  so the limit does not tell which accounts exist.

Over a limit, the client gets 429 with ``Retry-After`` (problem+json on JSON routes, the page
otherwise). If the storage cannot be reached, limits are not enforced and a warning is logged:
an outage of Redis must not lock every user out.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any

from flask import Flask, current_app
from flask_babel import gettext as _
from flask_limiter import RateLimitExceeded
from limits import RateLimitItem, parse

from ..extensions import RATE_LIMIT_KEY_PREFIX, limiter
from ..models import User
from ..services import users
from .errors import Problem, handle_http_exception

log = logging.getLogger("userhub")

ACCOUNT_SCOPE = "failed-log-ins"
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


def seconds_until(reset_at: float) -> int:
    """Whole seconds to wait (at least 1): what ``Retry-After`` says."""
    return max(1, math.ceil(reset_at - time.time()))


class TooManyFailures(Problem):
    """This account had too many failed log-ins lately; try again after ``retry_after``."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            429,
            _(
                "Too many failed log-ins for this account. Try again in %(seconds)d seconds, "
                "or reset your password with an administrator's help.",
                seconds=retry_after,
            ),
            headers={"Retry-After": str(retry_after)},
        )
        self.retry_after = retry_after


def authenticate(username: str, password: str) -> User | None:
    """``users.authenticate`` behind the per-account limit on failures.

    Raises TooManyFailures, before the password is checked, when the account is over its
    limit; counts the attempt only when it fails."""
    if not limiter.enabled:
        return users.authenticate(username, password)
    item = parse(current_app.config["USERHUB_RATELIMIT_ACCOUNT"])
    account = (RATE_LIMIT_KEY_PREFIX, ACCOUNT_SCOPE, users.username_key(username))
    if (wait := _seconds_over_limit(item, account)) is not None:
        raise TooManyFailures(wait)
    user = users.authenticate(username, password)
    if user is None:
        _count_failure(item, account)
    return user


def _seconds_over_limit(item: RateLimitItem, account: tuple[str, ...]) -> int | None:
    """How long ``account`` must wait, or None when it may try (or the storage is down)."""
    try:
        if limiter.limiter.test(item, *account):
            return None
        reset_at, _ = limiter.limiter.get_window_stats(item, *account)
    except Exception as exc:  # any storage error: fail open, like swallow_errors
        _storage_unreachable(exc)
        return None
    return seconds_until(reset_at)


def _count_failure(item: RateLimitItem, account: tuple[str, ...]) -> None:
    try:
        limiter.limiter.hit(item, *account)
    except Exception as exc:
        _storage_unreachable(exc)


def _storage_unreachable(exc: Exception) -> None:
    log.warning("rate limit storage unreachable (%s); limit not applied", type(exc).__name__)


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
