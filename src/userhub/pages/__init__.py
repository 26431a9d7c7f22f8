"""The HTML pages: the tutorial's routes, accounts in the browser, the problem types."""

from __future__ import annotations

from flask import Flask

from . import auth, email, problems, tutorial

BLUEPRINTS = (tutorial.bp, auth.bp, email.bp, problems.bp)


def init_app(app: Flask) -> None:
    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)
