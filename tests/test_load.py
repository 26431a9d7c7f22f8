"""Load alone never makes userhub answer 503 while its database is healthy.

Served as Flask apps are commonly served (plain granian with its default of 256 threads a
worker, gunicorn's threaded workers), many more threads than pooled connections want the
database at once. Each request must then wait its turn for a connection, not be turned away:
64 clients at once, for a few seconds, get 200s (and 429 where a rate limit applies), no 5xx.
The speed under the same load is measured in bench/ (docs/performance.md), not here.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.helpers import PASSWORD, mysql_url, needs_mysql, recreate_mysql_database
from tests.live_server import ServerProcess, running_server

pytestmark = needs_mysql

CLIENTS = 64
SECONDS = 4.0
READS = ("/api/v1/users/me", "/response_json", "/test_get?user_name=%E5%BC%A0%E4%B8%89")


@pytest.fixture(scope="module", params=["granian-wsgi", "gunicorn-gthread"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    url = mysql_url("_load")
    recreate_mysql_database(url)
    workdir: Path = tmp_path_factory.mktemp(request.param)
    with running_server("production", url, workdir, server=request.param) as running:
        yield running


def token_for(base: str) -> str:
    account = {"username": "loaded", "password": PASSWORD}
    created = requests.post(f"{base}/api/v1/users", json=account, timeout=30)
    assert created.status_code in (201, 409), created.text
    issued = requests.post(f"{base}/api/v1/tokens", json=account, timeout=30)
    assert issued.status_code == 201, issued.text
    token: str = issued.json()["token"]
    return token


def load(base: str, token: str) -> collections.Counter[tuple[str, int]]:
    """``CLIENTS`` kept-alive clients, each asking in turn for every read, and one in eight
    registering an account, for ``SECONDS``; how often each path got each status."""
    statuses: collections.Counter[tuple[str, int]] = collections.Counter()
    lock = threading.Lock()
    stop_at = time.monotonic() + SECONDS

    def client(number: int) -> None:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {token}"
        sent = 0
        while time.monotonic() < stop_at:
            if number % 8 == 0:
                path, account = (
                    "/api/v1/users",
                    {"username": f"u{number}-{sent}", "password": PASSWORD},
                )
                answer = session.post(base + path, json=account, timeout=30)
            else:
                path = READS[sent % len(READS)]
                answer = session.get(base + path, timeout=30)
            sent += 1
            with lock:
                statuses[path.partition("?")[0], answer.status_code] += 1

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses


def test_many_threads_take_turns_for_connections_rather_than_fail(server: ServerProcess) -> None:
    statuses = load(server.base, token_for(server.base))
    failed = {key: count for key, count in statuses.items() if key[1] >= 500}
    assert not failed, (failed, server.log()[-3000:])
    allowed = {"/api/v1/users": {201, 429}}
    unexpected = {
        key: count for key, count in statuses.items() if key[1] not in allowed.get(key[0], {200})
    }
    assert not unexpected, unexpected
    assert statuses["/api/v1/users/me", 200] >= CLIENTS  # every client was answered, many times
