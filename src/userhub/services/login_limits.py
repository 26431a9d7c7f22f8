"""The per-account limit on failed log-ins: ``authenticate`` behind it.

``USERHUB_RATELIMIT_ACCOUNT`` (by default 10 in any 6 minutes, a moving window) counts the
failed log-ins of each account, in the rate limiter's storage (``memory://`` in one process,
Redis when several share the counts): at most 100 failures an hour can be tried against one
account (OWASP ASVS 2.2.1), yet the owner is never locked out for long: the wait is at most the
window, and a successful log-in costs nothing. Unknown usernames are counted the same way, so
the limit does not tell which accounts exist. If the storage cannot be reached, the limit is
not applied and a warning is logged: an outage of Redis must not lock every user out.

The per-IP limits on the routes are the web layer's (``web/ratelimits.py``).
"""

from __future__ import annotations

import logging
import math
import time

from flask import current_app
from limits import RateLimitItem, parse

from ..extensions import RATE_LIMIT_KEY_PREFIX, limiter
from ..models import User
from . import account_rules, users
from .errors import TooManyFailures

log = logging.getLogger("userhub")

ACCOUNT_SCOPE = "failed-log-ins"


def seconds_until(reset_at: float) -> int:
    """Whole seconds to wait (at least 1): what ``Retry-After`` says."""
    return max(1, math.ceil(reset_at - time.time()))


def authenticate(username: str, password: str) -> User | None:
    """``users.authenticate`` behind the per-account limit on failures.

    Raises TooManyFailures, before the password is checked, when the account is over its
    limit; counts the attempt only when it fails."""
    if not limiter.enabled:
        return users.authenticate(username, password)
    item = parse(current_app.config["USERHUB_RATELIMIT_ACCOUNT"])
    account = (RATE_LIMIT_KEY_PREFIX, ACCOUNT_SCOPE, account_rules.username_key(username))
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
