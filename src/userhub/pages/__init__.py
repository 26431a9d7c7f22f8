"""The HTML pages: the tutorial's routes, accounts in the browser (their e-mail address, their
sessions, security log and API keys, the download of its data), mailed links, the problem types,
the admin pages."""

from __future__ import annotations

from flask import Flask

from . import (
    account_deletion,
    account_email,
    account_export,
    account_security,
    admin,
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
    account_export.bp,
    account_deletion.bp,
    passkeys.bp,
    two_factor.bp,
    admin.bp,
    email.bp,
    problems.bp,
)


def init_app(app: Flask) -> None:
    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)
