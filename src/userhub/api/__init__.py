"""``/api/v1``: the JSON API for front ends and other services (前后端分离).

Every view is a thin layer over the same services as the tutorial's routes and the pages.
Errors are problem+json (``web/errors.py``); the OpenAPI document is generated from these views.
"""

from __future__ import annotations

import re

from apiflask import APIFlask
from flask_cors import CORS

from ..extensions import csrf
from . import health, openapi, tokens, users

BLUEPRINTS = (users.bp, tokens.bp, health.bp)


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
    openapi.init_app(app)
