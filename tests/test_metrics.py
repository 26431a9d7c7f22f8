"""``/metrics``: off unless a token is set, answered only to that token, in Prometheus' text
format; the counts move by what happened; and ``userhub serve`` adds up its workers.

The metrics of one process are global, so the in-process tests compare a scrape after what they
did with one before it."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import PASSWORD, TOKENS, AppBuilder, AuthActions, bearer, worker_pids
from tests.live_server import running_server
from userhub import create_app
from userhub.config import ConfigError
from userhub.extensions import db

TOKEN = secrets.token_hex(32)
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples(text: str) -> Samples:
    """Every sample of a scrape, by name and labels."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(scraped: Samples, name: str, **labels: str) -> float:
    """A sample's value; 0 for a series not (yet) in the scrape."""
    return scraped.get((name, frozenset(labels.items())), 0.0)


def moved(before: Samples, after: Samples, name: str, **labels: str) -> float:
    """How far a sample moved between two scrapes."""
    return value(after, name, **labels) - value(before, name, **labels)


def scrape(client: FlaskClient) -> Samples:
    response = client.get("/metrics", headers=bearer(TOKEN))
    assert response.status_code == 200, response.get_data(as_text=True)
    return samples(response.get_data(as_text=True))


@pytest.fixture
def metered(build_app: AppBuilder, database_url: str) -> Flask:
    return build_app(database_url, USERHUB_METRICS_TOKEN=TOKEN)


def requests_of(scraped: Samples, method: str, route: str, status: str) -> float:
    return value(scraped, "userhub_http_requests_total", method=method, route=route, status=status)


def test_metrics_are_off_unless_a_token_is_set(client: FlaskClient, metered: Flask) -> None:
    before = scrape(metered.test_client())
    assert client.get("/metrics", headers=bearer(TOKEN)).status_code == 404
    assert client.get("/response_json").status_code == 200
    after = scrape(metered.test_client())
    # The app without a token timed nothing: only the metered app's own scrape was counted.
    assert requests_of(after, "GET", "/response_json", "200") == requests_of(
        before, "GET", "/response_json", "200"
    )
    assert requests_of(after, "GET", "<unmatched>", "404") == requests_of(
        before, "GET", "<unmatched>", "404"
    )


def test_a_short_token_is_refused_without_showing_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("USERHUB_METRICS_TOKEN", "short-and-guessable")
    with pytest.raises(ConfigError, match="at least 32 characters") as refused:
        create_app()
    assert "short-and-guessable" not in str(refused.value)


def test_a_scrape_needs_the_token(metered: Flask) -> None:
    client = metered.test_client()
    for headers in ({}, bearer("x" * 64), bearer(TOKEN + "x"), {"Authorization": TOKEN}):
        refused = client.get("/metrics", headers=headers)
        assert refused.status_code == 401
        assert refused.headers["WWW-Authenticate"].startswith("Bearer")
        assert "userhub_" not in refused.get_data(as_text=True)
    answered = client.get("/metrics", headers=bearer(TOKEN))
    assert answered.status_code == 200
    assert answered.mimetype == "text/plain"
    assert answered.headers["Cache-Control"] == "no-store"
    names = {family.name for family in text_string_to_metric_families(answered.text)}
    assert {
        "userhub_http_requests",
        "userhub_http_request_duration_seconds",
        "userhub_http_requests_in_flight",
        "userhub_logins",
        "userhub_registrations",
        "userhub_tokens_issued",
        "userhub_mail_sent",
        "userhub_mail_failed",
        "userhub_outbox_depth",
        "userhub_db_pool_connections_in_use",
        "userhub_db_pool_checkout_waits",
        "userhub_password_hash_seconds",
    } <= names
    assert "/metrics" not in client.get("/openapi.json").get_json()["paths"]


def test_log_ins_registrations_and_tokens_are_counted(metered: Flask) -> None:
    client = metered.test_client()
    before = scrape(client)
    assert client.post("/api/v1/users", json={"username": "ann", "password": PASSWORD}).status_code
    assert AuthActions(client).register("bob").status_code == 302
    wrong = client.post(TOKENS, json={"username": "ann", "password": "wrong password"})
    assert wrong.status_code == 401
    assert client.post(TOKENS, json={"username": "ann", "password": PASSWORD}).status_code == 201
    assert AuthActions(client).login("bob").status_code == 302  # the form
    assert client.get("/no/such/page").status_code == 404
    after = scrape(client)

    assert moved(before, after, "userhub_registrations_total") == 2
    assert moved(before, after, "userhub_logins_total", result="failure") == 1
    assert moved(before, after, "userhub_logins_total", result="success") == 2
    assert moved(before, after, "userhub_logins_total", result="limited") == 0
    assert moved(before, after, "userhub_tokens_issued_total", kind="log-in") == 1
    hashes = "userhub_password_hash_seconds_count"
    assert moved(before, after, hashes, operation="hash") == 2
    assert moved(before, after, hashes, operation="verify") == 3

    # Labelled by the URL rule, not the path; a path no rule matches is one series.
    def answered(method: str, route: str, status: str) -> float:
        labels = {"method": method, "route": route, "status": status}
        return moved(before, after, "userhub_http_requests_total", **labels)

    assert answered("POST", TOKENS, "201") == answered("POST", TOKENS, "401") == 1
    assert answered("GET", "<unmatched>", "404") == 1
    assert answered("GET", "/metrics", "200") == 1
    timed = {"method": "POST", "route": TOKENS, "status": "201"}
    assert moved(before, after, "userhub_http_request_duration_seconds_count", **timed) == 1


