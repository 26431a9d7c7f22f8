"""The current request's origin as the services record it (``services/origin.py``): the
client's address (after the trusted proxies, ``proxies.py``), its browser in a few words, and
the session or token it came with. Worked out only when a service records something."""

from __future__ import annotations

from typing import Any

from flask import Flask, g, has_request_context, request
from sqlalchemy import inspect

from ..services import origin
from ..services.user_agents import summarise


def _id_of(row: Any) -> int | None:
    """The id of the request's session or token row without loading it: the request may have
    ended that very session (or revoked that key), and a commit expired the row since."""
    identity = inspect(row).identity if row is not None else None
    return int(identity[0]) if identity else None


def current() -> origin.Origin:
    if not has_request_context():
        return origin.NOWHERE
    return origin.Origin(
        ip=request.remote_addr,
        user_agent=summarise(request.headers.get("User-Agent", "")),
        session_id=_id_of(g.get("browser_session")),
        api_key_id=_id_of(g.get("api_token")),
    )


def init_app(app: Flask) -> None:
    origin.provide(current)
