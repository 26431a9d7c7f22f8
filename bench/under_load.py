"""``make under-load``: userhub on MariaDB under each way of serving it, from 8 to 256
connections, counting every answer's status.

The benchmark (``run.py``) measures speed at 32 connections under ``userhub serve``; this asks
whether anything *fails* as connections grow, under the servers a deployer is likely to put
in front of ``create_app``:

- ``userhub serve`` with its default workers and threads;
- ``granian --interface wsgi --workers 2 --factory userhub:create_app``, granian's default
  thread count (what the docs of granian show, without ``userhub serve``'s front);
- ``gunicorn -k gthread --threads T -w 2 'userhub:create_app()'`` for T in 4, 32 and 128.

Each server runs alone, production mode, rate limits on, on one fresh MariaDB database
(``userhub_bench_under_load``). For each connection count (8, 32, 64, 128, 256) wrk loads it
for ``--seconds`` with, in turn: ``GET /api/v1/users/me`` (a Bearer token),
``GET /response_json``, ``GET /test_get?user_name=张三`` and ``POST /api/v1/users`` (a new
username each time). ``bench/wrk.lua`` tallies every status. Allowed: 2xx everywhere, and 429
for the registrations (their rate limit applies); anything else is a failure, and so is any
socket error (connect, read, write, timeout).

Writes ``bench/results/under_load.json`` (every run: statuses, socket errors, req/s, latency,
the first 5xx body) and the table between the ``under-load`` markers in docs/performance.md
(``--before``: ``under_load_before.json`` and the ``under-load-before`` markers, the record of
a run before a fix). Exits 1 on any 5xx or socket error, or any status not allowed.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from machine import cpu_model
from run import (
    BENCH,
    BIN,
    PERFORMANCE_DOC,
    RESULTS,
    Scenario,
    Target,
    _git_commit,
    free_port,
    issue_token,
    prepare_database,
    running,
    settle,
    userhub_env,
    wait_until_up,
    wrk,
)

from userhub.config import available_cores

DEFAULT_MYSQL = "mysql+pymysql://root@127.0.0.1:3306/userhub_bench_under_load?charset=utf8mb4"
CONNECTIONS = (8, 32, 64, 128, 256)
GUNICORN_THREADS = (4, 32, 128)
SCENARIOS = (
    Scenario("GET /api/v1/users/me", "/api/v1/users/me", token=True),
    Scenario("GET /response_json", "/response_json"),
    Scenario("GET /test_get", "/test_get?user_name=%E5%BC%A0%E4%B8%89"),
    Scenario("POST /api/v1/users", "/api/v1/users", "POST", "register"),
)
RATE_LIMITED = {"POST /api/v1/users"}  # 429 is a correct answer there


@dataclass
class Sweep:
    """One wrk run: a server, a scenario, a connection count, and what came back."""

    server: str
    scenario: str
    connections: int
    rps: float
    p50_ms: float
    p99_ms: float
    statuses: dict[str, int]
    socket_errors: dict[str, int]
    first_5xx: str
    failures: list[str] = field(default_factory=list)


def servers(port: int) -> dict[str, list[str]]:
    """Each way of serving userhub, by name: its command, listening on ``port``."""
    found = {
        "userhub serve": [str(BIN / "userhub"), "serve", "--port", str(port)],
        "granian WSGI, default threads": [
            *(str(BIN / "granian"), "--interface", "wsgi", "--workers", "2", "--factory"),
            *("--port", str(port), "userhub:create_app"),
        ],
    }
    for threads in GUNICORN_THREADS:
        found[f"gunicorn gthread, 2 x {threads} threads"] = [
            *(str(BIN / "gunicorn"), "-k", "gthread", "--threads", str(threads), "-w", "2"),
            *("-b", f"127.0.0.1:{port}", "userhub:create_app()"),
        ]
    return found


def judge(scenario: str, statuses: dict[str, int], socket_errors: dict[str, int]) -> list[str]:
    """What in one run's answers is not allowed."""
    failures = []
    for status, count in sorted(statuses.items()):
        code = int(status)
        if 200 <= code < 300 or (code == 429 and scenario in RATE_LIMITED):
            continue
        failures.append(f"{count} x {code}")
    failures += [f"{count} socket {kind} errors" for kind, count in socket_errors.items() if count]
    return failures


@contextmanager
def serving(name: str, command: list[str], port: int, url: str, folder: Path) -> Iterator[Target]:
    """One server, up and with a token for the bench user, for the block."""
    env = userhub_env(url, folder / "instance", limits=True)
    log = folder / f"{name.translate(str.maketrans(' ,', '__'))}.log"
    with running(command, env, log, BENCH) as process:
        wait_until_up(port, "/api/v1/health", process, log)
        target = Target(name, "userhub", name, "mysql", port, (), pid=process.pid, log=log)
        target.token = issue_token(port)
        yield target


