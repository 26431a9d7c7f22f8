"""The asynchronous front of ``userhub serve``: a request is received whole before a thread runs it.

A WSGI server hands a request to one of its few threads as soon as the headers are in, and the
app reads the body from that thread. A client that sends its headers and then the body one byte
every few seconds holds the thread all that time: eight such clients stopped a 2-worker,
4-thread server. Here the body is received on the worker's event loop, where a waiting client
costs a few kilobytes and no thread, within ``USERHUB_RECEIVE_TIMEOUT`` seconds; only a complete
request goes to the app's threads (``USERHUB_THREADS`` per worker). A body not received in time
is answered 408 by the app itself (``web/request_limits.py``), in the route's format, and the
connection is closed. Slow *headers* are the server's to bound (granian's header read timeout
is set to the same number of seconds).

The front speaks ASGI, so both servers of ``userhub serve`` run it the same way: granian's ASGI
interface and gunicorn's ``asgi`` worker (any ASGI server would do). It builds the WSGI environ
(PEP 3333) from the raw request, so the Flask app runs unchanged and sees exactly what a WSGI
server would show it. (granian's own RSGI interface was measured at the same cost, but it leaves
out every header value that is not visible ASCII, where WSGI passes it on as latin-1: a cookie
set by another site on ``localhost`` with a UTF-8 value would have taken the session cookie
with it.)

What it costs (docs/performance.md): about 60 µs of CPU a request on the lightest tutorial
route, measured against the same app under granian's WSGI threads. Responses are collected
whole in the thread before they are sent (userhub's answers are small; a streamed response
would need a streaming path here).
"""

from __future__ import annotations

import asyncio
import collections
import io
import logging
import sys
import threading
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_to_bytes

from ..web import tracing
from ..web.logs import HeldLines
from ..web.request_limits import RECEIVE_TIMED_OUT  # the app answers 408 when it sees it

log = logging.getLogger("userhub")

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
Headers = list[tuple[str, str]]
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


@dataclass
class Answer:
    """What the app answered, collected in its thread, for the event loop to send."""

    status: int
    headers: Headers
    body: bytes


STOPPING = Answer(
    503,
    [("content-type", "text/plain; charset=utf-8"), ("retry-after", "1"), ("connection", "close")],
    b"The server is restarting; try again.",
)


