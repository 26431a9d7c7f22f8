"""``make soak``: one production server on MariaDB under a steady mix of reads and writes.

The benchmark (``run.py``) loads one route at a time for seconds; a soak loads them all at
once for a minute, which is where pools running dry, lock waits, leaks and workers falling over
show up. It must finish with zero 5xx and zero socket errors (connect, read, write, timeout).

What runs:

- ``userhub serve`` in production mode, default workers and threads, on a fresh MariaDB
  database (``userhub_bench_soak``), rate limits off (``USERHUB_RATELIMIT_ENABLED=false``: a
  limiter would answer 429 to one client sending this much, and this measures the app);
- seeded users (each with a token), then wrk at 256 connections (``--connections``; 64 was
  the default before issue 18) for 60 s with ``soak.lua``:
  the tutorial's GET routes, the health check, ``GET``/``PATCH /api/v1/users/me`` with Bearer
  tokens, registrations with unique names and log-ins (``POST /api/v1/tokens``), in fixed
  proportions (``KINDS`` in ``soak.lua``).

Then it checks that every registration wrk saw answered 201 is in the database, counts the
server's error log lines, and writes ``bench/results/soak.json``: requests by kind and status
class, socket errors, latency (wrk's, and the server's own per kind from its access log),
throughput, worker memory before and after, the machine. It exits 1 if any request got a 5xx,
any socket error happened, a registration was lost, or the server logged an error.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from machine import cpu_model
from run import (
    BENCH,
    BENCH_PASSWORD,
    BIN,
    RESULTS,
    _git_commit,
    free_port,
    prepare_database,
    rss_mb,
    running,
    userhub_env,
    wait_until_up,
    worker_pids,
)

from userhub.config import available_cores

DEFAULT_MYSQL = "mysql+pymysql://root@127.0.0.1:3306/userhub_bench_soak?charset=utf8mb4"
SEED_USERS = 16
REQUEST_TIMEOUT = "10s"  # a registration waits for a hashing slot: seconds, at worst, not 10


def post_json(port: int, path: str, body: dict[str, str]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(  # noqa: S310
        f"http://127.0.0.1:{port}{path}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        return response.status, json.load(response)


def seed(port: int, prefix: str) -> tuple[list[str], list[str]]:
    """``SEED_USERS`` accounts registered through the API, each with a token: the ``me``,
    ``patch-me`` and ``login`` requests are spread over them, as over real users (one account
    for all would make every PATCH wait for the same row lock)."""
    names, tokens = [], []
    for i in range(SEED_USERS):
        name = f"{prefix}seed{i:02d}"
        credentials = {"username": name, "password": BENCH_PASSWORD}
        post_json(port, "/api/v1/users", credentials)
        _, issued = post_json(port, "/api/v1/tokens", credentials)
        names.append(name)
        tokens.append(issued["token"])
    return names, tokens


def run_wrk(
    port: int, args: argparse.Namespace, names: list[str], tokens: list[str], output: Path
) -> dict[str, Any]:
    env = dict(
        os.environ,
        SOAK_TOKENS=",".join(tokens),
        SOAK_USERS=",".join(names),
        SOAK_PASSWORD=BENCH_PASSWORD,
        SOAK_PREFIX=args.prefix,
        SOAK_OUTPUT=str(output),
    )
    command = [
        *("wrk", f"-t{args.wrk_threads}", f"-c{args.connections}", f"-d{args.seconds:g}s"),
        *("--timeout", REQUEST_TIMEOUT, "-s", str(BENCH / "soak.lua")),
        f"http://127.0.0.1:{port}/",
    ]
    completed = subprocess.run(command, env=env, capture_output=True, text=True, check=False)  # noqa: S603
    if completed.returncode != 0:
        sys.exit(f"wrk failed ({completed.returncode}):\n{completed.stdout}\n{completed.stderr}")
    print(completed.stdout, flush=True)
    result: dict[str, Any] = json.loads(output.read_text())
    return result


def database_facts(url: str, prefix: str) -> tuple[set[str], dict[str, Any]]:
    """The usernames this run registered, and the MariaDB settings that decide durability."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            stored = set(
                connection.execute(
                    sa.text("SELECT username FROM `user` WHERE username LIKE :p"),
                    {"p": f"{prefix}%"},
                ).scalars()
            )
            version, flush, sync_binlog, log_bin = connection.exec_driver_sql(
                "SELECT VERSION(), @@innodb_flush_log_at_trx_commit, @@sync_binlog, @@log_bin"
            ).one()
    finally:
        engine.dispose()
    settings = {
        "version": version,
        "innodb_flush_log_at_trx_commit": int(flush),
        "sync_binlog": int(sync_binlog),
        "log_bin": bool(log_bin),
    }
    return stored, settings


