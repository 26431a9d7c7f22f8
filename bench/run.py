"""``make bench``: userhub against plain Flask and a raw WSGI app, under the same server.

Starts everything it needs (the servers, on fresh databases), loads each with wrk at 32
connections, and writes:

- ``bench/results/bench.json``: every run (throughput, p50/p90/p99 latency, errors, worker RSS),
  the medians over the rounds, the machine, and each target met or missed;
- ``bench/results/bench.png``: throughput and p99 latency per scenario;
- the table between the ``bench:start``/``bench:end`` markers in docs/performance.md.

What runs (all with the same worker and thread count, one worker per core by default):

- userhub (``userhub serve``, production mode: sessions, CSRF, access log and every check on)
  on SQLite and on MariaDB, for the seven scenarios in ``SCENARIOS``;
- ``bench/plain_flask.py`` (the framework alone) and ``bench/raw_wsgi.py`` (the limit) for
  the two tutorial GET routes, under granian like userhub;
- for two GET scenarios: userhub under gunicorn (``userhub serve --server gunicorn``), the
  measurement behind ``userhub serve``'s choice of granian, and userhub under granian's WSGI
  interface without ``userhub serve``'s front (``cli/front.py``), what the front costs.

The hashing-bound scenarios run on a server started with ``USERHUB_RATELIMIT_ENABLED=false``
(with the limits on, wrk would measure 429s after the 30th log-in or registration a minute);
their bound is cores / CPU time of one hash. The other scenarios run with the limits on.
Runs are interleaved (every target for one scenario, then the next, for each round) and the
tables show medians, because these machines are shared and noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from machine import cpu_model

from userhub.config import available_cores

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"
BIN = Path(sys.executable).parent
PERFORMANCE_DOC = ROOT / "docs" / "performance.md"
TABLE_START, TABLE_END = "<!-- bench:start -->", "<!-- bench:end -->"
DEFAULT_MYSQL = "mysql+pymysql://root@127.0.0.1:3306/userhub_bench_load?charset=utf8mb4"
BENCH_USER, BENCH_PASSWORD = "bench", "bench-password-1"


@dataclass(frozen=True)
class Scenario:
    name: str
    path: str
    method: str = "GET"
    body: str | None = None  # what wrk.lua generates: register, display_name, credentials
    token: bool = False  # send the bench user's Bearer token
    tutorial_get: bool = False  # also measured on plain Flask and raw WSGI
    hashing: bool = False  # bound by argon2id: compared with the hashing bound
    read: bool = False  # a read: p99 and RSS targets apply


SCENARIOS = (
    Scenario("GET /response_json", "/response_json", tutorial_get=True, read=True),
    Scenario(
        "GET /test_get", "/test_get?user_name=%E5%BC%A0%E4%B8%89", tutorial_get=True, read=True
    ),
    Scenario("GET / (template)", "/", read=True),
    Scenario("GET /api/v1/users/me", "/api/v1/users/me", token=True, read=True),
    Scenario("PATCH /api/v1/users/me", "/api/v1/users/me", "PATCH", "display_name", token=True),
    Scenario("POST /save_data_to_mysql", "/save_data_to_mysql", "POST", "register", hashing=True),
    Scenario("POST /api/v1/tokens", "/api/v1/tokens", "POST", "credentials", hashing=True),
)
SERVER_COMPARISON = ("GET /response_json", "GET /api/v1/users/me")


@dataclass
class Target:
    """One server under test: what it is, where it listens, what it can answer."""

    label: str
    app: str  # userhub, plain Flask, raw WSGI
    server: str
    backend: str | None
    port: int
    scenarios: tuple[str, ...]
    token: str | None = None
    pid: int | None = None
    log: Path | None = None


@dataclass
class Run:
    target: str
    app: str
    server: str
    scenario: str
    round: int
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    requests: int
    errors: int
    non_2xx: int
    rss_mb: list[float] = field(default_factory=list)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_up(port: int, path: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"server on port {port} exited:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2):  # noqa: S310
                return
        except OSError:
            time.sleep(0.2)
    sys.exit(f"server on port {port} did not answer {path} within 60 s")


def worker_pids(parent: int) -> list[int]:
    """Every descendant of ``parent`` (the server's workers), from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, queue = [], [parent]
    while queue:
        for child in children.get(queue.pop(), []):
            found.append(child)
            queue.append(child)
    return found


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


@contextmanager
def running(
    command: list[str], env: dict[str, str], log: Path, cwd: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """A server process for the duration of the block, stopped with SIGTERM (then SIGKILL)."""
    with log.open("wb") as out:
        process = subprocess.Popen(  # noqa: S603
            command, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield process
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def userhub_env(database_url: str, instance: Path, limits: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("USERHUB_")}
    env.update(
        USERHUB_ENV="production",
        USERHUB_SECRET_KEY=secrets.token_hex(32),
        USERHUB_ALLOWED_HOSTS="127.0.0.1",  # wrk and the soak reach the server there
        USERHUB_DATABASE_URL=database_url,
        USERHUB_INSTANCE_PATH=str(instance),
        USERHUB_RATELIMIT_ENABLED="true" if limits else "false",
    )
    return env


def prepare_database(backend: str, mysql_url: str, folder: Path) -> str:
    """A fresh, migrated database with the bench user in it; its URL."""
    if backend == "sqlite":
        url = f"sqlite:///{folder / 'bench.sqlite3'}"
    else:
        import sqlalchemy as sa
        from sqlalchemy.engine import make_url

        parsed = make_url(mysql_url)
        name = parsed.database or ""
        if not name.isidentifier() or name in {"test", "mysql"}:
            sys.exit(f"refusing to recreate database {name!r}: give the bench its own")
        server = sa.create_engine(parsed.set(database=""))
        with server.begin() as connection:
            connection.exec_driver_sql(f"DROP DATABASE IF EXISTS `{name}`")
            connection.exec_driver_sql(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        server.dispose()
        url = mysql_url
    env = userhub_env(url, folder / f"instance-{backend}", limits=True)
    flask = [str(BIN / "flask"), "--app", "userhub"]
    subprocess.run([*flask, "db", "upgrade"], env=env, check=True, capture_output=True)  # noqa: S603
    subprocess.run(  # noqa: S603
        [*flask, "create-admin", "--username", BENCH_USER, "--password-stdin"],
        input=BENCH_PASSWORD + "\n",
        text=True,
        env=env,
        check=True,
        capture_output=True,
    )
    return url


def issue_token(port: int) -> str:
    request = urllib.request.Request(  # noqa: S310
        f"http://127.0.0.1:{port}/api/v1/tokens",
        data=json.dumps({"username": BENCH_USER, "password": BENCH_PASSWORD}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        token: str = json.load(response)["token"]
        return token


def wrk(target: Target, scenario: Scenario, seconds: float, connections: int) -> dict[str, Any]:
    env = dict(os.environ, BENCH_METHOD=scenario.method, BENCH_PREFIX=secrets.token_hex(3))
    if scenario.body:
        env.update(BENCH_BODY=scenario.body, BENCH_USER=BENCH_USER, BENCH_PASSWORD=BENCH_PASSWORD)
    if scenario.token and target.token:
        env["BENCH_TOKEN"] = target.token
    command = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{seconds:g}s",
        "--timeout",
        "10s",
        "-s",
        str(BENCH / "wrk.lua"),
        f"http://127.0.0.1:{target.port}{scenario.path}",
    ]
    output = subprocess.run(command, env=env, check=True, capture_output=True, text=True).stdout  # noqa: S603
    line = next(x for x in output.splitlines() if x.startswith("BENCH_JSON "))
    result: dict[str, Any] = json.loads(line.removeprefix("BENCH_JSON "))
    return result


def measure(
    target: Target, scenario: Scenario, round_: int, seconds: float, connections: int
) -> Run:
    wrk(target, scenario, 1, connections)  # warm-up: pools, caches, lazy imports
    raw = wrk(target, scenario, seconds, connections)
    rss = [m for pid in worker_pids(target.pid or 0) if (m := rss_mb(pid)) is not None]
    errors = raw["connect_errors"] + raw["read_errors"] + raw["write_errors"] + raw["timeouts"]
    return Run(
        target=target.label,
        app=target.app,
        server=target.server,
        scenario=scenario.name,
        round=round_,
        rps=raw["requests"] / (raw["duration_us"] / 1e6),
        p50_ms=raw["p50_us"] / 1000,
        p90_ms=raw["p90_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        max_ms=raw["max_us"] / 1000,
        requests=raw["requests"],
        errors=errors,
        non_2xx=raw["non_2xx"],
        rss_mb=[round(m, 1) for m in rss],
    )


def hash_cpu_ms() -> float:
    """CPU time of one argon2id hash at userhub's configured parameters (median of 15)."""
    from userhub.config import load_config, read_environment
    from userhub.services.passwords import Passwords

    config = load_config(read_environment())
    hasher = Passwords(
        config["ARGON2_TIME_COST"], config["ARGON2_MEMORY_KIB"], config["ARGON2_PARALLELISM"]
    )
    hasher.hash("warm-up")
    samples = []
    for _ in range(15):
        start = time.process_time()
        hasher.hash(BENCH_PASSWORD)
        samples.append(time.process_time() - start)
    return statistics.median(samples) * 1000


def start_targets(stack: ExitStack, args: argparse.Namespace, folder: Path) -> list[Target]:
    """Every server, started and answering. Each backend has two userhub servers: one with
    the rate limits on, and one with them off for the hashing-bound scenarios."""
    targets: list[Target] = []
    common = ["--workers", str(args.workers), "--threads", str(args.threads)]
    tutorial = tuple(s.name for s in SCENARIOS if s.tutorial_get)

    def start(target: Target, command: list[str], env: dict[str, str], probe: str) -> Target:
        target.log = folder / f"{target.label.replace(' ', '_').replace('/', '_')}.log"
        process = stack.enter_context(running(command, env, target.log, BENCH))
        target.pid = process.pid
        wait_until_up(target.port, probe, process, target.log)
        return target

    for backend in args.backends:
        url = prepare_database(backend, args.mysql_url, folder)
        instance = folder / f"instance-{backend}"
        for limits in (True, False):
            port = free_port()
            label = f"userhub {backend}" + ("" if limits else " (limits off)")
            names = tuple(s.name for s in SCENARIOS if s.hashing != limits)
            target = Target(label, "userhub", "granian", backend, port, names)
            env = userhub_env(url, instance, limits)
            command = [str(BIN / "userhub"), "serve", "--port", str(port), *common]
            start(target, command, env, "/api/v1/health")
            target.token = issue_token(port)
            targets.append(target)
        if backend == "sqlite" and args.compare_servers:
            comparisons = {
                "gunicorn": [str(BIN / "userhub"), "serve", "--server", "gunicorn", *common],
                # The app alone under granian's WSGI threads: no front receiving the bodies.
                "granian WSGI, no front": [
                    *(str(BIN / "granian"), "--interface", "wsgi", "--factory", "--no-access-log"),
                    *("--workers", str(args.workers), "--blocking-threads", str(args.threads)),
                    "userhub:create_app",
                ],
            }
            for server, command in comparisons.items():
                port = free_port()
                target = Target(
                    f"userhub sqlite, {server}", "userhub", server, backend, port, SERVER_COMPARISON
                )
                start(
                    target,
                    [*command, "--port", str(port)],
                    userhub_env(url, instance, True),
                    "/api/v1/health",
                )
                target.token = issue_token(port)
                targets.append(target)
    for module, app in (("plain_flask", "plain Flask"), ("raw_wsgi", "raw WSGI")):
        port = free_port()
        command = [
            *(str(BIN / "granian"), "--interface", "wsgi", "--port", str(port)),
            *("--workers", str(args.workers), "--blocking-threads", str(args.threads)),
            f"{module}:app",
        ]
        target = Target(app, app, "granian", None, port, tutorial)
        start(target, command, dict(os.environ), "/response_json")
        targets.append(target)
    return targets


def median_table(runs: list[Run]) -> list[dict[str, Any]]:
    """One row per (scenario, target): medians over the rounds."""
    rows = []
    keys = dict.fromkeys((r.scenario, r.target) for r in runs)
    for scenario, target in keys:
        mine = [r for r in runs if r.scenario == scenario and r.target == target]
        rows.append(
            {
                "scenario": scenario,
                "target": target,
                "app": mine[0].app,
                "server": mine[0].server,
                "rps": round(statistics.median(r.rps for r in mine)),
                "p50_ms": round(statistics.median(r.p50_ms for r in mine), 2),
                "p99_ms": round(statistics.median(r.p99_ms for r in mine), 2),
                "errors": sum(r.errors for r in mine),
                "non_2xx": sum(r.non_2xx for r in mine),
                "rss_mb_max": max((max(r.rss_mb, default=0) for r in mine), default=0),
                "rounds": len(mine),
            }
        )
    return rows


def evaluate_targets(
    rows: list[dict[str, Any]], hashing_bound: float, import_result: dict[str, Any] | None
) -> list[dict[str, Any]]:
    """The issue's targets, each with the measured value and whether it was met."""

    def rps(scenario: str, target: str) -> float | None:
        for row in rows:
            if row["scenario"] == scenario and row["target"] == target:
                return float(row["rps"])
        return None

    checks: list[dict[str, Any]] = []

    def check(name: str, value: float | None, goal: float, higher: bool = True) -> None:
        if value is None:
            return
        met = value >= goal if higher else value <= goal
        checks.append({"target": name, "value": round(value, 3), "goal": goal, "met": met})

    userhub = [r for r in rows if r["app"] == "userhub" and r["server"] == "granian"]
    for row in userhub:
        plain = rps(row["scenario"], "plain Flask")
        if plain:
            check(f"{row['scenario']}: {row['target']} / plain Flask", row["rps"] / plain, 0.9)
    check(
        "GET /api/v1/users/me on MariaDB, req/s", rps("GET /api/v1/users/me", "userhub mysql"), 3000
    )
    check(
        "PATCH /api/v1/users/me on MariaDB, req/s",
        rps("PATCH /api/v1/users/me", "userhub mysql"),
        1000,
    )
    hashing = {s.name for s in SCENARIOS if s.hashing}
    reads = {s.name for s in SCENARIOS if s.read}
    for row in userhub:
        if row["scenario"] in hashing:
            ratio = row["rps"] / hashing_bound
            check(f"{row['scenario']}: {row['target']} / hashing bound", ratio, 0.9)
        if row["scenario"] in reads:
            check(f"{row['scenario']}: {row['target']} p99 ms", row["p99_ms"], 20, higher=False)
            rss = row["rss_mb_max"]
            check(f"{row['scenario']}: {row['target']} RSS MB/worker", rss, 100, higher=False)
    for backend, result in (import_result or {}).items():  # bench/import_users.py's results
        check(f"import-users of 10,000 ({backend}) / hashing bound", result["ratio_to_bound"], 0.85)
    return checks


def draw_chart(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scenarios = list(dict.fromkeys(r["scenario"] for r in rows))
    targets = list(dict.fromkeys(r["target"] for r in rows))
    fig, (ax_rps, ax_p99) = plt.subplots(1, 2, figsize=(15, 7), sharey=True)
    height = 0.8 / len(targets)
    colors = plt.get_cmap("tab10")
    for t, target in enumerate(targets):
        ys, rps, p99 = [], [], []
        for s, scenario in enumerate(scenarios):
            row = next(
                (r for r in rows if r["scenario"] == scenario and r["target"] == target), None
            )
            if row:
                ys.append(s + t * height - 0.4 + height / 2)
                rps.append(row["rps"])
                p99.append(row["p99_ms"])
        ax_rps.barh(ys, rps, height=height, label=target, color=colors(t))
        ax_p99.barh(ys, p99, height=height, color=colors(t))
    ax_rps.set_yticks(range(len(scenarios)), scenarios)
    ax_rps.invert_yaxis()
    ax_rps.set_xscale("log")
    ax_rps.set_xlabel("requests per second (log scale, higher is better)")
    ax_p99.set_xscale("log")
    ax_p99.set_xlabel("p99 latency, ms (log scale, lower is better)")
    ax_p99.axvline(20, color="grey", linestyle="--", linewidth=1)
    ax_rps.legend(loc="lower right", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def markdown_table(
    rows: list[dict[str, Any]], checks: list[dict[str, Any]], meta: dict[str, Any]
) -> str:
    lines = [
        f"Measured {meta['date']} on {meta['cores']} cores ({meta['cpu']}), "
        f"{meta['workers']} workers x {meta['threads']} threads, wrk -t1 -c{meta['connections']}, "
        f"{meta['seconds']} s per run, median of {meta['rounds']} interleaved rounds; "
        f"one argon2id hash = {meta['hash_cpu_ms']:.1f} ms CPU, so the hashing bound is "
        f"{meta['hashing_bound']:.0f}/s. Command: `{meta['command']}`.",
        "",
        "| scenario | target | req/s | p50 ms | p99 ms | errors | non-2xx | RSS MB/worker |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['scenario']} | {r['target']} | {r['rps']:,} | {r['p50_ms']} | {r['p99_ms']} "
            f"| {r['errors']} | {r['non_2xx']} | {r['rss_mb_max']:.0f} |"
        )
    if meta.get("import"):
        lines += [
            "",
            "`flask --app userhub import-users`, 10,000 generated users (`bench/import_users.py`):",
            "",
            "| database | seconds | users/s | one hash (CPU) | hashing bound | ratio | run again |",
            "|---|---:|---:|---:|---:|---:|---|",
        ]
        for backend, r in meta["import"].items():
            again = r["second_run"]
            lines.append(
                f"| {backend} | {r['seconds']} | {r['users_per_second']} | {r['hash_cpu_ms']} ms "
                f"| {r['hashing_bound_per_second']}/s | {r['ratio_to_bound']} "
                f"| {again['created']} created, {again['skipped']:,} skipped in "
                f"{again['seconds']} s |"
            )
    lines += ["", "| target | measured | goal | met |", "|---|---:|---:|:-:|"]
    for c in checks:
        lines.append(
            f"| {c['target']} | {c['value']} | {c['goal']} | {'yes' if c['met'] else '**no**'} |"
        )
    return "\n".join(lines)


def update_doc(table: str) -> None:
    text = PERFORMANCE_DOC.read_text(encoding="utf-8")
    if TABLE_START not in text:
        print("docs/performance.md has no bench markers; table not written there")
        return
    head, rest = text.split(TABLE_START, 1)
    _, tail = rest.split(TABLE_END, 1)
    PERFORMANCE_DOC.write_text(f"{head}{TABLE_START}\n{table}\n{TABLE_END}{tail}", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=8, help="length of each measured run")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median)")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, default=available_cores())
    parser.add_argument("--threads", type=int, default=4, help="threads per worker")
    parser.add_argument("--backends", default="sqlite,mysql", type=lambda v: v.split(","))
    parser.add_argument("--mysql-url", default=DEFAULT_MYSQL)
    parser.add_argument("--only", help="run only scenarios whose name contains this")
    parser.add_argument("--no-server-comparison", dest="compare_servers", action="store_false")
    parser.add_argument(
        "--no-doc",
        "--no-readme",
        dest="doc",
        action="store_false",
        help="leave the table in docs/performance.md as it is",
    )
    parser.add_argument("--output", default=str(RESULTS / "bench.json"))
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed: apt-get install wrk (make bench does this)")

    cores = available_cores()
    hash_ms = hash_cpu_ms()
    hashing_bound = cores / (hash_ms / 1000)
    scenarios = [s for s in SCENARIOS if not args.only or args.only in s.name]
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="userhub-bench-") as tmp, ExitStack() as stack:
        folder = Path(tmp)
        targets = start_targets(stack, args, folder)
        for round_ in range(1, args.rounds + 1):
            for scenario in scenarios:
                for target in targets:
                    if scenario.name not in target.scenarios:
                        continue
                    run = measure(target, scenario, round_, args.seconds, args.connections)
                    runs.append(run)
                    print(
                        f"round {round_} {scenario.name:28} {target.label:34} "
                        f"{run.rps:9.0f} req/s  p99 {run.p99_ms:7.2f} ms  "
                        f"errors {run.errors} non-2xx {run.non_2xx}  rss {run.rss_mb}",
                        flush=True,
                    )
        log_lines = {
            t.label: sum(1 for line in t.log.read_text().splitlines() if '"userhub.access"' in line)
            for t in targets
            if t.log and t.app == "userhub"
        }

    import_file = RESULTS / "import.json"
    import_result = json.loads(import_file.read_text()) if import_file.exists() else None
    rows = median_table(runs)
    checks = evaluate_targets(rows, hashing_bound, import_result)
    meta = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "cores": cores,
        "cpu": cpu_model(),
        "python": platform.python_version(),
        "workers": args.workers,
        "threads": args.threads,
        "connections": args.connections,
        "seconds": args.seconds,
        "rounds": args.rounds,
        "hash_cpu_ms": round(hash_ms, 2),
        "hashing_bound": round(hashing_bound, 1),
        "command": "make bench",
        "commit": _git_commit(),
    }
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "meta": meta,
        "medians": rows,
        "targets": checks,
        "access_log_lines": log_lines,
        "import": import_result,
        "runs": [asdict(r) for r in runs],
    }
    output.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    draw_chart(rows, output.with_suffix(".png"), f"userhub bench, {meta['date']}, {cores} cores")
    table = markdown_table(rows, checks, {**meta, "import": import_result})
    if args.doc:
        update_doc(table)
    print(table)
    print(f"\nwrote {output}, {output.with_suffix('.png')}")


def _git_commit() -> str:
    result = subprocess.run(  # noqa: S603
        ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip()


if __name__ == "__main__":
    main()
