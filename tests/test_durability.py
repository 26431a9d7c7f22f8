"""Nothing acknowledged is lost: a worker killed mid-load loses no registration it answered.

A registration commits before it answers, so a 2xx means the row is in MariaDB. To show it, a
real production server on MariaDB takes concurrent registrations while one of its worker
processes is SIGKILLed (no handler runs, no transaction is finished politely: the worker just
vanishes, as under the OOM killer). Then:

- every username that got a 2xx is in the ``user`` table, under the id the response gave;
- every row is complete (argon2id hash, case-insensitive key, times, session version), and
  belongs to a request that was sent: requests whose connection died may or may not have
  been stored, but never half;
- the server kept serving: requests that started after the kill were acknowledged, the dead
  worker was replaced, and fresh registrations succeed;
- nothing else went wrong: no 4xx or 5xx, no traceback in the log.

Killing the database server itself is another matter, governed by MariaDB's own settings
(``innodb_flush_log_at_trx_commit=1``, and ``sync_binlog=1`` with a binary log); the test
records them (``record_property``) but does not fail on them: they are the operator's choice
and do not change what this test exercises.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa
from argon2 import PasswordHasher

from tests.helpers import mysql_url, needs_mysql, recreate_mysql_database, worker_pids
from tests.live_server import ServerProcess, running_server
from userhub.services.account_rules import username_key

CLIENTS = 12  # 2 workers x 4 threads are always busy, with requests queued behind them
LOAD_BEFORE_KILL = 1.5  # seconds of load before the kill
LOAD_AFTER_KILL = 2.5  # seconds of load after it
PASSWORD = "durable-password-1"
ARGON2ID = re.compile(r"\$argon2id\$v=19\$m=\d+,t=\d+,p=\d+\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+")
SAVED = "Commit Status:Succeeded, Message:Data inserted successfully."
REQUEST_TIMEOUT = 30


@dataclass
class Outcome:
    """One registration as the client saw it: a status, or the connection failing."""

    username: str
    route: str
    started: float
    finished: float
    status: int | None = None  # None: the connection failed (reset, refused, timed out)
    error: str = ""
    user_id: int | None = None  # the id a 201 from the API announced

    @property
    def acknowledged(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def register(session: requests.Session, base: str, username: str, api: bool) -> Outcome:
    """One registration, by the API (201 + the user) or the tutorial's route (200 + text)."""
    route = "/api/v1/users" if api else "/save_data_to_mysql"
    body = {"username": username, "password": PASSWORD}
    started = time.monotonic()
    try:
        response = session.post(base + route, json=body, timeout=REQUEST_TIMEOUT)
    except requests.RequestException as exc:
        return Outcome(username, route, started, time.monotonic(), error=type(exc).__name__)
    outcome = Outcome(username, route, started, time.monotonic(), response.status_code)
    if response.status_code == 201 and api:
        outcome.user_id = response.json()["id"]
        assert response.json()["username"] == username
    elif response.status_code == 200:
        assert response.text == SAVED
    elif response.status_code >= 300:
        outcome.error = response.text[:300]
    return outcome


def open_sockets(pid: int) -> int:
    """How many sockets a process holds: its clients' connections, its database connections
    and the listening socket. The worker with the most is the one serving the most clients."""
    count = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):  # closed while we looked
            count += os.readlink(fd).startswith("socket:")
    return count


