"""Health, for load balancers, monitors and orchestrators.

- ``/api/v1/health``: this instance and its database work (the first check, kept as it was);
- ``/api/v1/health/live``: the process answers (a liveness probe: restart it if not). It touches
  nothing else, so a database outage never makes an orchestrator restart healthy processes;
- ``/api/v1/health/ready``: send it requests? (a readiness probe: ``services/readiness.py``).
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from ..extensions import db
from ..services.readiness import readiness
from .base import api_blueprint
from .schemas import Health, Liveness, Readiness

bp = api_blueprint(
    "api_health",
    tag={"name": "Health", "description": "For load balancers, monitors and orchestrators."},
)
log = logging.getLogger("userhub")

UNAVAILABLE = {"status": "unavailable", "database": "unreachable"}
NOT_READY = {
    "status": "unavailable",
    "database": "ok",
    "migrations": "behind",
    "rate_limit_storage": "ok",
}


def unavailable(schema: str, example: dict[str, str], why: str) -> Any:
    """The 503 answer's documentation: the same shape as the 200."""
    return {
        503: {
            "description": f"{why} (same shape as 200)",
            "content": {
                "application/json": {
                    "schema": {"$ref": f"#/components/schemas/{schema}"},
                    "example": example,
                }
            },
        }
    }


@bp.get("/health")
@bp.output(Health, description="The instance and its database work")
@bp.doc(
    summary="Health check",
    responses=unavailable("Health", UNAVAILABLE, "The database cannot be reached"),
)
def health() -> tuple[dict[str, str], int]:
    """200 when a query round-trips to the database, 503 (same shape) when it does not."""
    try:
        db.session.execute(text("SELECT 1"))
    except DBAPIError as exc:
        db.session.rollback()
        log.warning("health check: database unreachable (%s)", type(exc.orig).__name__)
        return UNAVAILABLE, 503
    return {"status": "ok", "database": "ok"}, 200


@bp.get("/health/live")
@bp.output(Liveness, description="The process answers")
@bp.doc(summary="Liveness probe")
def live() -> dict[str, str]:
    """200 whenever the process can run a view; nothing else is asked."""
    return {"status": "ok"}


@bp.get("/health/ready")
@bp.output(Readiness, description="Every check allows serving")
@bp.doc(
    summary="Readiness probe",
    responses=unavailable(
        "Readiness",
        NOT_READY,
        "A check fails: the database, its schema, or the rate-limit storage",
    ),
)
def ready() -> tuple[dict[str, str], int]:
    """200 when the database answers with this code's schema (or newer) and the rate-limit
    storage answers; 503, same shape, naming what fails."""
    checks = readiness()
    return checks, 200 if checks["status"] == "ok" else 503
