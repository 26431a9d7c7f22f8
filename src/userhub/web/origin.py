"""The current request's origin as the services record it (``services/origin.py``): the
client's address (after the trusted proxies, ``proxies.py``), its browser in a few words, and
the session or token it came with. Worked out only when a service records something."""

from __future__ import annotations

from flask import Flask, g, has_request_context, request

from ..models import stored_id
from ..services import origin
from ..services.user_agents import summarise


def current() -> origin.Origin:
    if not has_request_context():
        return origin.NOWHERE
    session = g.get("browser_session")
    token = g.get("api_token")
    return origin.Origin(
        ip=request.remote_addr,
        user_agent=summarise(request.headers.get("User-Agent", "")),
        session_id=session.id if session is not None else None,  # ids kept, not a row
        # Not ``token.id``: the request may just have deleted the row (a new password revokes
        # every token, and an expired row cannot be read again).
        api_key_id=stored_id(token),
    )


def init_app(app: Flask) -> None:
    origin.provide(current)
