"""CSRF protection (Flask-WTF) on every unsafe request; exempt views are marked where defined.

Flask-WTF's own hook resolves the endpoint and its exemptions before it looks at the method, on
every request; this one asks the cheap question first, so GET requests pay nothing. Flask-WTF's
hook, which then only returns (``WTF_CSRF_CHECK_DEFAULT`` is off), is taken out.
"""

from __future__ import annotations

from flask import Flask, current_app, request

from ..extensions import csrf

# Never state-changing (RFC 9110, 9.2.1), whatever WTF_CSRF_METHODS says.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


def _protect_unsafe_request() -> None:
    method = request.method
    if method in SAFE_METHODS:
        return
    config = current_app.config
    if method in config["WTF_CSRF_METHODS"] and config["WTF_CSRF_ENABLED"]:
        csrf.protect(apply_exemptions=True)


def init_app(app: Flask) -> None:
    app.config["WTF_CSRF_CHECK_DEFAULT"] = False  # replaced by the hook below
    hooks = app.before_request_funcs.setdefault(None, [])
    known = list(hooks)
    csrf.init_app(app)
    hooks[:] = [hook for hook in hooks if hook in known]  # Flask-WTF's own, a no-op here
    app.before_request(_protect_unsafe_request)
