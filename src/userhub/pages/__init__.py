"""The HTML pages: the tutorial's routes, accounts in the browser (their e-mail address, their
sessions, security log and API keys), mailed links, the problem types."""

from __future__ import annotations

from flask import Flask

from . import (
    account_deletion,
    account_email,
    account_security,
    auth,
    email,
    passkeys,
    problems,
    reauthenticate,
    second_step,
    tutorial,
    two_factor,
)

BLUEPRINTS = (
    tutorial.bp,
    auth.bp,
    second_step.bp,
    reauthenticate.bp,
    account_email.bp,
    account_security.bp,
    account_deletion.bp,
    passkeys.bp,
    two_factor.bp,
    email.bp,
    problems.bp,
)


def init_app(app: Flask) -> None:
    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)
