"""The asynchronous front of ``userhub serve``: a request is received whole before a thread runs it.

A WSGI server hands a request to one of its few threads as soon as the headers are in, and the
app reads the body from that thread. A client that sends its headers and then the body one byte
every few seconds holds the thread all that time: eight such clients stopped a 2-worker,
4-thread server (issue 16). Here the body is received on the worker's event loop, where a
waiting client costs a few kilobytes and no thread, within ``USERHUB_RECEIVE_TIMEOUT`` seconds;
only a complete request goes to the app's threads (``USERHUB_THREADS`` per worker). A body not
received in time is answered 408 by the app itself (``web/request_limits.py``), in the route's
format, and the connection is closed. Slow *headers* are bounded by the server (granian's
header read timeout, set to the same number of seconds).

Two protocols, one path: ``RsgiFront`` for granian (its native RSGI interface, the default
server) and ``AsgiFront`` for gunicorn's ``asgi`` worker or any ASGI server. Both build the same
WSGI environ (PEP 3333) and run the Flask app unchanged; the app never knows.

What it costs (docs/performance.md): the hop from the event loop to a thread and back, measured
at about 40 µs of CPU a request on the lightest tutorial route. Responses are collected whole in
the thread before they are sent (userhub's answers are small; a streamed response would need a
streaming path here).
"""

from __future__ import annotations

import asyncio
import collections
import io
import logging
import sys
import threading
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from ..web.request_limits import RECEIVE_TIMED_OUT  # the app answers 408 when it sees it

log = logging.getLogger("userhub")

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
Headers = list[tuple[str, str]]


@dataclass
class Answer:
    """What the app answered, collected in its thread, for the event loop to send."""

    status: int
    headers: Headers
    body: bytes


@dataclass
class Incoming:
    """A request as the server described it, before it becomes a WSGI environ."""

    method: str
    path: str  # percent-decoded, as both RSGI and ASGI give it
    query_string: str
    headers: Iterable[tuple[str, str]]  # lower-case names, repeated names repeated
    scheme: str
    http_version: str
    client: tuple[str, str]
    server: tuple[str, str]


def split_address(address: str) -> tuple[str, str]:
    """``"[::1]:5000"`` or ``"127.0.0.1:5000"`` → (host, port)."""
    host, _, port = address.rpartition(":")
    return host.strip("[]"), port


def environ_for(request: Incoming, body: bytes, *, timed_out: bool = False) -> dict[str, Any]:
    """The PEP 3333 environ of a request whose body has been received (``body``)."""
    environ: dict[str, Any] = {
        "REQUEST_METHOD": request.method,
        "SCRIPT_NAME": "",
        # WSGI strings are latin-1 code points of the raw bytes.
        "PATH_INFO": request.path.encode("utf-8").decode("latin-1"),
        "QUERY_STRING": request.query_string,
        "SERVER_NAME": request.server[0],
        "SERVER_PORT": request.server[1],
        "SERVER_PROTOCOL": "HTTP/" + request.http_version,
        "REMOTE_ADDR": request.client[0],
        "REMOTE_PORT": request.client[1],
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": request.scheme,
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    for name, value in request.headers:
        key = name.upper().replace("-", "_")
        if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            key = "HTTP_" + key
        if key in environ:  # a repeated header: one value, as RFC 9110 5.3 joins them
            environ[key] += ("; " if key == "HTTP_COOKIE" else ", ") + value
        else:
            environ[key] = value
    if "HTTP_TRANSFER_ENCODING" in environ:
        # The chunks are already joined: the app sees a body of known length.
        del environ["HTTP_TRANSFER_ENCODING"]
        environ["CONTENT_LENGTH"] = str(len(body))
    if timed_out:
        environ[RECEIVE_TIMED_OUT] = True
    return environ


def body_expected(headers: Iterable[tuple[str, str]]) -> tuple[bool, int | None]:
    """Whether a body follows the headers, and its declared length (None when chunked)."""
    length = None
    chunked = False
    for name, value in headers:
        if name == "content-length":
            length = int(value) if value.strip().isdigit() else None
        elif name == "transfer-encoding":
            chunked = True
    if chunked:
        return True, None
    return bool(length), length


class Front:
    """The protocol-independent half: receive with a deadline, then run the app in a thread."""

    def __init__(self, app: Any, *, threads: int, receive_timeout: float) -> None:
        self.app: WsgiApp = app
        self.body_limit: int = app.config["MAX_CONTENT_LENGTH"]
        self.receive_timeout = receive_timeout
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="userhub-request")
        self._loop: asyncio.AbstractEventLoop | None = None
        # Answers finished in threads, handed to the loop in batches: one wake-up of the loop
        # serves every answer that finished meanwhile (a wake-up per answer cost ~20 µs each).
        self._finished: collections.deque[tuple[asyncio.Future[Answer], Answer]] = (
            collections.deque()
        )
        self._lock = threading.Lock()
        self._wake_scheduled = False

    async def receive(
        self, chunks: Callable[[], Awaitable[bytes | None]], declared: int | None
    ) -> tuple[bytes, bool]:
        """The body, read with ``chunks()`` (None at the end) within the deadline; and whether
        the deadline passed. A body over the limit is not read past it: the app refuses it
        (413) by its length."""
        if declared is not None and declared > self.body_limit:
            return b"", False  # the declared length alone is refused by the app
        parts: list[bytes] = []
        size = 0

        async def read_all() -> None:
            nonlocal size
            while (chunk := await chunks()) is not None:
                parts.append(chunk)
                size += len(chunk)
                if size > self.body_limit:
                    return

        try:
            await asyncio.wait_for(read_all(), self.receive_timeout)
        except TimeoutError:
            return b"", True
        return b"".join(parts), False

    async def run(
        self, environ: dict[str, Any], send: Callable[[Answer], None] | None = None
    ) -> Answer:
        """The app's answer to ``environ``, computed in one of the app's threads; ``send``, if
        given, sends it from that thread (the loop then only learns that it is done)."""
        loop = self._loop or asyncio.get_running_loop()
        self._loop = loop
        waiter: asyncio.Future[Answer] = loop.create_future()
        self.pool.submit(self._call_app, environ, waiter, send)
        return await waiter

    def _call_app(
        self,
        environ: dict[str, Any],
        waiter: asyncio.Future[Answer],
        send: Callable[[Answer], None] | None,
    ) -> None:
        try:
            answer = call_wsgi(self.app, environ)
        except BaseException:  # the app handles its own errors; this is a last resort
            log.exception("request failed outside the app's error handling")
            answer = Answer(500, [("content-type", "text/plain")], b"Internal Server Error")
        if send is not None:
            send(answer)
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
        while finished:
            waiter, answer = finished.popleft()
            if not waiter.done():
                waiter.set_result(answer)

    def close(self) -> None:
        """Let the requests in the threads finish (the server drains connections first)."""
        self.pool.shutdown(wait=True)


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


