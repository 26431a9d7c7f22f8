"""Logging: one JSON line per event on stderr, and one line per request.

The request line comes from a small WSGI middleware around the app (not from the server's
access log, which ``userhub serve`` leaves off), so every server logs the same way and the line
can carry what only the app knows: the user and the request id. The id is the client's
``X-Request-ID`` when it is a sane token, otherwise a new one; it is echoed back in the
response, so a user reporting a problem can quote it. Query strings are never logged (only the
path), and neither are bodies or headers, so no password or token reaches the log.
"""

from __future__ import annotations

import collections
import logging
import os
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from flask import Flask, has_request_context, request

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
# Writes to a pipe up to this size are never interleaved with another process's (POSIX).
PIPE_BUF = 4096


class _Second:
    """The ISO 8601 text of the current second, made once a second rather than once a line."""

    value: tuple[int, str] = (-1, "")


def iso_time(created: float) -> str:
    """``created`` as ``datetime.isoformat(timespec="milliseconds")`` writes it, in UTC."""
    second = int(created)
    cached, text = _Second.value
    if cached != second:
        text = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        _Second.value = (second, text)
    return f"{text}.{int((created - second) * 1000):03d}+00:00"


def json_entry(created: float, level: str, logger: str, message: str, fields: Any) -> bytes:
    """``{"time", "level", "logger", "message", ...fields}`` as one line of JSON, with its
    newline."""
    entry: dict[str, Any] = {
        "time": iso_time(created),
        "level": level,
        "logger": logger,
        "message": message,
    }
    entry.update(fields)
    return orjson.dumps(entry, default=str, option=orjson.OPT_APPEND_NEWLINE)


def json_line(created: float, level: str, logger: str, message: str, fields: Any) -> str:
    """The same line as text, without its newline."""
    return json_entry(created, level, logger, message, fields)[:-1].decode()


class JsonFormatter(logging.Formatter):
    """A record as a JSON line: its ``extra=`` values become fields, and a traceback becomes
    ``exception``."""

    def format(self, record: logging.LogRecord) -> str:
        values = record.__dict__
        fields = {key: values[key] for key in values.keys() - RECORD_ATTRIBUTES}
        if record.exc_info:
            fields["exception"] = self.formatException(record.exc_info)
        return json_line(record.created, record.levelname, record.name, record.getMessage(), fields)


class RequestIdFilter(logging.Filter):
    """Adds the request id to every ``userhub`` record logged while a request is handled, so an
    error in the log can be matched with the request line and with what the client was told."""

    def filter(self, record: logging.LogRecord) -> bool:
        if has_request_context() and not hasattr(record, "request_id"):
            record.request_id = request_id()
        return True


_holding = threading.local()  # .lines: the HeldLines of the thread, if it holds its lines


class HeldLines:
    """Request lines held back in the threads of a server that answers in batches, to be
    written together, in one ``write``, just before the batch's answers are handed to the
    server (``cli/front.py``): every answered request is in the log, and a worker stopped by
    any means loses no line of an answer it gave. A thread holds its lines here once it called
    ``hold_here``; other threads write theirs at once."""

    def __init__(self) -> None:
        self.lines: collections.deque[bytes] = collections.deque()
        self.sink: JsonLines | None = None

    def hold_here(self) -> None:
        _holding.lines = self

    def write(self) -> None:
        """Write every line held so far (call it before handing their answers over)."""
        lines, sink = self.lines, self.sink
        if lines and sink is not None:
            sink.write_lines([lines.popleft() for _ in range(len(lines))])


