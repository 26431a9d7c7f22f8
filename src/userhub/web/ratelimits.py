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
  cookie of ``web/devices.py``; and on downloads of an account's data,
  ``USERHUB_RATELIMIT_EXPORT`` (``count_export``: the API's and the page's share one count,
  keyed by the account's id, whatever the address they come from).

Only the routes that carry a limit pay for it. Flask-Limiter's own hooks run on every request
of the app (before it: resolve the route's limits, which costs a third of a ``/response_json``;
after it and at teardown: headers and deductions for the limits it checked); its route limits
are checked by the decorated view itself. So its hooks are replaced by gated ones
(``gate_limiter_hooks``): the check before the request runs only while the limiter has limits
that apply there (default, application, blueprint or meta limits, or an in-memory fallback;
userhub has none), and the one after it only for a request the limiter looked at. Its teardown
hook, which only clears the request's state, is dropped: that state lives on the request
context, which ends with the request.

Over a limit, the client gets 429 with ``Retry-After`` (problem+json on JSON routes, the page
otherwise). If the storage cannot be reached, limits are not enforced and a warning is logged:
an outage of Redis (or an unwritable limits file) must not lock every user out.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from flask import Flask, current_app, g
from flask.globals import request_ctx
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_limiter import RateLimitExceeded

from .. import limit_storage  # noqa: F401 (defining its storage registers the sqlite:// scheme)
from ..extensions import limiter
from ..metrics import LOGIN_LIMITED
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


LOGIN_SCOPE = "log-in"  # the per-IP count of log-ins and passwords asked for again
login_limit = limiter.shared_limit(
    _configured("USERHUB_RATELIMIT_LOGIN"), scope=LOGIN_SCOPE, methods=["POST"]
)
register_limit = limiter.shared_limit(
    _configured("USERHUB_RATELIMIT_REGISTER"), scope="register", methods=["POST"]
)
# Requests that mail a link (reset, a new verification link), per client IP.
mail_limit = limiter.shared_limit(
    _configured("USERHUB_RATELIMIT_MAIL"), scope="mail", methods=["POST"]
)
# The same "log-in" count, for any method: a view spends from it only when it checks a password.
_password_check_limit = limiter.shared_limit(
    _configured("USERHUB_RATELIMIT_LOGIN"), scope=LOGIN_SCOPE
)


def count_password_check() -> None:
    """Count an attempt against this client's per-IP log-in limit from inside a view, for a
    request that checks a password only sometimes (a PATCH that sets a new one): Flask-Limiter's
    limits are also context managers. Over the limit, RateLimitExceeded (a 429, below)."""
    with _password_check_limit:
        pass


EXPORT_SCOPE = "export"
# The per-account limits' own words (``%(seconds)d``: the wait); the per-IP ones share one.
LIMIT_WORDS = {
    EXPORT_SCOPE: _l(
        "You have downloaded your data too often. Try again in %(seconds)d seconds.",
    ),
}
ACCOUNT_OF_REQUEST = "_userhub_limited_account"


def _account_key() -> str:
    """The key of a per-account limit: the id ``count_export`` put on the request."""
    return f"account-{g.get(ACCOUNT_OF_REQUEST)}"


_export_limit = limiter.shared_limit(
    _configured("USERHUB_RATELIMIT_EXPORT"), scope=EXPORT_SCOPE, key_func=_account_key
)


def count_export(user_id: int) -> None:
    """Count a download of ``user_id``'s data against the account's budget (the API's and the
    page's together). Over it, RateLimitExceeded (a 429, below)."""
    setattr(g, ACCOUNT_OF_REQUEST, user_id)
    with _export_limit:
        pass


def handle_rate_limit(error: RateLimitExceeded) -> Any:
    """A limit was hit: 429 in the route's format, with ``Retry-After``."""
    if error.limit.scope == LOGIN_SCOPE:  # the per-account limit is counted by the service
        LOGIN_LIMITED.inc()
    current = limiter.current_limit
    retry_after = seconds_until(current.reset_at) if current else 60
    error.retry_after = retry_after  # werkzeug's TooManyRequests turns this into the header
    words = LIMIT_WORDS.get(str(error.limit.scope))
    if words is not None:
        error.description = str(words) % {"seconds": retry_after}
    else:
        error.description = _(
            "Too many attempts from your address. Try again in %(seconds)d seconds.",
            seconds=retry_after,
        )
    return handle_http_exception(error)


# Where Flask-Limiter keeps a request's state (its ``Limiter.context``), on the request context.
LIMITER_STATE = "_limiter_request_context"


def limits_before_every_request() -> bool:
    """Whether Flask-Limiter's check before the request has any limit to apply. Route limits
    (the decorators above) are checked when the view is called, not there."""
    manager = limiter.limit_manager
    return bool(
        manager._application_limits  # noqa: SLF001 (read only: there is no public question)
        or manager._default_limits  # noqa: SLF001
        or manager._blueprint_limits  # noqa: SLF001
        or limiter._meta_limits  # noqa: SLF001
        or limiter._in_memory_fallback  # noqa: SLF001
    )


def gate_limiter_hooks(app: Flask) -> None:
    """Replace Flask-Limiter's per-request hooks, in place, with gated ones (it installs none
    on an app built with the limits off)."""
    check = limiter._check_request_limit  # noqa: SLF001
    before = app.before_request_funcs.get(None, [])
    after = app.after_request_funcs.get(None, [])
    teardown = app.teardown_request_funcs.get(None, [])
    if check not in before:
        return
    [finish] = [f for f in after if getattr(f, "args", None) == (limiter,)]  # its partial
    [release] = [f for f in teardown if getattr(f, "__self__", None) is limiter]

    def check_limits() -> None:
        if limits_before_every_request():
            check()

    def finish_limits(response: Any) -> Any:
        return finish(response) if hasattr(request_ctx, LIMITER_STATE) else response

    before[before.index(check)] = check_limits
    after[after.index(finish)] = finish_limits
    teardown.remove(release)


def init_app(app: Flask) -> None:
    limiter.init_app(app)
    gate_limiter_hooks(app)
    app.register_error_handler(RateLimitExceeded, handle_rate_limit)
