"""Logging: one JSON line per event on stderr, and one line per request.

The request line comes from a small WSGI middleware around the app (not from the server's
access log, which ``userhub serve`` leaves off), so every server logs the same way and the line
can carry what only the app knows: the user and the request id. The id is the client's
``X-Request-ID`` when it is a sane token, otherwise a new one; it is echoed back in the
response, so a user reporting a problem can quote it. Query strings are never logged (only the
path), and neither are bodies or headers, so no password or token reaches the log.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import orjson
from flask import Flask, request

log = logging.getLogger("userhub")
access_log = logging.getLogger("userhub.access")

REQUEST_ID_HEADER = "X-Request-ID"
REQUEST_ID_KEY = "userhub.request_id"
USER_ID_KEY = "userhub.user_id"
CLIENT_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
# What a LogRecord always has; anything else was passed with ``extra=`` and is logged as a field.
RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
}

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class JsonFormatter(logging.Formatter):
    """``{"time", "level", "logger", "message", ...extra fields, "exception"}`` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = record.__dict__
        for key in fields.keys() - RECORD_ATTRIBUTES:
            entry[key] = fields[key]
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


class AccessLog:
    """WSGI middleware: a request id for every request, and one log line when it is answered."""

    def __init__(self, app: WSGIApp) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        started = time.perf_counter()
        client_id = environ.get("HTTP_X_REQUEST_ID", "")
        request_id = client_id if CLIENT_REQUEST_ID.fullmatch(client_id) else secrets.token_hex(8)
        environ[REQUEST_ID_KEY] = request_id
        status = "500"

        def start_with_id(status_line: str, headers: list[tuple[str, str]], *exc: Any) -> Any:
            nonlocal status
            status = status_line[:3]
            headers.append((REQUEST_ID_HEADER, request_id))
            return start_response(status_line, headers, *exc)

        try:
            return self.app(environ, start_with_id)
        finally:
            if access_log.isEnabledFor(logging.INFO):
                fields = {
                    "method": environ.get("REQUEST_METHOD"),
                    "path": environ.get("PATH_INFO"),
                    "status": int(status),
                    "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                    "user_id": environ.get(USER_ID_KEY),
                    "request_id": request_id,
                }
                # makeRecord + handle is what .info() does, minus the search of the call stack
                # for a source line that this log line does not show.
                record = access_log.makeRecord(
                    access_log.name, logging.INFO, "", 0, "request", (), None, extra=fields
                )
                access_log.handle(record)


def note_user(user_id: int) -> None:
    """Record who made this request, for its log line."""
    request.environ[USER_ID_KEY] = user_id


def request_id() -> str | None:
    """This request's id (as logged and sent back in ``X-Request-ID``)."""
    value: str | None = request.environ.get(REQUEST_ID_KEY)
    return value


def register_logging(app: Flask) -> None:
    # The JSON lines carry neither thread nor process names; not collecting them saves a few
    # microseconds per line (the logging HOWTO's "Optimization" section).
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    level = logging.getLevelName(str(app.config["USERHUB_LOG_LEVEL"]).upper())
    log.setLevel(level if isinstance(level, int) else logging.INFO)
    if not log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(JsonFormatter())
        log.addHandler(handler)
    app.wsgi_app = AccessLog(app.wsgi_app)  # type: ignore[method-assign]