class JsonLines(logging.StreamHandler):  # type: ignore[type-arg]
    """The ``userhub`` logger's handler: each record as one JSON line on stderr, written at once.

    A request's line is written before its answer leaves the server. Lines go straight to the
    stream's file descriptor, one ``write`` each, without the text layer's encode and flush.
    Where a server answers in batches (``userhub serve``'s front), the lines of a batch are held
    and written in one ``write`` before the batch is sent (``HeldLines``). Batching lines in a
    writer thread instead was measured faster too, but granian ends its workers without running
    Python's exit handlers or waiting for threads, so the last lines of a stopped worker were
    lost.
    """

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(JsonFormatter())

    def write_line(self, line: bytes) -> None:
        """One line (with its newline): held, in a thread that holds its lines, else written."""
        held: HeldLines | None = getattr(_holding, "lines", None)
        if held is None:
            self.write_lines((line,))
        else:
            held.sink = self
            held.lines.append(line)

    def write_lines(self, lines: Sequence[bytes]) -> None:
        """Write whole lines, in as few writes as keep each write to a pipe unbroken (lines of
        other workers on the same pipe never cut into them)."""
        try:
            fd = self.stream.fileno()
        except (AttributeError, OSError, ValueError):  # not a file (a test's capture)
            with self.lock:  # type: ignore[union-attr]
                self.stream.write(b"".join(lines).decode())
                self.stream.flush()
            return
        chunk: list[bytes] = []
        size = 0
        for line in lines:
            if chunk and size + len(line) > PIPE_BUF:
                write_all(fd, b"".join(chunk))
                chunk, size = [], 0
            chunk.append(line)
            size += len(line)
        write_all(fd, chunk[0] if len(chunk) == 1 else b"".join(chunk))


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class AccessLog:
    """WSGI middleware: a request id for every request, and one log line when it is answered.

    The line goes straight to the ``userhub`` logger's own handler while nothing else is
    configured to receive it (no handler on ``userhub.access`` or on the root logger), skipping
    the ``LogRecord`` that ``logging`` would build. Configure a handler on either logger and the
    line goes through ``logging`` as usual.
    """

    def __init__(self, app: WSGIApp, sink: JsonLines) -> None:
        self.app = app
        self.sink = sink

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        started = time.perf_counter()
        client_id = environ.get("HTTP_X_REQUEST_ID")
        request_id = (
            client_id if client_id and CLIENT_REQUEST_ID.fullmatch(client_id) else new_request_id()
        )
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
                self._write(fields)

    def _write(self, fields: dict[str, Any]) -> None:
        if access_log.handlers or logging.root.handlers or self.sink not in log.handlers:
            record = access_log.makeRecord(
                access_log.name, logging.INFO, "", 0, "request", (), None, extra=fields
            )
            access_log.handle(record)
        else:
            line = json_entry(time.time(), "INFO", access_log.name, "request", fields)
            self.sink.write_line(line)


def new_request_id() -> str:
    """64 random bits in hex. A request id must be unique, not secret, so it comes from
    ``random`` (reseeded in every forked worker) rather than ``os.urandom``, a system call that
    cost 12 µs a request on this project's machines, a sixth of a whole ``/response_json``."""
    return f"{random.getrandbits(64):016x}"  # noqa: S311


def note_user(user_id: int) -> None:
    """Record who made this request, for its log line."""
    request.environ[USER_ID_KEY] = user_id


def request_id() -> str | None:
    """This request's id (as logged and sent back in ``X-Request-ID``)."""
    value: str | None = request.environ.get(REQUEST_ID_KEY)
    return value


class NoQueryStrings(logging.Filter):
    """The development server (``flask run``, ``python app.py``) logs every request line with
    its query string, where a careless client may have put a password
    (``/test_get?user_name=x&password=...``); this cuts query strings out of those lines, as
    the app's own access line never has them."""

    QUERY = re.compile(r"\?[^\s\"]*")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "?" in message:
            record.msg, record.args = self.QUERY.sub("", message), ()
        return True


def register_logging(app: Flask) -> None:
    # The JSON lines carry no thread names; not collecting them saves a few microseconds per
    # line (the logging HOWTO's "Optimization" section). Process ids stay: gunicorn's own log
    # format uses %(process)d, and `userhub serve` builds the app in gunicorn's master.
    logging.logThreads = logging.logMultiprocessing = False
    level = logging.getLevelName(str(app.config["USERHUB_LOG_LEVEL"]).upper())
    log.setLevel(level if isinstance(level, int) else logging.INFO)
    if not any(isinstance(f, RequestIdFilter) for f in log.filters):
        log.addFilter(RequestIdFilter())
    werkzeug_log = logging.getLogger("werkzeug")
    if not any(isinstance(f, NoQueryStrings) for f in werkzeug_log.filters):
        werkzeug_log.addFilter(NoQueryStrings())
    sink = next((h for h in log.handlers if isinstance(h, JsonLines)), None)
    if sink is None:
        sink = JsonLines()
        log.addHandler(sink)
    app.wsgi_app = AccessLog(app.wsgi_app, sink)  # type: ignore[method-assign]
