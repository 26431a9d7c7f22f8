"""CSRF protection (Flask-WTF) on every unsafe request; exempt views are marked where defined.

Flask-WTF's own hook resolves the endpoint and its exemptions before it looks at the method, on
every request; this one asks the cheap question first, so GET requests pay nothing.
"""

from __future__ import annotations

from flask import Flask, current_app, request

from ..extensions import csrf


def _protect_unsafe_request() -> None:
    config = current_app.config
    if request.method in config["WTF_CSRF_METHODS"] and config["WTF_CSRF_ENABLED"]:
        csrf.protect(apply_exemptions=True)


def init_app(app: Flask) -> None:
    app.config["WTF_CSRF_CHECK_DEFAULT"] = False  # replaced by the hook below
    csrf.init_app(app)
    app.before_request(_protect_unsafe_request)
