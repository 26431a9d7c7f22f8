"""``/api/v1/users/me/events`` and ``/api/v1/events``: the security log (``services/
security_log.py``), for an account's owner and, filtered, for administrators."""

from __future__ import annotations

from typing import Any

from flask_babel import lazy_gettext as _l

from ..models import utc_iso
from ..services import security_log
from .auth import STAFF, caller, token_auth
from .base import api_blueprint, known_query, paginated
from .schemas import EventPage, EventQuery, PageQuery

bp = api_blueprint(
    "api_events",
    tag={
        "name": "Security log",
        "description": "What happened to an account: log-ins and failed ones, log-outs, "
        "password and address changes, API keys made and revoked, administrators' changes.",
    },
)

MY_EVENTS_HINT = _l("Administrators filter every account's events with GET /api/v1/events.")
EVENTS_HINT = _l("Filter with user_id, type and since, e.g. ?type=logged-in.")
UNKNOWN_PARAMETER = "A query parameter this operation does not take"


@bp.get("/users/me/events")
@bp.auth_required(token_auth)
@known_query(PageQuery, hint=MY_EVENTS_HINT)
@bp.input(PageQuery, location="query")
@bp.output(EventPage, description="A page of my events, the newest first")
@bp.doc(summary="My security log", responses={400: UNKNOWN_PARAMETER})
def my_events(query_data: PageQuery) -> dict[str, Any]:
    """What happened to my account, the newest first, a page at a time: when and from where
    (address, browser) it logged in or failed to, and with which session or key each change
    was made. Events are kept `USERHUB_SECURITY_LOG_RETENTION_DAYS` (a year by default)."""
    page, per_page = query_data.page, query_data.per_page
    items, total = security_log.page(page, per_page, user_id=caller().id)
    return paginated(".my_events", items, total, page, per_page)


@bp.get("/events")
@bp.auth_required(token_auth, roles=STAFF)
@known_query(EventQuery, hint=EVENTS_HINT)
@bp.input(EventQuery, location="query")
@bp.output(EventPage, description="A page of the events that match, the newest first")
@bp.doc(summary="Every account's security log (admin, support)", responses={400: UNKNOWN_PARAMETER})
def list_events(query_data: EventQuery) -> dict[str, Any]:
    """Events of every account, the newest first; only one account's with `user_id`, one type
    with `type`, and those from a time on with `since`. The links keep the filters."""
    query = query_data
    since = query.since
    items, total = security_log.page(
        query.page, query.per_page, user_id=query.user_id, kind=query.type, since=since
    )
    filters = {"user_id": query.user_id, "type": query.type, "since": since and utc_iso(since)}
    return paginated(".list_events", items, total, query.page, query.per_page, **filters)
