"""The device cookie: a browser (or API client with a cookie jar) that has logged in to an
account before keeps its own budget of wrong passwords for it, so strangers guessing at the
account cannot lock its owner out (OWASP, "Slow Down Online Guessing Attacks with Device
Cookies"; the buckets are ``services/login_limits.py``'s).

Every successful log-in (the form behind ``/test_post`` and ``/test_request``, and
``POST /api/v1/tokens``) sets ``userhub_device``: a random device id and the accounts that have
logged in from it, signed with the app's secret (its own salt), HttpOnly, SameSite=Lax, Secure
when the session cookie is, for a year. The accounts are keyed hashes of their username keys,
not the names (the cookie is signed, not encrypted); the latest ``MAX_ACCOUNTS`` are kept.

A client whose cookie is valid and names the account counts its failures in its own bucket;
any other client (no cookie, a forged, tampered or expired one, one naming only other
accounts) counts in the account's shared bucket of untrusted clients. Every log-in route and
every password asked for again take the device from here, so they all count alike. The same
cookie decides whether a log-in comes from a new device, which mails the owner.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

from flask import after_this_request, current_app, request
from itsdangerous import BadData, URLSafeTimedSerializer
from werkzeug.wrappers import Response

from ..models import User
from ..services import second_factors, users
from ..services.account_rules import username_key

COOKIE = "userhub_device"
COOKIE_MAX_AGE = 365 * 24 * 3600
SALT = "userhub.device-cookie"
MAX_ACCOUNTS = 10  # a shared family computer, not a list that grows without end


@dataclass(frozen=True)
class Device:
    """What a valid device cookie says."""

    id: str
    accounts: tuple[str, ...]  # account hashes, the latest log-in first


@dataclass(frozen=True)
class LoggedIn:
    """A right password: the account, whether this client is a device it knows (else the
    owner is mailed about the new device, ``services/log_ins.py``), and whether a second factor
    must follow before the log-in is done (``services/second_step.py``)."""

    user: User
    known_device: bool
    second_step: bool = False


def log_in(username: str, password: str, *, cancel_deletion: bool = False) -> LoggedIn | None:
    """``users.authenticate``, counted in this client's bucket for the account; a success
    (re)sets the device cookie on the response, naming the account first, unless a second
    factor must follow (the device becomes known to the account only when the log-in is done:
    ``remember`` then). ``cancel_deletion``: an account waiting to be deleted is kept."""
    device = device_for(username_key(username))
    user = users.authenticate(username, password, device=device, cancel_deletion=cancel_deletion)
    if user is None:
        return None
    if second_factors.has_any(user):
        return LoggedIn(user, known_device=device is not None, second_step=True)
    remember(user.username_key)
    return LoggedIn(user, known_device=device is not None)


def device_for(account_key: str) -> str | None:
    """This client's device id if its cookie names the account (``username_key``), else None:
    an untrusted client."""
    device = _presented()
    if device is None or not _hashes(account_key).intersection(device.accounts):
        return None
    return device.id


def _presented() -> Device | None:
    """The request's device cookie, if it is valid (signed by us, within its age, well formed)."""
    raw = request.cookies.get(COOKIE)
    if not raw:
        return None
    try:
        data: Any = _serializer().loads(raw, max_age=COOKIE_MAX_AGE)
    except BadData:
        return None
    if not isinstance(data, dict):
        return None
    device_id, accounts = data.get("d"), data.get("a")
    if not (isinstance(device_id, str) and device_id and isinstance(accounts, list)):
        return None
    return Device(device_id, tuple(a for a in accounts if isinstance(a, str)))


def remember(account_key: str) -> None:
    """Set the device cookie on this request's response: the same device (a new one if the
    client had none valid), this account first."""
    device = _presented()
    own = _hashes(account_key)
    others = [a for a in device.accounts if a not in own] if device else []
    data = {
        "d": device.id if device else secrets.token_urlsafe(16),
        "a": [_hash(account_key, _secrets()[-1]), *others][:MAX_ACCOUNTS],
    }
    value = _serializer().dumps(data)

    @after_this_request
    def set_cookie(response: Response) -> Response:
        response.set_cookie(
            COOKIE,
            value,
            max_age=COOKIE_MAX_AGE,
            secure=current_app.config["SESSION_COOKIE_SECURE"],
            httponly=True,
            samesite="Lax",
        )
        return response


def _secrets() -> list[bytes]:
    """The app's secret keys, the current one last (itsdangerous signs with the last and
    accepts any): a rotated secret (``SECRET_KEY_FALLBACKS``) keeps devices known."""
    keys = [*(current_app.config.get("SECRET_KEY_FALLBACKS") or ()), current_app.secret_key]
    return [key.encode() if isinstance(key, str) else bytes(key) for key in keys if key]


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(_secrets(), salt=SALT)


def _hash(account_key: str, secret: bytes) -> str:
    """An account as the cookie names it: only the server can tell which it is."""
    digest = hmac.new(secret, f"{SALT}:{account_key}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()


def _hashes(account_key: str) -> set[str]:
    """Every name the account may have in a cookie (one per secret key)."""
    return {_hash(account_key, secret) for secret in _secrets()}
