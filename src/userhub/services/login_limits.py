"""The per-account limit on wrong passwords, which slows strangers down without locking the
owner out: OWASP's "Slow Down Online Guessing Attacks with Device Cookies".

``USERHUB_RATELIMIT_ACCOUNT`` (by default 10 in any 6 minutes, a moving window) counts the
failures of each account in two kinds of bucket, in the rate limiter's storage (a file every
worker of the host shares, or Redis when several hosts do):

* one per **known device**: a client that showed a valid device cookie naming this account (it
  logged in to it before) counts its failures on its own, so a full bucket stops only that
  device;
* one for **every other client** of the account together: strangers share it, and when it is
  full each of them waits (``TooManyFailures``), while the owner's known devices still get in.

The caller says which: ``device`` is the known device's id, or None for everyone else (the web
layer reads the cookie, ``web/devices.py``). At most 100 failures an hour reach an account from
clients it has never seen (OWASP ASVS 2.2.1); a successful check costs nothing. Unknown
usernames are counted the same way, so the limit does not tell which accounts exist. If the
storage cannot be reached, the limit is not applied and a warning is logged: an outage of Redis
must not lock every user out.

``attempt`` is the one gate: ``users.check_password`` (log-in, and a password asked for again)
goes through it, and so can any later secret checked against an account (a second-factor code).
The per-IP limits on the routes are the web layer's (``web/ratelimits.py``).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

from flask import current_app
from limits import RateLimitItem, parse

from ..extensions import RATE_LIMIT_KEY_PREFIX, limiter
from .errors import TooManyFailures

log = logging.getLogger("userhub")

ACCOUNT_SCOPE = "failed-log-ins"  # an account's bucket of clients it does not know
DEVICE_SCOPE = "failed-log-ins-device"  # one known device's bucket for an account


def seconds_until(reset_at: float) -> int:
    """Whole seconds to wait (at least 1): what ``Retry-After`` says."""
    return max(1, math.ceil(reset_at - time.time()))


def attempt(account_key: str, device: str | None, check: Callable[[], bool]) -> bool:
    """Run ``check`` (does the secret match?) behind the limit of ``account_key`` (a
    ``username_key``, whether or not such an account exists) for this client.

    ``device``: the id of a device known to this account, or None for any other client. Raises
    TooManyFailures, before ``check`` runs (no hash is spent), when the client's bucket is
    full; counts the attempt only when ``check`` says no."""
    if not limiter.enabled:
        return check()
    item = parse(current_app.config["USERHUB_RATELIMIT_ACCOUNT"])
    bucket = _bucket(account_key, device)
    if (wait := _seconds_over_limit(item, bucket)) is not None:
        raise TooManyFailures(wait)
    passed = check()
    if not passed:
        _count_failure(item, bucket)
    return passed


def _bucket(account_key: str, device: str | None) -> tuple[str, ...]:
    """The storage key's parts: the account's untrusted bucket, or one device's."""
    if device is None:
        return (RATE_LIMIT_KEY_PREFIX, ACCOUNT_SCOPE, account_key)
    return (RATE_LIMIT_KEY_PREFIX, DEVICE_SCOPE, device, account_key)


def _seconds_over_limit(item: RateLimitItem, bucket: tuple[str, ...]) -> int | None:
    """How long ``bucket`` must wait, or None when it may try (or the storage is down)."""
    try:
        if limiter.limiter.test(item, *bucket):
            return None
        reset_at, _ = limiter.limiter.get_window_stats(item, *bucket)
    except Exception as exc:  # any storage error: fail open, like swallow_errors
        _storage_unreachable(exc)
        return None
    return seconds_until(reset_at)


def _count_failure(item: RateLimitItem, bucket: tuple[str, ...]) -> None:
    try:
        limiter.limiter.hit(item, *bucket)
    except Exception as exc:
        _storage_unreachable(exc)


def _storage_unreachable(exc: Exception) -> None:
    log.warning("rate limit storage unreachable (%s); limit not applied", type(exc).__name__)