def sweep(target: Target, seconds: float, levels: list[int]) -> list[Sweep]:
    runs = []
    for connections in levels:
        for scenario in SCENARIOS:
            settle(target.pid or 0, timeout=15)
            raw = wrk(target, scenario, seconds, connections, count_statuses=True)
            statuses = {k: int(v) for k, v in raw["statuses"].items()}
            socket_errors = {
                "connect": raw["connect_errors"],
                "read": raw["read_errors"],
                "write": raw["write_errors"],
                "timeout": raw["timeouts"],
            }
            run = Sweep(
                server=target.label,
                scenario=scenario.name,
                connections=connections,
                rps=round(raw["requests"] / (raw["duration_us"] / 1e6), 1),
                p50_ms=raw["p50_us"] / 1000,
                p99_ms=raw["p99_us"] / 1000,
                statuses=statuses,
                socket_errors=socket_errors,
                first_5xx=raw["first_5xx"],
                failures=judge(scenario.name, statuses, socket_errors),
            )
            runs.append(run)
            print(
                f"{target.label:34} {scenario.name:22} c={connections:<4} {run.rps:8.0f} req/s "
                f"p99 {run.p99_ms:8.1f} ms  {statuses}  {'; '.join(run.failures) or 'ok'}",
                flush=True,
            )
    return runs


def cell(run: Sweep) -> str:
    """One table cell: req/s, and what failed, if anything."""
    text = f"{run.rps:,.0f}"
    if run.failures:
        text += " **" + ", ".join(run.failures) + "**"
    limited = run.statuses.get("429", 0)
    if limited and run.scenario in RATE_LIMITED:
        text += f" ({limited:,} x 429)"
    return text


def markdown_table(runs: list[Sweep], meta: dict[str, Any]) -> str:
    levels = sorted({r.connections for r in runs})
    lines = [
        f"Measured {meta['date']} on {meta['cores']} cores ({meta['cpu']}), commit "
        f"{meta['commit']}, MariaDB {meta['mariadb']}; wrk -t1 for {meta['seconds']} s per cell, "
        f"rate limits on. Each cell: requests a second, then in bold any answer that is not "
        f"allowed (anything but 2xx; 429 allowed for registrations) and any socket error. "
        f"Command: `{meta['command']}`.",
        "",
        "| server | scenario | " + " | ".join(f"{c} conn." for c in levels) + " |",
        "|---|---|" + "---:|" * len(levels),
    ]
    keys = dict.fromkeys((r.server, r.scenario) for r in runs)
    for server, scenario in keys:
        cells = []
        for level in levels:
            found = [
                r
                for r in runs
                if r.server == server and r.scenario == scenario and r.connections == level
            ]
            cells.append(cell(found[0]) if found else "")
        lines.append(f"| {server} | {scenario} | " + " | ".join(cells) + " |")
    samples = dict.fromkeys(r.first_5xx for r in runs if r.first_5xx)
    if samples:
        lines += ["", "5xx answers seen (status and the start of the body):", ""]
        lines += [f"- `{sample}`" for sample in samples]
    failed = sum(1 for r in runs if r.failures)
    lines += ["", f"Runs with a failure: {failed} of {len(runs)}."]
    return "\n".join(lines)


def update_doc(marker: str, table: str) -> None:
    start, end = f"<!-- {marker}:start -->", f"<!-- {marker}:end -->"
    text = PERFORMANCE_DOC.read_text(encoding="utf-8")
    if start not in text:
        print(f"docs/performance.md has no {marker} markers; table not written there")
        return
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    PERFORMANCE_DOC.write_text(f"{head}{start}\n{table}\n{end}{tail}", encoding="utf-8")


def mariadb_version(url: str) -> str:
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            return str(connection.exec_driver_sql("SELECT VERSION()").scalar())
    finally:
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=4, help="length of each wrk run")
    parser.add_argument(
        "--connections",
        default=",".join(map(str, CONNECTIONS)),
        help="comma-separated connection counts",
    )
    parser.add_argument("--only", help="run only the servers whose name contains this")
    parser.add_argument("--mysql-url", default=DEFAULT_MYSQL)
    parser.add_argument(
        "--before",
        action="store_true",
        help="record a run before a fix: under_load_before.json and the under-load-before table",
    )
    parser.add_argument("--no-doc", dest="doc", action="store_false")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed: apt-get install wrk (make under-load does this)")
    levels = [int(c) for c in args.connections.split(",")]
    suffix = "_before" if args.before else ""

    runs: list[Sweep] = []
    started = datetime.now(UTC)
    with tempfile.TemporaryDirectory(prefix="userhub-under-load-") as tmp:
        folder = Path(tmp)
        url = prepare_database("mysql", args.mysql_url, folder)
        for name in servers(0):
            if args.only and args.only not in name:
                continue
            port = free_port()
            with serving(name, servers(port)[name], port, url, folder) as target:
                runs += sweep(target, args.seconds, levels)
        mariadb = mariadb_version(url)

    command = "make under-load" + (' UNDER_LOAD_ARGS="--before"' if args.before else "")
    meta = {
        "date": started.strftime("%Y-%m-%d %H:%M UTC"),
        "command": command,
        "commit": _git_commit(),
        "cores": available_cores(),
        "cpu": cpu_model(),
        "python": platform.python_version(),
        "mariadb": mariadb,
        "seconds": args.seconds,
        "connections": levels,
    }
    failed = [r for r in runs if r.failures]
    output = RESULTS / f"under_load{suffix}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    document = {"meta": meta, "passed": not failed, "runs": [asdict(r) for r in runs]}
    output.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    table = markdown_table(runs, meta)
    if args.doc:
        update_doc(f"under-load{suffix.replace('_', '-')}", table)
    print(table)
    print(f"\nwrote {output}")
    if failed:
        sys.exit(f"under load FAILED: {len(failed)} of {len(runs)} runs had a failure")
    print("under load passed: only allowed statuses, no socket error")


if __name__ == "__main__":
    main()