def server_side(log: str) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """From the server's log: per kind, its own count, statuses and latency (the time the app
    took, without queueing in the server or the network); and every line above INFO."""
    durations: dict[str, list[float]] = {}
    statuses: dict[str, dict[str, int]] = {}
    problems = []
    for line in log.splitlines():
        if not line.startswith("{"):
            if "Traceback" in line or "[ERROR]" in line or "[CRITICAL]" in line:
                problems.append(line)
            continue
        entry = json.loads(line)
        if entry.get("level") not in {"INFO", "DEBUG"}:
            problems.append(line)
        request_id = str(entry.get("request_id") or "")
        if entry.get("logger") != "userhub.access" or not request_id.startswith("soak:"):
            continue
        kind = request_id.split(":")[1]
        durations.setdefault(kind, []).append(entry["duration_ms"])
        by_status = statuses.setdefault(kind, {})
        status = f"{entry['status'] // 100}xx"
        by_status[status] = by_status.get(status, 0) + 1
    table = {}
    for kind, values in sorted(durations.items()):
        quantiles = statistics.quantiles(values, n=100) if len(values) > 1 else values * 99
        table[kind] = {
            "logged": len(values),
            "status_classes": statuses[kind],
            "app_p50_ms": round(quantiles[49], 2),
            "app_p99_ms": round(quantiles[98], 2),
        }
    return table, problems


def log_excerpts(log: str, limit: int = 3, lines: int = 25) -> list[str]:
    """The first ``limit`` problems of the server's log that are not JSON lines (the server's
    own errors, tracebacks), each with the lines after it."""
    all_lines = log.splitlines()
    found = []
    for i, line in enumerate(all_lines):
        if not line.startswith("{") and ("[ERROR]" in line or "[CRITICAL]" in line):
            found.append("\n".join(all_lines[i : i + lines]))
            if len(found) == limit:
                break
    return found


def by_kind(counts: dict[str, int]) -> dict[str, dict[str, int]]:
    """``{"register 2xx": 5}`` (what soak.lua can hand back) as ``{"register": {"2xx": 5}}``."""
    table: dict[str, dict[str, int]] = {}
    for key, count in sorted(counts.items()):
        kind, status_class = key.rsplit(" ", 1)
        table.setdefault(kind, {})[status_class] = count
    return table


