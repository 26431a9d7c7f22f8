"""The outbox under ``userhub serve``: the background sender of each worker delivers account
mail to a real SMTP server in its own process, and nothing promised is lost or sent twice, across
an SMTP outage and a restart, a worker killed in the middle of a delivery, and two instances of
two workers each on one MariaDB.
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from tests.helpers import BACKENDS, PASSWORD, needs_mysql, own_database, worker_pids
from tests.live_server import running_server
from tests.smtp_server import ReceivedMail, SinkStarter, SmtpSink

SETTLE_SECONDS = 3.0  # after the last expected mail: time enough for a duplicate to show up


def register(base: str, name: str) -> None:
    body = {"username": name, "password": PASSWORD, "email": f"{name}@example.com"}
    answer = requests.post(f"{base}/api/v1/users", json=body, timeout=30)
    assert answer.status_code == 201, answer.text


def recipients(mails: list[ReceivedMail]) -> Counter[str]:
    return Counter(address for mail in mails for address in mail.rcpt_tos)


def exactly(sink: SmtpSink, expected: set[str], timeout: float) -> None:
    """Each of ``expected`` got its mail, and (after a pause) none got it twice."""
    sink.wait_for(len(expected), timeout=timeout)
    time.sleep(SETTLE_SECONDS)
    got = recipients(sink.messages())
    assert set(got) == expected
    assert max(got.values()) == 1, got
    ids = [mail.message["Message-ID"] for mail in sink.messages()]
    assert len(ids) == len(set(ids))


def mail_env(sink: SmtpSink, **extra: str) -> dict[str, str]:
    return {"USERHUB_MAIL_URL": sink.url, "USERHUB_RATELIMIT_ENABLED": "false", **extra}


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_server_sends_promised_mail_in_the_background_and_after_an_outage_and_restart(
    backend: str, tmp_path: Path, start_smtp_sink: SinkStarter
) -> None:
    sink = start_smtp_sink()
    database = own_database(backend, tmp_path, "mail_outage")
    with running_server("production", database, tmp_path, env=mail_env(sink)) as server:
        register(server.base, "first")
        sink.wait_for(1, timeout=10)  # no extra process: the workers send it
        sink.stop()  # SMTP goes down while requests keep arriving
        for number in range(5):
            register(server.base, f"during{number}")
        time.sleep(1)  # each worker has tried, failed, and put its mail back for later
    sink.start()  # SMTP back, and a new server: what was pending goes out
    with running_server("production", database, tmp_path, env=mail_env(sink)):
        expected = {"first@example.com"} | {f"during{n}@example.com" for n in range(5)}
        exactly(sink, expected, timeout=40)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_worker_killed_in_the_middle_of_a_delivery_loses_nothing(
    backend: str, tmp_path: Path, start_smtp_sink: SinkStarter
) -> None:
    """The sink answers ``slow…`` recipients after 3 s: the worker sending the mail is killed
    then, before the mail was handed over. Its claim runs out, and another sender sends it."""
    sink = start_smtp_sink()
    database = own_database(backend, tmp_path, "mail_kill")
    env = mail_env(sink, USERHUB_MAIL_CLAIM_SECONDS="3")
    with running_server("production", database, tmp_path, env=env) as server:
        before = worker_pids(server)
        register(server.base, "slow")
        time.sleep(1)  # the sender is waiting for the sink's answer to RCPT
        for pid in before:
            os.kill(pid, signal.SIGKILL)
        assert sink.messages() == []
        exactly(sink, {"slow@example.com"}, timeout=30)
        assert worker_pids(server).isdisjoint(before)  # it really was the new workers


@needs_mysql
def test_two_instances_of_two_workers_send_each_mail_once(
    tmp_path: Path, start_smtp_sink: SinkStarter
) -> None:
    sink = start_smtp_sink()
    database = own_database("mysql", tmp_path, "mail_instances")
    names = [f"user{number}" for number in range(40)]
    for instance in ("a", "b"):
        (tmp_path / instance).mkdir()
    with (
        running_server("production", database, tmp_path / "a", env=mail_env(sink)) as first,
        running_server("production", database, tmp_path / "b", env=mail_env(sink)) as second,
        ThreadPoolExecutor(8) as pool,
    ):
        bases = [first.base, second.base]
        list(pool.map(lambda i: register(bases[i % 2], names[i]), range(len(names))))
        exactly(sink, {f"{name}@example.com" for name in names}, timeout=60)
