"""``/api/v1/health``: is this instance able to serve? For load balancers and monitors."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from ..extensions import db
from .base import api_blueprint
from .schemas import Health

bp = api_blueprint(
    "api_health", tag={"name": "Health", "description": "For load balancers and monitors."}
)
log = logging.getLogger("userhub")

UNAVAILABLE = {"status": "unavailable", "database": "unreachable"}
RESPONSES: Any = {
    503: {
        "description": "The database cannot be reached (same shape as 200)",
        "content": {
            "application/json": {
                "schema": {"$ref": "#/components/schemas/Health"},
                "example": UNAVAILABLE,
            }
        },
    }
}


@bp.get("/health")
@bp.output(Health, description="The instance and its database work")
@bp.doc(summary="Health check", responses=RESPONSES)
def health() -> tuple[dict[str, str], int]:
    """200 when a query round-trips to the database, 503 (same shape) when it does not."""
    try:
        db.session.execute(text("SELECT 1"))
    except DBAPIError as exc:
        db.session.rollback()
        log.warning("health check: database unreachable (%s)", type(exc.orig).__name__)
        return UNAVAILABLE, 503
    return {"status": "ok", "database": "ok"}, 200