def wait_for(condition: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


@dataclass
class Load:
    """Client threads registering unique names until stopped; every outcome is kept."""

    base: str
    prefix: str
    outcomes: list[Outcome]
    stop: threading.Event
    threads: list[threading.Thread]

    def acknowledged(self) -> int:
        return sum(o.acknowledged for o in list(self.outcomes))


@pytest.fixture
def load_on() -> Iterator[Callable[[str, str], Load]]:
    loads: list[Load] = []

    def start(base: str, prefix: str) -> Load:
        load = Load(base, prefix, [], threading.Event(), [])
        lock = threading.Lock()

        def client(number: int) -> None:
            with requests.Session() as session:
                count = 0
                while not load.stop.is_set():
                    count += 1
                    name = f"{prefix}{number:02d}n{count:05d}"  # 20 characters at most
                    outcome = register(session, base, name, api=number % 2 == 0)
                    with lock:
                        load.outcomes.append(outcome)

        for number in range(CLIENTS):
            thread = threading.Thread(target=client, args=(number,), daemon=True)
            load.threads.append(thread)
            thread.start()
        loads.append(load)
        return load

    yield start
    for load in loads:  # even when the test failed half-way: no thread outlives it
        load.stop.set()
        for thread in load.threads:
            thread.join(REQUEST_TIMEOUT + 5)


@pytest.fixture
def durable_server(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[ServerProcess, str, str]]:
    """``userhub serve`` in production on a fresh MariaDB database of this test's own: the
    server, the database URL, and which server it is. Rate limits are off: they would refuse a
    burst of registrations from one address, and this test is about what happens to them."""
    url = mysql_url("_durability")
    recreate_mysql_database(url)
    limits_off = {"USERHUB_RATELIMIT_ENABLED": "false"}
    with running_server(
        "production", url, tmp_path, server=request.param, env=limits_off
    ) as server:
        yield server, url, request.param


def stored_users(url: str) -> dict[str, dict[str, Any]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            rows = connection.exec_driver_sql("SELECT * FROM `user`").mappings().all()
    finally:
        engine.dispose()
    return {row["username"]: dict(row) for row in rows}


def durability_settings(url: str) -> dict[str, Any]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            row = connection.exec_driver_sql(
                "SELECT @@innodb_flush_log_at_trx_commit, @@sync_binlog, @@log_bin"
            ).one()
    finally:
        engine.dispose()
    return {
        "innodb_flush_log_at_trx_commit": int(row[0]),
        "sync_binlog": int(row[1]),
        "log_bin": int(row[2]),
    }


def assert_complete(row: dict[str, Any]) -> None:
    """A row as ``register_user`` writes it, every column set: nothing half-written."""
    username = row["username"]
    assert ARGON2ID.fullmatch(row["password_hash"]), row
    assert row["username_key"] == username_key(username), row
    assert row["created_at"] is not None and row["updated_at"] is not None, row
    assert row["email_verified_at"] is None and row["pending_email"] is None, row
    assert not row["is_admin"], row
    assert row["display_name"] is None and row["email"] is None, row


@needs_mysql
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds workers in /proc")
@pytest.mark.parametrize("durable_server", ["granian", "gunicorn"], indirect=True)
def test_a_killed_worker_loses_no_acknowledged_registration(
    durable_server: tuple[ServerProcess, str, str],
    load_on: Callable[[str, str], Load],
    record_property: Callable[[str, object], None],
) -> None:
    server, url, kind = durable_server
    settings = durability_settings(url)
    for name, value in settings.items():
        record_property(name, value)

    # The server answers as soon as one worker does; the second may still be starting.
    assert wait_for(lambda: len(worker_pids(server)) == 2, 15), worker_pids(server)
    workers = worker_pids(server)
    load = load_on(server.base, "k")
    assert wait_for(lambda: load.acknowledged() >= 20, 20), "no load reached the server"
    time.sleep(max(0.0, LOAD_BEFORE_KILL - (time.monotonic() - load.outcomes[0].started)))
    victim = max(workers, key=open_sockets)  # so that the kill cuts requests in flight
    os.kill(victim, signal.SIGKILL)
    killed_at = time.monotonic()
    acknowledged_before_kill = load.acknowledged()
    respawned = wait_for(lambda: len(worker_pids(server) - workers) == 1, 15)
    time.sleep(max(0.0, killed_at + LOAD_AFTER_KILL - time.monotonic()))
    load.stop.set()
    for thread in load.threads:
        thread.join(REQUEST_TIMEOUT + 5)
    assert respawned, f"worker {victim} was not replaced: {worker_pids(server)}"
    assert victim not in worker_pids(server)

    # The server still serves, on fresh connections, after the kill.
    with requests.Session() as session:
        after = [register(session, server.base, f"after{i}", api=i % 2 == 0) for i in range(4)]
    assert [o.status for o in after] == [201, 200, 201, 200], after

    outcomes = load.outcomes
    acknowledged = [o for o in outcomes if o.acknowledged]
    lost = [o for o in outcomes if o.status is None]
    refused = [o for o in outcomes if o.status is not None and not o.acknowledged]
    rows = stored_users(url)
    summary = (
        f"{kind}: {len(outcomes)} sent, {len(acknowledged)} acknowledged "
        f"({acknowledged_before_kill} before the kill), {len(lost)} lost their connection "
        f"({sum(o.username in rows for o in lost)} of them stored anyway), {len(refused)} "
        f"refused; {len(rows)} rows checked; MariaDB {settings}"
    )
    print(summary)
    record_property("summary", summary)

    assert not refused, refused[:5]  # no 5xx (nor any 4xx: every name is new)
    # The kill hit requests in flight (else this test proved nothing), and only around it.
    assert lost, "the kill interrupted no request"
    assert all(o.started <= killed_at + 1 for o in lost), lost
    assert any(o.started > killed_at for o in acknowledged), "nothing answered after the kill"

    for outcome in [*acknowledged, *after]:
        assert outcome.username in rows, f"acknowledged, then lost: {outcome}"
        if outcome.user_id is not None:
            assert rows[outcome.username]["id"] == outcome.user_id
    sent = {o.username for o in [*outcomes, *after]}
    assert set(rows) <= sent  # no row from nowhere
    for row in rows.values():
        assert_complete(row)
    # A complete hash is also a working one: spot-check that the password verifies.
    hasher = PasswordHasher()
    for row in list(rows.values())[:: max(1, len(rows) // 5)]:
        assert hasher.verify(row["password_hash"], PASSWORD)

    assert server.stop() == 0  # and it still shuts down cleanly
    log = server.log()
    for sign in ("Traceback", '"level": "ERROR"'):  # the worker's death is logged otherwise
        assert sign not in log, log[max(0, log.find(sign) - 300) :][:2500]