def environ_for(scope: Scope) -> dict[str, Any]:
    """The PEP 3333 environ of an ASGI ``http`` request, before its body (``with_body``)."""
    server = scope.get("server") or ("", 0)
    client = scope.get("client") or ("", 0)
    raw_path = scope.get("raw_path")
    environ: dict[str, Any] = {
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": "",
        # WSGI strings are the latin-1 code points of the raw bytes, percent-decoded.
        "PATH_INFO": (
            unquote_to_bytes(raw_path.partition(b"?")[0]) if raw_path else scope["path"].encode()
        ).decode("latin-1"),
        "QUERY_STRING": scope["query_string"].decode("latin-1"),
        "SERVER_NAME": str(server[0]),
        "SERVER_PORT": str(server[1]),
        "SERVER_PROTOCOL": "HTTP/" + scope.get("http_version", "1.1"),
        "REMOTE_ADDR": str(client[0]),
        "REMOTE_PORT": str(client[1]),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scope.get("scheme", "http"),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    for raw_name, raw_value in scope["headers"]:
        key = raw_name.decode("latin-1").upper().replace("-", "_")
        value = raw_value.decode("latin-1")
        if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            key = "HTTP_" + key
        if key in environ:  # a repeated header: one value, as RFC 9110 5.3 joins them
            environ[key] += ("; " if key == "HTTP_COOKIE" else ", ") + value
        else:
            environ[key] = value
    return environ


def body_expected(environ: dict[str, Any]) -> tuple[bool, int | None]:
    """Whether a body follows the headers, and its declared length (None when chunked)."""
    if "HTTP_TRANSFER_ENCODING" in environ:
        return True, None
    length = environ.get("CONTENT_LENGTH", "").strip()
    declared = int(length) if length.isdigit() else None
    return bool(declared), declared


def with_body(environ: dict[str, Any], body: bytes, *, timed_out: bool = False) -> dict[str, Any]:
    """``environ`` with the body received for it (or the mark that it came too late)."""
    environ["wsgi.input"] = io.BytesIO(body)
    if "HTTP_TRANSFER_ENCODING" in environ:
        # The chunks are already joined: the app sees a body of known length.
        del environ["HTTP_TRANSFER_ENCODING"]
        environ["CONTENT_LENGTH"] = str(len(body))
    if timed_out:
        environ[RECEIVE_TIMED_OUT] = True
    return environ


class AsgiFront:
    """The ASGI app ``userhub serve`` runs: receive with a deadline, then a thread runs Flask."""

    def __init__(self, app: Any, *, threads: int, receive_timeout: float) -> None:
        self.app: WsgiApp = app
        self.body_limit: int = app.config["MAX_CONTENT_LENGTH"]
        self.receive_timeout = receive_timeout
        # The request lines of the app's threads, written once per batch of answers, before the
        # batch is handed to the server (web/logs.py).
        self.lines = HeldLines()
        # This worker's tracer provider (web/tracing.py), None unless tracing is on.
        self.tracing = tracing.provider_of(app)
        self.pool = ThreadPoolExecutor(
            threads, thread_name_prefix="userhub-request", initializer=self.lines.hold_here
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        # Answers finished in threads, handed to the loop in batches: one wake-up of the loop
        # serves every answer that finished meanwhile (a wake-up per answer cost ~20 µs each).
        self._finished: collections.deque[tuple[asyncio.Future[Answer], Answer]] = (
            collections.deque()
        )
        self._lock = threading.Lock()
        self._wake_scheduled = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return  # no WebSockets here
        environ = environ_for(scope)
        body, timed_out = b"", False
        has_body, declared = body_expected(environ)
        if has_body:
            try:
                body, timed_out = await self.receive(receive, declared)
            except ConnectionError:
                return  # the client went away while sending: nobody to answer
        answer = await self.run(with_body(environ, body, timed_out=timed_out))
        headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in answer.headers]
        if timed_out:
            headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": answer.status, "headers": headers})
        await send({"type": "http.response.body", "body": answer.body})

    async def receive(self, receive: Receive, declared: int | None) -> tuple[bytes, bool]:
        """The body, within the deadline; and whether the deadline passed. A body over the
        limit is not read past it: the app refuses it (413) by its length."""
        if declared is not None and declared > self.body_limit:
            return b"", False  # the declared length alone is refused by the app
        parts: list[bytes] = []
        size = 0

        async def read_all() -> None:
            nonlocal size
            more = True
            while more and size <= self.body_limit:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise ConnectionError("client disconnected")
                more = message.get("more_body", False)
                chunk = bytes(message.get("body", b""))
                parts.append(chunk)
                size += len(chunk)

        try:
            await asyncio.wait_for(read_all(), self.receive_timeout)
        except TimeoutError:
            return b"", True
        return b"".join(parts), False

    async def run(self, environ: dict[str, Any]) -> Answer:
        """The app's answer to ``environ``, computed in one of the app's threads."""
        loop = self._loop = self._loop or asyncio.get_running_loop()
        waiter: asyncio.Future[Answer] = loop.create_future()
        try:
            self.pool.submit(self._call_app, environ, waiter)
        except RuntimeError:  # the threads are shut down: the worker is stopping
            # A request that came in after the server's shutdown began (a client that kept its
            # connection open): it gets an answer, not an exception the server logs.
            return STOPPING
        return await waiter

    def _call_app(self, environ: dict[str, Any], waiter: asyncio.Future[Answer]) -> None:
        try:
            answer = call_wsgi(self.app, environ)
        except BaseException:  # the app handles its own errors; this is a last resort
            log.exception("request failed outside the app's error handling")
            answer = Answer(500, [("content-type", "text/plain")], b"Internal Server Error")
        self._finished.append((waiter, answer))
        with self._lock:
            if self._wake_scheduled:
                return
            self._wake_scheduled = True
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._deliver)

    def _deliver(self) -> None:
        with self._lock:
            self._wake_scheduled = False
        finished = self._finished
        batch = [finished.popleft() for _ in range(len(finished))]
        # Each answer's log line was held before the answer was queued: all are written now,
        # before any of these answers can leave.
        self.lines.write()
        for waiter, answer in batch:
            if not waiter.done():
                waiter.set_result(answer)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                # Requests in the threads finish first (the server has drained connections).
                await asyncio.get_running_loop().run_in_executor(None, self.pool.shutdown)
                self.lines.write()
                if self.tracing is not None:  # the last spans are sent before the worker ends
                    await asyncio.get_running_loop().run_in_executor(None, self.tracing.shutdown)
                await send({"type": "lifespan.shutdown.complete"})
                return


def call_wsgi(app: WsgiApp, environ: dict[str, Any]) -> Answer:
    """Run a WSGI app and collect its whole answer."""
    started: list[Any] = []

    def start_response(status: str, headers: Headers, exc_info: Any = None) -> None:
        started[:] = [status, headers]

    result = app(environ, start_response)
    try:
        body = b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    status, headers = started
    return Answer(int(status[:3]), headers, body)


def asgi_app() -> AsgiFront:
    """The factory both servers call (``userhub.cli.front:asgi_app``): one front and one Flask
    app per worker, built after the fork."""
    from .. import create_app, metrics
    from ..services import mail_sender

    metrics.forget_dead_workers()  # granian restarts a worker that died, and says nothing else
    app = create_app()
    mail_sender.start(app)  # this worker's share of the outbox, in the background
    return AsgiFront(
        app,
        threads=app.config["USERHUB_THREADS"],
        receive_timeout=app.config["USERHUB_RECEIVE_TIMEOUT"],
    )
