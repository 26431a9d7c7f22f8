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
clients it has never seen (OWASP ASVS 2.2.1) while its owner stays away; a right password
empties the bucket it was tried in (only the owner knows it). Unknown
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

    ``device``: the id of a device known to this account, or None for any other client. Each
    attempt first takes a place in the client's bucket, atomically in the storage, so attempts
    sent at the same moment cannot all slip through before any is counted; a full bucket raises
    TooManyFailures before ``check`` runs (no hash is spent). A right secret empties the bucket
    again: its failures were the owner's own, or the owner's known device's, and only the
    owner knows the secret."""
    if not limiter.enabled:
        return check()
    item = parse(current_app.config["USERHUB_RATELIMIT_ACCOUNT"])
    bucket = _bucket(account_key, device)
    if (wait := _take_place(item, bucket)) is not None:
        raise TooManyFailures(wait)
    passed = check()
    if passed:
        _empty(item, bucket)
    return passed


LOCK_NOTICE_SCOPE = "lock-notice"
LOCK_NOTICE_LIMIT = "1 per hour"  # one mail to the owner per lock, however long it is besieged


def newly_locked(account_key: str) -> bool:
    """After a failure from an unknown client: whether the account's shared bucket is now full
    and its owner has not been told within the hour (then they are due a notice, with a link
    that lets them in: ``account_mail.account_locked``)."""
    if not limiter.enabled:
        return False
    item = parse(current_app.config["USERHUB_RATELIMIT_ACCOUNT"])
    try:
        if limiter.limiter.test(item, *_bucket(account_key, None)):
            return False
    except Exception as exc:
        _storage_unreachable(exc)
        return False
    return counted(LOCK_NOTICE_LIMIT, LOCK_NOTICE_SCOPE, account_key)


def counted(limit: str, scope: str, key: str) -> bool:
    """Count one more in the bucket ``scope``/``key`` under ``limit`` (``5 per hour``); False
    when it is full. If the storage cannot be reached, True, with a warning: an outage must not
    stop what the limit only paces (a mail of a link, a notice)."""
    if not limiter.enabled:
        return True
    try:
        return bool(limiter.limiter.hit(parse(limit), RATE_LIMIT_KEY_PREFIX, scope, key))
    except Exception as exc:
        _storage_unreachable(exc)
        return True


def unlock(account_key: str) -> None:
    """Empty the account's bucket of unknown clients: its owner proved who they are (a reset
    or unlock link that reached their mailbox)."""
    if limiter.enabled:
        _empty(parse(current_app.config["USERHUB_RATELIMIT_ACCOUNT"]), _bucket(account_key, None))


def _bucket(account_key: str, device: str | None) -> tuple[str, ...]:
    """The storage key's parts: the account's untrusted bucket, or one device's."""
    if device is None:
        return (RATE_LIMIT_KEY_PREFIX, ACCOUNT_SCOPE, account_key)
    return (RATE_LIMIT_KEY_PREFIX, DEVICE_SCOPE, device, account_key)


def _take_place(item: RateLimitItem, bucket: tuple[str, ...]) -> int | None:
    """Count an attempt in ``bucket``; how long to wait if it is full (None: go ahead, also
    when the storage is down)."""
    try:
        if limiter.limiter.hit(item, *bucket):
            return None
        reset_at, _ = limiter.limiter.get_window_stats(item, *bucket)
    except Exception as exc:  # any storage error: fail open, like swallow_errors
        _storage_unreachable(exc)
        return None
    return seconds_until(reset_at)


def _empty(item: RateLimitItem, bucket: tuple[str, ...]) -> None:
    try:
        limiter.limiter.clear(item, *bucket)
    except Exception as exc:
        _storage_unreachable(exc)


def _storage_unreachable(exc: Exception) -> None:
    log.warning("rate limit storage unreachable (%s); limit not applied", type(exc).__name__)