def worker_memory(pid: int) -> list[float]:
    return sorted(round(m, 1) for p in worker_pids(pid) if (m := rss_mb(p)) is not None)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument(
        "--connections", type=int, default=256, help="256 (make soak); 64: the earlier soak"
    )
    parser.add_argument("--wrk-threads", type=int, default=1)
    parser.add_argument("--mysql-url", default=DEFAULT_MYSQL)
    parser.add_argument("--output", default=str(RESULTS / "soak.json"))
    parser.add_argument("--prefix", default=f"sk{secrets.token_hex(2)}", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed: apt-get install wrk (make soak does this)")

    with tempfile.TemporaryDirectory(prefix="userhub-soak-") as tmp, ExitStack() as stack:
        folder = Path(tmp)
        url = prepare_database("mysql", args.mysql_url, folder)
        port = free_port()
        log_path = folder / "server.log"
        command = [str(BIN / "userhub"), "serve", "--port", str(port)]
        env = userhub_env(url, folder / "instance-mysql", limits=False)
        process = stack.enter_context(running(command, env, log_path, BENCH))
        wait_until_up(port, "/api/v1/health", process, log_path)
        names, tokens = seed(port, args.prefix)
        rss_before = worker_memory(process.pid)
        started = time.time()
        raw = run_wrk(port, args, names, tokens, folder / "wrk.json")
        rss_after = worker_memory(process.pid)
        workers_alive = len(worker_pids(process.pid))
        stack.close()  # stop the server, so every log line is written
        log = log_path.read_text(errors="replace")
        exit_code = process.returncode
    stored, mariadb = database_facts(url, args.prefix)
    stored -= set(names)

    counts = by_kind(raw["counts"])
    app, log_problems = server_side(log)
    registered = set(raw["registered"])
    missing = sorted(registered - stored)
    five_xx = sum(c.get("5xx", 0) for c in counts.values())
    socket_errors = {
        "connect": raw["connect_errors"],
        "read": raw["read_errors"],
        "write": raw["write_errors"],
        "timeout": raw["timeouts"],
    }
    seconds = raw["duration_us"] / 1e6
    failures = []
    if five_xx:
        failures.append(f"{five_xx} responses were 5xx")
    if any(socket_errors.values()):
        failures.append(f"socket errors: {socket_errors}")
    if missing:
        failures.append(f"{len(missing)} registrations answered 201 are not stored: {missing[:5]}")
    if log_problems:
        failures.append(f"{len(log_problems)} log lines above INFO, first: {log_problems[0]}")
    if exit_code != 0:
        failures.append(f"the server exited with {exit_code} on SIGTERM")
    if sum(counts.get("untagged", {}).values()):
        failures.append("responses without the X-Request-ID they were sent with")

    document = {
        "meta": {
            "date": datetime.fromtimestamp(started, UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "command": "make soak",
            "commit": _git_commit(),
            "cores": available_cores(),
            "cpu": cpu_model(),
            "python": platform.python_version(),
            "server": "userhub serve (granian), production, default workers and threads",
            "database": mariadb,
            "seconds": args.seconds,
            "connections": args.connections,
            "wrk_threads": args.wrk_threads,
            "wrk_timeout": REQUEST_TIMEOUT,
            "seeded_users": SEED_USERS,
        },
        "passed": not failures,
        "failures": failures,
        "requests": raw["requests"],
        "duration_s": round(seconds, 2),
        "requests_per_second": round(raw["requests"] / seconds, 1),
        "latency_ms": {
            key: round(raw[f"{key}_us"] / 1000, 2) for key in ("p50", "p90", "p99", "max", "mean")
        },
        "socket_errors": socket_errors,
        "status_5xx": five_xx,
        "by_kind": {
            kind: {
                "responses": sum(classes.values()),
                "status_classes": classes,
                **{k: v for k, v in app.get(kind, {}).items() if k != "status_classes"},
            }
            for kind, classes in counts.items()
        },
        "registrations": {
            "answered_201": len(registered),
            "stored_with_this_run_prefix": len(stored),
            "answered_201_but_missing": len(missing),
        },
        "workers": {
            "alive_at_end": workers_alive,
            "rss_mb_before": rss_before,
            "rss_mb_after": rss_after,
        },
        "server_log_lines_above_info": len(log_problems),
        "server_log_problems": log_excerpts(log),  # the first ones, for a diagnosis
    }
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    print(json.dumps({k: v for k, v in document.items() if k != "meta"}, indent=2))
    print(f"wrote {output}")
    if failures:
        sys.exit("soak FAILED: " + "; ".join(failures))
    print("soak passed: zero 5xx, zero socket errors, every acknowledged registration stored")


if __name__ == "__main__":
    main()
