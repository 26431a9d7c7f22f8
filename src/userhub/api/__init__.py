"""``/api/v1``: the JSON API for front ends and other services (前后端分离).

Every view is a thin layer over the same services as the tutorial's routes and the pages.
Errors are problem+json (``web/errors.py``); the OpenAPI document is generated from these views.
"""

from __future__ import annotations

import re
from typing import Any

from apiflask import APIFlask
from flask import Response, request
from flask_cors import CORS

from ..extensions import csrf
from . import (
    account_export,
    api_keys,
    email,
    events,
    health,
    openapi,
    passkeys,
    second_factors,
    sessions,
    tokens,
    totp,
    users,
)

BLUEPRINTS = (
    users.bp,
    account_export.bp,
    tokens.bp,
    second_factors.bp,
    totp.bp,
    passkeys.bp,
    api_keys.bp,
    sessions.bp,
    events.bp,
    email.bp,
    health.bp,
)


def exact_origin(origin: str) -> re.Pattern[str]:
    return re.compile(re.escape(origin) + r"\Z", re.IGNORECASE)


def init_app(app: APIFlask) -> None:
    for blueprint in BLUEPRINTS:
        csrf.exempt(blueprint)  # token calls need none; session writes are checked in auth.py
        app.register_blueprint(blueprint)
    origins = app.config["USERHUB_CORS_ORIGINS"]
    if origins:
        CORS(
            app,
            # Exact, case-insensitive matches: Flask-CORS would read an origin with "[" (IPv6)
            # as a regular expression of its own, which never matches the browser's origin.
            resources={r"/api/*": {"origins": [exact_origin(origin) for origin in origins]}},
            allow_headers=["Authorization", "Content-Type", "X-CSRFToken", "Idempotency-Key"],
            expose_headers=["Location", "Retry-After", "WWW-Authenticate"],
            max_age=600,
        )
        only_under_api(app)
    openapi.init_app(app)


def only_under_api(app: APIFlask) -> None:
    """Flask-CORS's hook (the one it just added) run only where its resource can match.

    It decodes the path and matches it against ``/api/*`` after every response of the site, ~6 µs
    a request; the pages and the tutorial are never under ``/api/``. It matches the path decoded
    once more (``unquote``), so a path with a ``%`` still goes to it to decide."""
    hooks = app.after_request_funcs[None]
    cors: Any = hooks.pop()

    def cors_under_api(response: Response) -> Response:
        path = request.path
        if path.startswith("/api/") or "%" in path:
            answered: Response = cors(response)
            return answered
        return response

    hooks.append(cors_under_api)