def test_limited_log_ins_are_counted(build_app: AppBuilder, database_url: str) -> None:
    """Refused by the per-IP limit on the log-in routes, and by the account's own limit."""
    app = build_app(
        database_url,
        USERHUB_METRICS_TOKEN=TOKEN,
        RATELIMIT_ENABLED=True,
        USERHUB_RATELIMIT_LOGIN="3 per hour",
        USERHUB_RATELIMIT_ACCOUNT="1 per hour",
    )
    client = app.test_client()
    assert client.post("/api/v1/users", json={"username": "ann", "password": PASSWORD})
    before = scrape(client)
    statuses = [
        client.post(TOKENS, json={"username": "ann", "password": "wrong password"}).status_code
        for _ in range(4)
    ]
    # The first a wrong password; the account's limit refuses the next two; then the address's.
    assert statuses == [401, 429, 429, 429]
    after = scrape(client)
    assert moved(before, after, "userhub_logins_total", result="limited") == 3
    assert moved(before, after, "userhub_logins_total", result="failure") == 1


def test_pool_and_outbox_are_shown(metered: Flask) -> None:
    client = metered.test_client()
    registered = client.post(
        "/api/v1/users", json={"username": "ann", "password": PASSWORD, "email": "a@example.com"}
    )
    assert registered.status_code == 201
    before = scrape(client)
    assert value(before, "userhub_outbox_depth") == 1  # the verification mail, not sent yet
    with metered.app_context(), db.engine.connect():
        during = scrape(client)
    after = scrape(client)
    in_use = "userhub_db_pool_connections_in_use"
    assert value(during, in_use) == value(before, in_use) + 1
    assert value(after, in_use) == value(before, in_use)


REQUESTS = 60


def requests_per_worker(folder: Path) -> dict[int, float]:
    """The ``GET /`` answered by each process that wrote its values into ``folder``, read from
    its own file."""
    counted: dict[int, float] = {}
    for path in folder.glob("counter_*.db"):
        pid = int(path.stem.rpartition("_")[2])
        families = MultiProcessCollector.merge([str(path)], accumulate=True)  # type: ignore[no-untyped-call]
        counted[pid] = sum(
            s.value
            for family in families
            for s in family.samples
            if s.name == "userhub_http_requests_total"
            and s.labels == {"method": "GET", "route": "/", "status": "200"}
        )
    return counted


@pytest.mark.parametrize("folder_by", ["operator", "serve"])
@pytest.mark.parametrize("server", ["granian", "gunicorn"])
def test_serve_adds_up_its_workers(
    database_url: str, tmp_path: Path, server: str, folder_by: str
) -> None:
    """``userhub serve`` with 2 workers: requests on new connections, which the kernel spreads
    over both; the scrape counts every one, and both workers' files hold some of them. The
    folder of the values is the operator's (PROMETHEUS_MULTIPROC_DIR: emptied at start, kept),
    or one ``userhub serve`` makes (in TMPDIR) and deletes when it exits."""
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    env = {"USERHUB_METRICS_TOKEN": TOKEN, "TMPDIR": str(temporary)}
    if folder_by == "operator":
        given = tmp_path / "metrics"
        given.mkdir()
        (given / "counter_999999.db").write_bytes(b"left by an earlier run")  # deleted at start
        env["PROMETHEUS_MULTIPROC_DIR"] = str(given)
    with running_server("production", database_url, tmp_path, server=server, env=env) as live:
        for _ in range(REQUESTS):
            with requests.Session() as fresh:  # a connection of its own
                assert fresh.get(f"{live.base}/", timeout=30).status_code == 200
        refused = requests.get(f"{live.base}/metrics", timeout=30)
        assert refused.status_code == 401
        answer = requests.get(f"{live.base}/metrics", headers=bearer(TOKEN), timeout=30)
        assert answer.status_code == 200
        scraped = samples(answer.text)
        workers = worker_pids(live)
        [folder] = [given] if folder_by == "operator" else list(temporary.glob("userhub-metrics-*"))
        per_worker = requests_per_worker(folder)

    assert requests_of(scraped, "GET", "/", "200") == REQUESTS
    assert requests_of(scraped, "GET", "/metrics", "401") == 1
    assert value(scraped, "userhub_http_requests_in_flight") == 1  # the scrape itself
    # Each worker's own file: both answered some of the requests, and together all of them.
    answered = {pid: count for pid, count in per_worker.items() if count}
    assert set(answered) == workers and len(workers) == 2
    assert sum(answered.values()) == REQUESTS
    assert 999999 not in per_worker
    assert folder.exists() == (folder_by == "operator")