class RsgiFront(Front):
    """granian's RSGI interface (``userhub serve``'s default)."""

    def __rsgi_init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def __rsgi_del__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.close()

    async def __rsgi__(self, scope: Any, protocol: Any) -> None:
        if scope.proto != "http":
            protocol.close(1008)  # no WebSockets here
            return
        # (granian leaves out a header whose value is not visible ASCII, as HTTP asks.)
        headers = scope.headers.items()
        request = Incoming(
            method=scope.method,
            path=scope.path,
            query_string=scope.query_string,
            headers=headers,
            scheme=scope.scheme,
            http_version=scope.http_version,
            client=split_address(scope.client),
            server=split_address(scope.server),
        )
        body, timed_out = b"", False
        has_body, declared = body_expected(headers)
        if has_body:
            stream = protocol.__aiter__()

            async def next_chunk() -> bytes | None:
                # (not anext(stream, None): CPython 3.11 crashes on granian's iterator with it)
                try:
                    return bytes(await stream.__anext__())
                except StopAsyncIteration:
                    return None

            try:
                body, timed_out = await self.receive(next_chunk, declared)
            except Exception:  # the client went away while sending: nobody to answer
                return

        def send(answer: Answer) -> None:  # from the app's thread: granian's call is safe
            headers = answer.headers
            if timed_out:
                headers = [*headers, ("connection", "close")]
            protocol.response_bytes(answer.status, headers, answer.body)

        await self.run(environ_for(request, body, timed_out=timed_out), send)


class AsgiFront(Front):
    """The ASGI interface: gunicorn's ``asgi`` worker (``userhub serve --server gunicorn``)."""

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        headers = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope["headers"]]
        server = scope.get("server") or ("", 0)
        client = scope.get("client") or ("", 0)
        request = Incoming(
            method=scope["method"],
            path=scope["path"],
            query_string=scope["query_string"].decode("latin-1"),
            headers=headers,
            scheme=scope.get("scheme", "http"),
            http_version=scope.get("http_version", "1.1"),
            client=(str(client[0]), str(client[1])),
            server=(str(server[0]), str(server[1])),
        )
        body, timed_out = b"", False
        has_body, declared = body_expected(headers)
        if has_body:
            more = True

            async def next_chunk() -> bytes | None:
                nonlocal more
                while more:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        raise ConnectionError("client disconnected")
                    more = message.get("more_body", False)
                    if chunk := message.get("body", b""):
                        return bytes(chunk)
                return None

            try:
                body, timed_out = await self.receive(next_chunk, declared)
            except ConnectionError:
                return
        answer = await self.run(environ_for(request, body, timed_out=timed_out))
        headers_out = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in answer.headers]
        if timed_out:
            headers_out.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": answer.status, "headers": headers_out})
        await send({"type": "http.response.body", "body": answer.body})

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await asyncio.get_running_loop().run_in_executor(None, self.close)
                await send({"type": "lifespan.shutdown.complete"})
                return


def _settings() -> tuple[Any, int, float]:
    from .. import create_app

    app = create_app()
    return app, app.config["USERHUB_THREADS"], app.config["USERHUB_RECEIVE_TIMEOUT"]


def rsgi_app() -> RsgiFront:
    """granian's factory (``userhub.cli.front:rsgi_app``): one per worker, after the fork."""
    app, threads, timeout = _settings()
    return RsgiFront(app, threads=threads, receive_timeout=timeout)


def asgi_app() -> AsgiFront:
    """The ASGI factory, for gunicorn's ``asgi`` worker and other ASGI servers."""
    app, threads, timeout = _settings()
    return AsgiFront(app, threads=threads, receive_timeout=timeout)
