"""Slow clients cannot starve ``userhub serve`` (granian and gunicorn alike).

An outside scan found that eight connections sending a POST's headers and then one byte of the
body every few seconds held every thread of a 2-worker, 4-thread server: ``/api/v1/health``
timed out while they went on. The server now receives a body on its event loop, where a waiting
client holds no thread, and gives it ``USERHUB_RECEIVE_TIMEOUT`` seconds (3 here) before the app
answers 408 and the connection is closed. These tests replay the attack with 200 connections.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
import requests

from tests.live_server import ServerProcess, running_nginx, running_server
from userhub.cli.front import environ_for, with_body

RECEIVE_TIMEOUT = 3
SLOW_CLIENTS = 200  # the goal of issue 16: as many as slow headers were survived before


@pytest.fixture(scope="module", params=["granian", "gunicorn"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    workdir = tmp_path_factory.mktemp(request.param)
    url = f"sqlite:///{workdir / 'slow.sqlite3'}"
    env = {"USERHUB_RECEIVE_TIMEOUT": str(RECEIVE_TIMEOUT), "USERHUB_RATELIMIT_ENABLED": "false"}
    with running_server("production", url, workdir, server=request.param, env=env) as s:
        yield s


def open_body(base: str, length: int = 100_000, path: str = "/api/v1/users") -> socket.socket:
    """A connection that has sent a POST's headers and none of its ``length``-byte body."""
    host, port = base.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    sock.sendall(
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {length}\r\n\r\n".encode()
    )
    return sock


def read_answer(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def health_seconds(base: str) -> float:
    started = time.monotonic()
    response = requests.get(base + "/api/v1/health", timeout=5)
    assert response.status_code == 200
    return time.monotonic() - started


def test_trickling_bodies_hold_no_thread_and_end_in_408(server: ServerProcess) -> None:
    with ExitStack() as stack:
        started = time.monotonic()  # the first client's clock starts now
        clients = [stack.enter_context(open_body(server.base)) for _ in range(SLOW_CLIENTS)]
        latencies = []
        while time.monotonic() - started < RECEIVE_TIMEOUT - 1:  # the attack goes on
            for sock in clients:
                sock.send(b"x")
            latencies.append(health_seconds(server.base))
            time.sleep(0.2)
        assert len(latencies) >= 3
        assert max(latencies) < 1.0, latencies  # normal requests are answered meanwhile

        for sock in clients:
            sock.settimeout(RECEIVE_TIMEOUT + 10)
        answers = [read_answer(sock) for sock in clients]  # and the server closes each one
    assert time.monotonic() - started < RECEIVE_TIMEOUT + 10
    for answer in answers:
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408 "), head
        assert b"content-type: application/problem+json" in head.lower()
        problem = json.loads(body)
        assert problem["type"] == "/problems/request-timeout"
        assert "did not arrive in time" in problem["detail"]
    assert health_seconds(server.base) < 1.0


def test_a_stalled_body_is_dropped_after_the_timeout(server: ServerProcess) -> None:
    with open_body(server.base, path="/test_post") as sock:
        sock.sendall(b"user_name=zhang")  # then nothing more
        sock.settimeout(RECEIVE_TIMEOUT + 10)
        started = time.monotonic()
        answer = read_answer(sock)
        waited = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert b"content-type: text/html" in answer.lower()  # a page route answers with a page
    assert RECEIVE_TIMEOUT - 0.5 < waited < RECEIVE_TIMEOUT + 5


def open_headers(base: str) -> socket.socket:
    """A connection that has sent part of a request's headers, and stops there."""
    host, port = base.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=RECEIVE_TIMEOUT + 30)
    sock.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    return sock


def test_slow_headers_hold_no_thread(server: ServerProcess) -> None:
    with ExitStack() as stack:
        for _ in range(SLOW_CLIENTS):
            stack.enter_context(open_headers(server.base))
        assert max(health_seconds(server.base) for _ in range(5)) < 1.0


def test_slow_headers_are_closed_after_the_timeout(
    server: ServerProcess, request: pytest.FixtureRequest
) -> None:
    """granian closes them; gunicorn's asgi worker has no such deadline (they hold no thread
    there either: the test above), which docs/production.md says."""
    with open_headers(server.base) as sock:
        started = time.monotonic()
        if request.node.callspec.params["server"] == "granian":
            read_answer(sock)
            assert time.monotonic() - started < RECEIVE_TIMEOUT + 30
        else:
            sock.settimeout(RECEIVE_TIMEOUT + 1)
            with pytest.raises(TimeoutError):
                read_answer(sock)


