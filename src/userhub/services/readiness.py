"""Should this instance be sent requests? What an orchestrator's readiness probe asks.

Liveness (the process answers) needs no service: a process that can run a view is alive. Ready
means every request could be served as designed:
- the database answers;
- its schema is the one this code needs (``current``), or newer (``ahead``: the code was rolled
  back, which ``userhub serve`` lets through too); ``behind`` or ``missing`` is not ready:
  ``flask --app userhub db upgrade`` has not run yet;
- the rate-limit storage answers (Redis, or the default SQLite file), unless limits are off. An
  instance that cannot count lets every request through unlimited (limits fail open, so that a
  Redis outage locks nobody out), which is exactly when guessing passwords is cheap: such an
  instance says so, and the load balancer may send its traffic elsewhere.
"""

from __future__ import annotations

import logging

from flask import current_app
from sqlalchemy.exc import DBAPIError

from ..database import schema_state
from ..extensions import db, limiter

READY_SCHEMAS = {"current", "ahead"}
log = logging.getLogger("userhub")


def readiness() -> dict[str, str]:
    """Each check's answer, and ``status``: ``ok`` when all allow serving, else
    ``unavailable``."""
    checks = {"database": "ok", "migrations": "unknown", "rate_limit_storage": "off"}
    try:
        checks["migrations"] = schema_state(db.session.connection())
    except DBAPIError as exc:
        db.session.rollback()
        log.warning("readiness: database unreachable (%s)", type(exc.orig).__name__)
        checks["database"] = "unreachable"
    if current_app.config["RATELIMIT_ENABLED"]:
        checks["rate_limit_storage"] = "ok" if limit_storage_answers() else "unreachable"
    ready = (
        checks["database"] == "ok"
        and checks["migrations"] in READY_SCHEMAS
        and checks["rate_limit_storage"] != "unreachable"
    )
    return {"status": "ok" if ready else "unavailable", **checks}


def limit_storage_answers() -> bool:
    try:
        return bool(limiter.storage.check())
    except Exception:  # noqa: BLE001 -- any storage's own error: it does not answer
        log.warning("readiness: the rate-limit storage does not answer", exc_info=True)
        return False
