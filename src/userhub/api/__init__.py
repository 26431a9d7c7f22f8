"""``/api/v1``: the JSON API for front ends and other services (前后端分离).

Every view is a thin layer over the same services as the tutorial's routes and the pages.
Errors are problem+json (``errors.py``); the OpenAPI document is generated from these views.
"""

from __future__ import annotations

from apiflask import APIFlask
from flask_cors import CORS

from ..extensions import csrf
from . import health, tokens, users

BLUEPRINTS = (users.bp, tokens.bp, health.bp)


def init_app(app: APIFlask) -> None:
    for blueprint in BLUEPRINTS:
        csrf.exempt(blueprint)  # token calls need none; session writes are checked in auth.py
        app.register_blueprint(blueprint)
    origins = app.config["USERHUB_CORS_ORIGINS"]
    if origins:
        CORS(
            app,
            resources={r"/api/*": {"origins": list(origins)}},
            allow_headers=["Authorization", "Content-Type", "X-CSRFToken", "Idempotency-Key"],
            expose_headers=["Location", "Retry-After", "WWW-Authenticate"],
            max_age=600,
        )
