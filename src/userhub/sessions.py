"""Browser sessions with Flask-Login; a session is valid while its user's session version is."""

from __future__ import annotations

from flask import Flask

from .extensions import login_manager
from .models import User
from .users import load_session_user


def init_app(app: Flask) -> None:
    login_manager.init_app(app)
    login_manager.login_view = "tutorial.login"
    login_manager.login_message = "Please log in to see this page."
    login_manager.login_message_category = "info"
    login_manager.session_protection = "basic"


@login_manager.user_loader
def _load_user(session_id: str) -> User | None:
    return load_session_user(session_id)
