"""``userhub serve`` in production: granian (the default) and gunicorn, run as an operator runs
them. Each logs one JSON line per request (the app's, not a server access log besides it),
echoes a request id, and on SIGTERM lets requests in flight finish before it exits."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa

from tests.helpers import worker_pids
from tests.live_server import EXIT_SECONDS, ServerProcess, running_server


@pytest.fixture(params=["granian", "gunicorn"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ServerProcess]:
    url = f"sqlite:///{tmp_path / 'serve.sqlite3'}"
    with running_server("production", url, tmp_path, server=request.param, log_level="INFO") as s:
        yield s


def access_lines(log: str) -> list[dict[str, Any]]:
    return [
        json.loads(line)
        for line in log.splitlines()
        if line.startswith("{") and '"userhub.access"' in line
    ]


def test_each_request_is_logged_once_with_the_id_it_was_answered_with(
    server: ServerProcess,
) -> None:
    ids = [f"client-{i}" for i in range(5)]
    for request_id in ids:
        response = requests.get(
            server.base + "/test_get?user_name=query-text",
            headers={"X-Request-ID": request_id},
            timeout=10,
        )
        assert response.text == "Hello,query-text"
        assert response.headers["X-Request-ID"] == request_id
    unusable = requests.get(
        server.base + "/response_json", headers={"X-Request-ID": "has spaces\t"}, timeout=10
    )
    generated = unusable.headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{16}", generated)

    assert server.stop() == 0
    log = server.log()
    lines = access_lines(log)
    logged = [line for line in lines if line["request_id"] in ids]
    assert sorted(line["request_id"] for line in logged) == ids  # once each, no more
    for line in logged:
        assert line["method"] == "GET"
        assert line["path"] == "/test_get"
        assert line["status"] == 200
        assert 0 <= line["duration_ms"] < 10_000
    assert [line["path"] for line in lines if line["request_id"] == generated] == ["/response_json"]
    assert "query-text" not in log  # paths only: query strings stay out of the log


def test_sigterm_lets_requests_in_flight_finish(server: ServerProcess, tmp_path: Path) -> None:
    """Each registration hashes a password (tens of ms of CPU), so two dozen keep both workers
    busy for a while; SIGTERM arrives while they run, and every one must still succeed."""
    names = [f"drain{i}" for i in range(24)]

    def register(name: str) -> tuple[int, str, float]:
        response = requests.post(
            server.base + "/save_data_to_mysql",
            json={"username": name, "password": "a-long-password"},
            timeout=60,
        )
        return response.status_code, response.text, time.monotonic()

    with ThreadPoolExecutor(len(names)) as pool:
        futures = [pool.submit(register, name) for name in names]
        time.sleep(0.2)
        server.process.send_signal(signal.SIGTERM)
        stopped_at = time.monotonic()
        results = [future.result() for future in futures]

    assert [(status, text) for status, text, _ in results] == [
        (200, "Commit Status:Succeeded, Message:Data inserted successfully.")
    ] * len(names)
    assert max(done for _, _, done in results) > stopped_at  # some were still running
    assert server.process.wait(timeout=EXIT_SECONDS) == 0  # within the drain's bound
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'serve.sqlite3'}")
    with engine.connect() as connection:
        stored = connection.exec_driver_sql("SELECT username FROM user").scalars().all()
    engine.dispose()
    assert sorted(stored) == sorted(names)


def test_no_request_line_is_lost_when_a_worker_is_killed_or_the_server_stops(
    server: ServerProcess,
) -> None:
    """Every answered request is in the log exactly once: lines are written before their
    answers leave (in batches, under load), so neither a worker killed in the middle of the
    load (the server starts another) nor SIGTERM at the end can take an answered line with
    it. Python's exit handlers do not run in either case."""
    answered: list[str] = []

    def send(request_id: str) -> None:
        try:
            response = requests.get(
                server.base + "/response_json", headers={"X-Request-ID": request_id}, timeout=10
            )
        except requests.ConnectionError:
            return  # in flight on the killed worker: not answered, nothing to find
        if response.status_code == 200 and response.headers["X-Request-ID"] == request_id:
            answered.append(request_id)

    sent = [f"line-{i}" for i in range(600)]
    with ThreadPoolExecutor(16) as pool:
        futures = [pool.submit(send, request_id) for request_id in sent[:300]]
        time.sleep(0.3)
        victim = min(worker_pids(server))
        os.kill(victim, signal.SIGKILL)
        futures += [pool.submit(send, request_id) for request_id in sent[300:]]
        for future in futures:
            future.result()

    assert server.stop() == 0
    logged = [line["request_id"] for line in access_lines(server.log())]
    mine = [request_id for request_id in logged if request_id in set(sent)]
    assert len(mine) == len(set(mine))  # none twice
    assert set(answered) <= set(mine), sorted(set(answered) - set(mine))[:10]
    assert len(answered) > 500  # the killed worker's place was taken: the rest were answered


def test_a_request_after_the_workers_threads_stopped_is_answered_503_not_raised() -> None:
    """A client that keeps its connection open can send a request after the worker's lifespan
    shutdown stopped its threads: it gets 503 and ``Connection: close``; nothing raises into the
    server, which would log "Application callable raised an exception"."""
    import asyncio

    from flask import Flask

    from userhub.cli.front import AsgiFront

    app = Flask(__name__)
    app.add_url_rule("/", "index", lambda: "hello")
    front = AsgiFront(app, threads=1, receive_timeout=5)
    sent: list[dict[str, Any]] = []

    async def scenario() -> None:
        lifespan = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])

        async def lifespan_receive() -> dict[str, Any]:
            return next(lifespan)

        async def ignore(message: Any) -> None:
            pass

        await front({"type": "lifespan"}, lifespan_receive, ignore)

        async def send(message: Any) -> None:
            sent.append(message)

        async def no_body() -> dict[str, Any]:
            raise AssertionError("a GET has no body to read")

        scope = {
            "type": "http", "method": "GET", "path": "/", "raw_path": b"/",
            "query_string": b"", "headers": [(b"host", b"localhost")],
        }  # fmt: skip
        await front(scope, no_body, send)

    asyncio.run(scenario())
    assert sent[0]["status"] == 503
    assert (b"connection", b"close") in sent[0]["headers"]