def test_a_body_sent_in_time_is_served_whole(server: ServerProcess) -> None:
    """A chunked body (no Content-Length) and one sent in pieces are received and stored."""

    def pieces() -> Iterator[bytes]:
        body = json.dumps({"username": "张三-chunked", "password": "a-long-password"}).encode()
        for i in range(0, len(body), 7):
            yield body[i : i + 7]

    created = requests.post(
        server.base + "/api/v1/users",
        data=pieces(),  # requests sends a generator chunked
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert created.status_code == 201, created.text
    assert created.json()["username"] == "张三-chunked"
    token = requests.post(
        server.base + "/api/v1/tokens",
        json={"username": "张三-chunked", "password": "a-long-password"},
        timeout=10,
    )
    assert token.status_code == 201


def test_a_body_over_the_limit_is_refused_without_being_received(server: ServerProcess) -> None:
    declared = open_body(server.base, length=50 * 1024 * 1024)
    with declared:
        declared.settimeout(10)
        head = read_answer(declared).partition(b"\r\n\r\n")[0]
    assert head.startswith(b"HTTP/1.1 413 ")

    def endless() -> Iterator[bytes]:
        for _ in range(2 * 1024):
            yield b" " * 1024  # 2 MiB, chunked: over the 1 MiB limit

    with pytest.raises(requests.ConnectionError):
        # The server answers 413 and closes while the body is still being sent...
        refused = requests.post(
            server.base + "/api/v1/users",
            data=endless(),
            headers={"Content-Type": "application/json"},
            timeout=10,
        )
        # ...or, when the whole body got out first, the answer is the 413 itself.
        assert refused.status_code == 413
        raise requests.ConnectionError("answered 413")


def test_unicode_paths_queries_and_repeated_headers_reach_the_app(server: ServerProcess) -> None:
    response = requests.get(server.base + "/test_get", params={"user_name": "张三"}, timeout=10)
    assert response.text == "Hello,张三"
    static = requests.get(server.base + "/static/hello-flask.gif", timeout=10)
    assert static.status_code == 200
    assert static.content.startswith(b"GIF8")
    assert int(static.headers["Content-Length"]) == len(static.content)


def test_behind_the_shipped_nginx_slow_clients_reach_only_nginx(
    server: ServerProcess, tmp_path: Path
) -> None:
    """deploy/nginx.conf.template receives each body before it opens a request to userhub
    (``proxy_request_buffering on``): the same attack holds only nginx's connections."""
    upstream = int(server.base.rsplit(":", 1)[1])
    with running_nginx(tmp_path, upstream) as port, ExitStack() as stack:
        base = f"http://127.0.0.1:{port}"
        clients = [stack.enter_context(open_body(base)) for _ in range(SLOW_CLIENTS)]
        latencies = []
        for _ in range(5):
            for sock in clients:
                sock.send(b"x")
            latencies.append(health_seconds(base))
            time.sleep(0.2)
        assert max(latencies) < 1.0, latencies


def test_the_environ_follows_pep_3333() -> None:
    """What the front hands the app, for what the live tests cannot easily show."""
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/test_get/张三",
        "raw_path": b"/test_get/%E5%BC%A0%FF",
        "query_string": b"user_name=%E5%BC%A0",
        "headers": [
            (b"cookie", b"a=1"),
            (b"cookie", "b=张三".encode()),  # raw UTF-8, as a page's script may set it
            (b"accept", b"text/html"),
            (b"accept", b"application/json"),
            (b"transfer-encoding", b"chunked"),
            (b"content-type", b"application/json"),
        ],
        "scheme": "https",
        "http_version": "1.1",
        "client": ("::1", 50123),
        "server": ("127.0.0.1", 5000),
    }
    environ = with_body(environ_for(scope), b'{"a": 1}')
    # Percent-decoded bytes as latin-1, an invalid UTF-8 byte included, as a WSGI server has it.
    assert environ["PATH_INFO"].encode("latin-1") == "/test_get/张".encode() + b"\xff"
    assert environ["QUERY_STRING"] == "user_name=%E5%BC%A0"
    assert environ["HTTP_COOKIE"].encode("latin-1") == "a=1; b=张三".encode()
    assert environ["HTTP_ACCEPT"] == "text/html, application/json"
    assert environ["CONTENT_TYPE"] == "application/json"
    assert environ["CONTENT_LENGTH"] == "8"  # the chunks, joined
    assert "HTTP_TRANSFER_ENCODING" not in environ
    assert (environ["REMOTE_ADDR"], environ["REMOTE_PORT"]) == ("::1", "50123")
    assert environ["wsgi.url_scheme"] == "https"
    assert environ["wsgi.input"].read() == b'{"a": 1}'


def test_a_header_that_is_not_ascii_reaches_the_app(server: ServerProcess) -> None:
    """A malformed Idempotency-Key (bytes outside ASCII) is refused by the app, as under any
    WSGI server; it must not vanish on the way and let the request through unkeyed."""
    host, port = server.base.removeprefix("http://").split(":")
    body = b'{"username": "nobody-here", "password": "a-long-password"}'
    answer = b""
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            b"POST /api/v1/tokens HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
            b"Content-Type: application/json\r\nIdempotency-Key: key-\xe5\xbc\xa0\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )
        answer = read_answer(sock)
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:200]
    assert b"/problems/idempotency-key-malformed" in answer
