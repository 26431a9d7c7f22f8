"""``make bench``: userhub against plain Flask and a raw WSGI app, under the same server.

Starts everything it needs (the servers, on fresh databases), loads each with wrk at 32
connections, and writes:

- ``bench/results/bench.json``: every run (throughput, p50/p90/p99 latency, errors, worker RSS),
  the medians over the rounds, the machine, and each target met or missed;
- ``bench/results/bench.png``: throughput and p99 latency per scenario, and userhub on
  MariaDB divided by each reference (plain Flask, raw WSGI, userhub before, the two peers);
- the table between the ``bench:start``/``bench:end`` markers in docs/performance.md.

What runs (all with the same worker and thread count, one worker per core by default):

- userhub (``userhub serve``, production mode: sessions, CSRF, access log and every check on)
  on SQLite and on MariaDB, for the eight scenarios in ``SCENARIOS`` (``GET /account`` with
  the session cookie of a browser that logged in through the form);
- ``bench/plain_flask.py`` (the framework alone) and ``bench/raw_wsgi.py`` (the limit) for
  the two tutorial GET routes, under granian like userhub;
- for two GET scenarios: userhub under gunicorn (``userhub serve --server gunicorn``), the
  measurement behind ``userhub serve``'s choice of granian, and userhub under granian's WSGI
  interface without ``userhub serve``'s front (``cli/front.py``), what the front costs;
- userhub as it was before (``--baseline REF``, repeatable; by default each of ``BASELINES``:
  main before issue 18 and main before server-side sessions), each from a temporary ``git
  worktree`` of REF served by this venv (``PYTHONPATH`` at its ``src``) on a MariaDB database
  of its own, for the tutorial GETs, ``/``, ``GET /api/v1/users/me`` and a logged-in
  ``GET /account``;
- two reference apps that do what userhub's API does, each built as its own docs show
  (``bench/peers/``): fastapi-users (database access-token strategy, uvicorn, 2 workers,
  aiomysql) and Flask-Security-Too (token authentication, granian WSGI, 2 workers x 4 threads,
  PyMySQL), both on MariaDB, for the current-user read and the log-in (one password check and
  one token issued). fastapi-users runs from a venv of its own, ``.venv/fastapi-users``
  (``make bench`` builds it; see ``bench/peers/fastapi_users_app.py`` for why).

The hashing-bound scenarios run on a server started with ``USERHUB_RATELIMIT_ENABLED=false``
(with the limits on, wrk would measure 429s after the 30th log-in or registration a minute);
their bound is cores / CPU time of one hash. The other scenarios run with the limits on.
Runs are interleaved (every target for one scenario, then the next, for each round) and the
tables show medians, because these machines are shared and noisy.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import re
import secrets
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
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
PEER_EMAIL = "bench@example.com"  # the peers identify users by e-mail address
PEERS = BENCH / "peers"
FASTAPI_USERS_VENV = BIN.parent / "fastapi-users"  # inside the venv: `make clean` removes it
ME, LOGIN = "GET /api/v1/users/me", "POST /api/v1/tokens"
TEMPLATE, ACCOUNT = "GET / (template)", "GET /account (session)"


@dataclass(frozen=True)
class Scenario:
    name: str
    path: str
    method: str = "GET"
    body: str | None = None  # what wrk.lua generates: register, display_name, credentials
    token: bool = False  # send the bench user's Bearer token
    cookie: bool = False  # send the session cookie of the bench user's browser log-in
    tutorial_get: bool = False  # also measured on plain Flask and raw WSGI
    hashing: bool = False  # bound by argon2id: compared with the hashing bound
    read: bool = False  # a read: p99 and RSS targets apply


SCENARIOS = (
    Scenario("GET /response_json", "/response_json", tutorial_get=True, read=True),
    Scenario(
        "GET /test_get", "/test_get?user_name=%E5%BC%A0%E4%B8%89", tutorial_get=True, read=True
    ),
    Scenario(TEMPLATE, "/", read=True),
    Scenario(ME, "/api/v1/users/me", token=True, read=True),
    Scenario(ACCOUNT, "/account", cookie=True, read=True),
    Scenario("PATCH /api/v1/users/me", "/api/v1/users/me", "PATCH", "display_name", token=True),
    Scenario("POST /save_data_to_mysql", "/save_data_to_mysql", "POST", "register", hashing=True),
    Scenario("POST /api/v1/tokens", "/api/v1/tokens", "POST", "credentials", hashing=True),
)
SERVER_COMPARISON = ("GET /response_json", "GET /api/v1/users/me")
BASELINE_SCENARIOS = ("GET /response_json", "GET /test_get", TEMPLATE, ME, ACCOUNT)
# "Not slower": a ratio to the baseline of at least this. The rounds of one run scatter by
# about as much on these shared machines (docs/performance.md, "server-side sessions").
NOT_SLOWER = 0.95


@dataclass(frozen=True)
class Baseline:
    """userhub as it was at ``ref``, served side by side with this checkout in the same run."""

    ref: str
    before: str  # what it is the state before, for the tables
    goals: tuple[tuple[str, float], ...] = ()  # (scenario, least ratio now / before)

    @property
    def label(self) -> str:
        return f"userhub before ({self.ref})"


BASELINES = (
    Baseline("62ac53b", "main before issue 18", ((ME, 1.3),)),
    Baseline(
        "a219d54",
        "main before server-side sessions",
        tuple((name, NOT_SLOWER) for name in BASELINE_SCENARIOS),
    ),
)


def baseline_for(ref: str) -> Baseline:
    """A known baseline by its ref, or another commit, without goals. This checkout's own
    commit is the A/A control: the same code as "userhub mysql", so its ratios are the noise."""
    known = {b.ref: b for b in BASELINES}
    if ref in known:
        return known[ref]
    same = _git("rev-parse", "--verify", "--quiet", ref) == _git("rev-parse", "HEAD")
    return Baseline(ref, "this commit again: the A/A control" if same else ref)


@dataclass(frozen=True)
class Request:
    """How a reference app is asked for a scenario, where it differs from userhub's API."""

    path: str
    method: str = "GET"
    body: str | None = None  # a fixed body: the credentials of a log-in
    content_type: str = "application/json"
    token_header: str = "Authorization"  # noqa: S105 (a header's name, not a secret)
    token_prefix: str = "Bearer "  # noqa: S105


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
    cookie: str | None = None  # the bench user's session cookie, for ACCOUNT
    pid: int | None = None
    log: Path | None = None
    requests: dict[str, Request] = field(default_factory=dict)  # the peers' own routes
    password_hash: str | None = None  # the bench user's stored hash: what the app really uses


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
    cpu_ms_per_request: float | None = None  # the server's processes, user + system
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


def cpu_seconds(parent: int) -> float:
    """User + system CPU time of ``parent`` and its descendants alive now, from /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in (parent, *worker_pids(parent)):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return total


def settle(pid: int, timeout: float = 30) -> float:
    """Wait until the server's processes are idle (less than 5% of a core for 0.2 s), then
    their CPU seconds: a run starts and ends with no request of another still being worked on."""
    deadline = time.monotonic() + timeout
    last = cpu_seconds(pid)
    while time.monotonic() < deadline:
        time.sleep(0.2)
        now = cpu_seconds(pid)
        if now - last < 0.01:
            return now
        last = now
    return last


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


def userhub_env(
    database_url: str, instance: Path, limits: bool, source: Path | None = None
) -> dict[str, str]:
    """The environment of a userhub server; ``source``: another checkout's ``src`` to run
    (the baseline) instead of the installed userhub."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("USERHUB_")}
    if source is not None:
        env["PYTHONPATH"] = str(source)
    env.update(
        USERHUB_ENV="production",
        USERHUB_SECRET_KEY=secrets.token_hex(32),
        USERHUB_ALLOWED_HOSTS="127.0.0.1",  # wrk and the soak reach the server there
        USERHUB_DATABASE_URL=database_url,
        USERHUB_INSTANCE_PATH=str(instance),
        USERHUB_RATELIMIT_ENABLED="true" if limits else "false",
    )
    return env


def recreate_mysql_database(url: str, name: str | None = None) -> str:
    """Drop and create the database of ``url`` (or ``name`` on its server): its URL, with
    PyMySQL as the driver."""
    import sqlalchemy as sa
    from sqlalchemy.engine import make_url

    parsed = make_url(url).set(drivername="mysql+pymysql")
    if name is not None:
        parsed = parsed.set(database=name)
    name = parsed.database or ""
    if not name.isidentifier() or name in {"test", "mysql", "userhub_test"}:
        sys.exit(f"refusing to recreate database {name!r}: give the bench its own")
    server = sa.create_engine(parsed.set(database=""))
    with server.begin() as connection:
        connection.exec_driver_sql(f"DROP DATABASE IF EXISTS `{name}`")
        connection.exec_driver_sql(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    server.dispose()
    return parsed.render_as_string(hide_password=False)


def prepare_database(
    backend: str,
    mysql_url: str,
    folder: Path,
    source: Path | None = None,
    mysql_name: str | None = None,
) -> str:
    """A fresh, migrated database with the bench user in it; its URL. ``source``: migrate
    with another checkout's userhub (a baseline); ``mysql_name``: instead of the URL's."""
    if backend == "sqlite":
        url = f"sqlite:///{folder / 'bench.sqlite3'}"
    else:
        url = recreate_mysql_database(mysql_url, mysql_name)
    env = userhub_env(url, folder / f"instance-{backend}", limits=True, source=source)
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


def _session_cookie(response: http.client.HTTPResponse, default: str = "") -> str:
    for header in response.headers.get_all("Set-Cookie") or ():
        name, _, rest = header.partition("=")
        if name == "session":
            return rest.split(";", 1)[0]
    return default


Answer = tuple[int, str, str]  # status, body, the session cookie (the one sent if none was set)


def log_in_cookie(port: int) -> str:
    """The session cookie of a browser that logged in as the bench user through the log-in
    form and then opened its account page once (which keeps the page's CSRF token in the
    session): the cookie a logged-in browser sends with every page it opens."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

    def send(method: str, path: str, cookie: str = "", form: str | None = None) -> Answer:
        headers = {"Cookie": f"session={cookie}"} if cookie else {}
        if form is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        connection.request(method, path, form, headers)
        response = connection.getresponse()
        return response.status, response.read().decode(), _session_cookie(response, cookie)

    try:
        _, page, cookie = send("GET", "/login")
        csrf = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)
        if not (cookie and csrf):
            sys.exit(f"no log-in form on port {port}")
        form = {"username": BENCH_USER, "password": BENCH_PASSWORD, "csrf_token": csrf[1]}
        status, _, cookie = send("POST", "/test_post", cookie, urllib.parse.urlencode(form))
        if status != 302:
            sys.exit(f"the bench user's log-in on port {port} answered {status}")
        status, _, cookie = send("GET", "/account", cookie)
        if status != 200:
            sys.exit(f"GET /account on port {port} answered {status} once logged in")
        return cookie
    finally:
        connection.close()


def wrk(
    target: Target,
    scenario: Scenario,
    seconds: float,
    connections: int,
    count_statuses: bool = False,
) -> dict[str, Any]:
    """One wrk run of ``scenario`` against ``target`` (``bench/wrk.lua``), its JSON summary."""
    own = target.requests.get(scenario.name)
    method, path = (own.method, own.path) if own else (scenario.method, scenario.path)
    env = dict(os.environ, BENCH_METHOD=method, BENCH_PREFIX=secrets.token_hex(3))
    if own and own.body:
        env.update(BENCH_STATIC_BODY=own.body, BENCH_CONTENT_TYPE=own.content_type)
    elif scenario.body:
        env.update(BENCH_BODY=scenario.body, BENCH_USER=BENCH_USER, BENCH_PASSWORD=BENCH_PASSWORD)
    if scenario.token and target.token:
        env["BENCH_TOKEN"] = target.token
        if own:
            env.update(BENCH_TOKEN_HEADER=own.token_header, BENCH_TOKEN_PREFIX=own.token_prefix)
    if scenario.cookie and target.cookie:  # the cookie header, as wrk.lua sends a token
        env.update(BENCH_TOKEN=target.cookie, BENCH_TOKEN_HEADER="Cookie")  # noqa: S106
        env["BENCH_TOKEN_PREFIX"] = "session="  # noqa: S105 (a cookie's name)
    if count_statuses:
        env["BENCH_COUNT_STATUSES"] = "1"
    command = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{seconds:g}s",
        "--timeout",
        "10s",
        "-s",
        str(BENCH / "wrk.lua"),
        f"http://127.0.0.1:{target.port}{path}",
    ]
    output = subprocess.run(command, env=env, check=True, capture_output=True, text=True).stdout  # noqa: S603
    line = next(x for x in output.splitlines() if x.startswith("BENCH_JSON "))
    result: dict[str, Any] = json.loads(line.removeprefix("BENCH_JSON "))
    return result


def measure(
    target: Target, scenario: Scenario, round_: int, seconds: float, connections: int
) -> Run:
    wrk(target, scenario, 1, connections)  # warm-up: pools, caches, lazy imports
    cpu_before = settle(target.pid or 0)  # the warm-up's last requests done
    raw = wrk(target, scenario, seconds, connections)
    # wrk leaves one request in flight per connection, which the server still answers: its CPU
    # time until idle is spent on the completed requests and those.
    cpu = settle(target.pid or 0) - cpu_before
    answered = raw["requests"] + connections
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
        cpu_ms_per_request=round(cpu * 1000 / answered, 2) if raw["requests"] else None,
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
    return median_cpu_ms(hasher.hash, 15)


def default_hash_cpu_ms() -> float:
    """CPU time (all threads) of one hash at argon2-cffi's defaults, the peers' (median of 5)."""
    from argon2 import PasswordHasher

    return median_cpu_ms(PasswordHasher().hash, 5)


def median_cpu_ms(hash_password: Callable[[str], object], samples: int) -> float:
    hash_password("warm-up")
    times = []
    for _ in range(samples):
        start = time.process_time()
        hash_password(BENCH_PASSWORD)
        times.append(time.process_time() - start)
    return statistics.median(times) * 1000


def launch(
    stack: ExitStack,
    folder: Path,
    target: Target,
    command: list[str],
    env: dict[str, str],
    probe: str,
    cwd: Path = BENCH,
) -> Target:
    """Start ``target``'s server for the rest of the run and wait until it answers ``probe``."""
    target.log = folder / f"{target.label.translate(str.maketrans(' /()', '____'))}.log"
    process = stack.enter_context(running(command, env, target.log, cwd))
    target.pid = process.pid
    wait_until_up(target.port, probe, process, target.log)
    return target


def stored_hash(url: str, query: str) -> str | None:
    """The bench user's password hash as an app stored it (its parameters are in it)."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            value = connection.exec_driver_sql(query).scalar()
    finally:
        engine.dispose()
    return None if value is None else str(value)


def start_targets(stack: ExitStack, args: argparse.Namespace, folder: Path) -> list[Target]:
    """Every server, started and answering. Each backend has two userhub servers: one with
    the rate limits on, and one with them off for the hashing-bound scenarios."""
    targets: list[Target] = []
    common = ["--workers", str(args.workers), "--threads", str(args.threads)]
    tutorial = tuple(s.name for s in SCENARIOS if s.tutorial_get)
    user_hash = f"SELECT password_hash FROM `user` WHERE username = '{BENCH_USER}'"  # noqa: S608

    def start(target: Target, command: list[str], env: dict[str, str], probe: str) -> Target:
        return launch(stack, folder, target, command, env, probe)

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
            if ACCOUNT in names:
                target.cookie = log_in_cookie(port)
            target.password_hash = stored_hash(url, user_hash)
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
    if "mysql" in args.backends:
        targets += [start_baseline(stack, args, folder, common, b) for b in args.baselines]
    if "mysql" in args.backends and args.peers:
        targets += start_peers(stack, args, folder)
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


def safe_name(ref: str) -> str:
    """``ref`` as part of a folder's or a database's name (``HEAD~1``: ``HEAD_1``)."""
    return re.sub(r"[^0-9A-Za-z]+", "_", ref)


def checkout(stack: ExitStack, ref: str, folder: Path) -> Path:
    """A temporary ``git worktree`` of ``ref`` with its translations compiled, removed (with
    its administrative files) when the run ends."""
    worktree = folder / f"baseline-{safe_name(ref)}"
    git = ["git", "-C", str(ROOT)]
    subprocess.run([*git, "worktree", "add", "--detach", str(worktree), ref], check=True)  # noqa: S603
    stack.callback(
        subprocess.run, [*git, "worktree", "remove", "--force", str(worktree)], check=False
    )
    subprocess.run(  # noqa: S603
        [str(BIN / "pybabel"), "-q", "compile", "-d", str(worktree / "src/userhub/translations")],
        check=True,
    )
    return worktree


def start_baseline(
    stack: ExitStack, args: argparse.Namespace, folder: Path, common: list[str], before: Baseline
) -> Target:
    """userhub as it was at ``before.ref`` (this venv, that checkout's code), on a fresh
    MariaDB database of its own (``--baseline-mysql-url``'s name and the ref), rate limits on
    like "userhub mysql"."""
    from sqlalchemy.engine import make_url

    source = checkout(stack, before.ref, folder) / "src"
    instance = folder / f"instance-baseline-{safe_name(before.ref)}"
    database = f"{make_url(args.baseline_mysql_url).database}_{safe_name(before.ref)}"
    url = prepare_database("mysql", args.baseline_mysql_url, instance, source, database)
    port = free_port()
    target = Target(before.label, "userhub", "granian", "mysql", port, BASELINE_SCENARIOS)
    command = [str(BIN / "userhub"), "serve", "--port", str(port), *common]
    env = userhub_env(url, instance / "instance-mysql", True, source=source)
    launch(stack, folder, target, command, env, "/api/v1/health")
    target.token = issue_token(port)
    target.cookie = log_in_cookie(port)
    return target


def post(port: int, path: str, body: bytes, content_type: str) -> dict[str, Any]:
    request = urllib.request.Request(  # noqa: S310
        f"http://127.0.0.1:{port}{path}",
        data=body,
        headers={"Content-Type": content_type},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        answer: dict[str, Any] = json.load(response)
        return answer


def start_peers(stack: ExitStack, args: argparse.Namespace, folder: Path) -> list[Target]:
    """fastapi-users and Flask-Security-Too (``bench/peers/``), each on a fresh MariaDB
    database with the bench user made by its own code, and a token issued by its own log-in."""
    python = FASTAPI_USERS_VENV / "bin" / "python"
    if not python.exists():
        sys.exit(f"{FASTAPI_USERS_VENV} is missing: `make bench` builds it (or pass --no-peers)")
    secret = secrets.token_hex(32)
    peers = []

    # fastapi-users: uvicorn, 2 workers, aiomysql; log-in is an OAuth2 password form.
    url = recreate_mysql_database(args.mysql_url, "peer_bench_fastapi_users")
    aio_url = url.replace("mysql+pymysql://", "mysql+aiomysql://", 1)
    env = dict(os.environ, PEER_DATABASE_URL=aio_url, PEER_SECRET=secret)
    subprocess.run(  # noqa: S603
        [str(python), "fastapi_users_app.py", "setup", PEER_EMAIL],
        input=BENCH_PASSWORD + "\n",
        text=True,
        env=env,
        cwd=PEERS,
        check=True,
    )
    form = urllib.parse.urlencode({"username": PEER_EMAIL, "password": BENCH_PASSWORD})
    port = free_port()
    target = Target("fastapi-users", "fastapi-users", "uvicorn", "mysql", port, (ME, LOGIN))
    target.requests = {
        ME: Request("/users/me"),
        LOGIN: Request("/auth/login", "POST", form, "application/x-www-form-urlencoded"),
    }
    uvicorn = [str(python), "-m", "uvicorn", "fastapi_users_app:app", "--workers", "2"]
    launch(stack, folder, target, [*uvicorn, "--port", str(port)], env, "/health", PEERS)
    target.token = post(port, "/auth/login", form.encode(), target.requests[LOGIN].content_type)[
        "access_token"
    ]
    target.password_hash = stored_hash(url, "SELECT hashed_password FROM `user`")
    peers.append(target)

    # Flask-Security-Too: granian WSGI, 2 workers x 4 threads, PyMySQL; JSON log-in.
    url = recreate_mysql_database(args.mysql_url, "peer_bench_flask_security")
    env = dict(os.environ, PEER_DATABASE_URL=url, PEER_SECRET=secret)
    subprocess.run(  # noqa: S603
        [str(BIN / "python"), "flask_security_app.py", "setup", PEER_EMAIL],
        input=BENCH_PASSWORD + "\n",
        text=True,
        env=env,
        cwd=PEERS,
        check=True,
    )
    credentials = json.dumps({"email": PEER_EMAIL, "password": BENCH_PASSWORD})
    port = free_port()
    target = Target(
        "Flask-Security-Too", "Flask-Security-Too", "granian", "mysql", port, (ME, LOGIN)
    )
    target.requests = {
        ME: Request("/api/me", token_header="Authentication-Token", token_prefix=""),  # noqa: S106
        LOGIN: Request("/login?include_auth_token", "POST", credentials),
    }
    granian = [
        *(str(BIN / "granian"), "--interface", "wsgi", "--workers", "2"),
        *("--blocking-threads", "4", "--port", str(port), "flask_security_app:app"),
    ]
    launch(stack, folder, target, granian, env, "/health", PEERS)
    login = post(port, "/login?include_auth_token", credentials.encode(), "application/json")
    target.token = login["response"]["user"]["authentication_token"]
    target.password_hash = stored_hash(url, "SELECT password FROM `user`")
    peers.append(target)
    return peers


def rounded_rps(value: float) -> float:
    """Whole requests a second, but tenths below 100 (a peer's log-in runs at 3 to 10)."""
    return round(value) if value >= 100 else round(value, 1)


def median_or_none(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return round(statistics.median(known), 2) if known else None


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
                "rps": rounded_rps(statistics.median(r.rps for r in mine)),
                "p50_ms": round(statistics.median(r.p50_ms for r in mine), 2),
                "p99_ms": round(statistics.median(r.p99_ms for r in mine), 2),
                "cpu_ms_per_request": median_or_none([r.cpu_ms_per_request for r in mine]),
                "errors": sum(r.errors for r in mine),
                "non_2xx": sum(r.non_2xx for r in mine),
                "rss_mb_max": max((max(r.rss_mb, default=0) for r in mine), default=0),
                "rounds": len(mine),
            }
        )
    return rows


def evaluate_targets(
    rows: list[dict[str, Any]],
    hashing_bound: float,
    import_result: dict[str, Any] | None,
    baselines: tuple[Baseline, ...] = (),
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

    userhub = [
        r
        for r in rows
        if r["app"] == "userhub"
        and r["server"] == "granian"
        and r["target"] not in {b.label for b in baselines}
    ]
    for row in userhub:
        plain = rps(row["scenario"], "plain Flask")
        if plain:
            check(f"{row['scenario']}: {row['target']} / plain Flask", row["rps"] / plain, 0.9)
    check(
        "GET /api/v1/users/me on MariaDB, req/s", rps("GET /api/v1/users/me", "userhub mysql"), 3000
    )
    for baseline in baselines:
        for scenario, goal in baseline.goals:
            now, before = rps(scenario, "userhub mysql"), rps(scenario, baseline.label)
            if now and before:
                check(f"{scenario} on MariaDB / {baseline.label}, same run", now / before, goal)
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


REFERENCES = ("plain Flask", "raw WSGI", "fastapi-users", "Flask-Security-Too")


def reference_ratios(
    rows: list[dict[str, Any]], runs: list[Run], baselines: tuple[Baseline, ...]
) -> list[dict[str, Any]]:
    """userhub on MariaDB divided by each reference, per scenario the reference answers: the
    tutorial apps and the baselines against "userhub mysql", the peers' log-in against "userhub
    mysql (limits off)" (the peers have no rate limits either). Besides the ratio of the
    medians, the ratio in each round (the two measured one after the other): their spread is
    the noise."""
    by_key = {(r["scenario"], r["target"]): r for r in rows}
    by_round = {(r.scenario, r.target, r.round): r.rps for r in runs}
    ratios = []
    for (scenario, target), reference in by_key.items():
        if target not in (*REFERENCES, *(b.label for b in baselines)):
            continue
        hashing = any(s.hashing for s in SCENARIOS if s.name == scenario)
        label = "userhub mysql" + (" (limits off)" if hashing else "")
        mine = by_key.get((scenario, label))
        if mine and reference["rps"]:
            ratios.append(
                {
                    "scenario": scenario,
                    "userhub": label,
                    "reference": target,
                    "userhub_rps": mine["rps"],
                    "reference_rps": reference["rps"],
                    "ratio": round(mine["rps"] / reference["rps"], 3),
                    "ratio_per_round": [
                        round(by_round[scenario, label, n] / by_round[scenario, target, n], 3)
                        for n in sorted({r.round for r in runs})
                        if by_round.get((scenario, label, n))
                        and by_round.get((scenario, target, n))
                    ],
                    "userhub_p99_ms": mine["p99_ms"],
                    "reference_p99_ms": reference["p99_ms"],
                }
            )
    return ratios


def argon2_parameters(encoded: str | None) -> str:
    """``$argon2id$v=19$m=65536,t=3,p=4$...`` as ``argon2id m=64 MiB, t=3, p=4``."""
    if not encoded or not encoded.startswith("$argon2"):
        return "unknown" if not encoded else encoded.split("$")[1]
    parts = encoded.split("$")
    params = dict(item.split("=") for item in parts[3].split(","))
    memory = int(params["m"]) / 1024
    return f"{parts[1]} m={memory:g} MiB, t={params['t']}, p={params['p']}"


def login_rows(rows: list[dict[str, Any]], targets: list[Target]) -> list[dict[str, Any]]:
    """The log-in scenario on MariaDB, each app with the hashing parameters it really stored."""
    hashes = {t.label: t.password_hash for t in targets}
    found = []
    for row in rows:
        if row["scenario"] != LOGIN or row["target"] not in (
            "userhub mysql (limits off)",
            *REFERENCES,
        ):
            continue
        found.append(
            {
                "target": row["target"],
                "argon2": argon2_parameters(hashes.get(row["target"])),
                "logins_per_second": row["rps"],
                "cpu_ms_per_login": row["cpu_ms_per_request"],
                "p50_ms": row["p50_ms"],
                "p99_ms": row["p99_ms"],
                "errors": row["errors"],
                "non_2xx": row["non_2xx"],
            }
        )
    return found


ARGON2_CFFI_DEFAULT = "argon2id m=64 MiB, t=3, p=4"


def login_preamble(logins: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    """What the log-in table compares, with the hashing cost each app really pays."""
    peers = [r for r in logins if r["target"] in REFERENCES]
    text = (
        "Log-in on MariaDB (one password check and one token issued per request), same run. "
        "The argon2 parameters are read from each app's stored hash of the bench user"
    )
    if peers and all(r["argon2"] == ARGON2_CFFI_DEFAULT for r in peers):
        text += (
            ": both peers hash with argon2-cffi's default parameters (m=64 MiB, t=3, p=4; "
            "fastapi-users through pwdlib, Flask-Security-Too through passlib's successor "
            "libpass, neither changes them), userhub with OWASP's minimum (m=19 MiB, t=2, p=1)"
        )
    default_ms, userhub_ms = meta.get("argon2_default_hash_cpu_ms"), meta["hash_cpu_ms"]
    if default_ms:
        text += (
            f". One hash at argon2-cffi's defaults takes {default_ms:.0f} ms of CPU (all its "
            f"threads) on this machine against {userhub_ms:.1f} ms at userhub's: "
            f"{default_ms / userhub_ms:.1f}x the work (m x t alone: 192 against 38 MiB-passes, 5x)"
        )
    return text + (
        ". CPU per log-in: the server processes' user + system time over the run divided by "
        "the log-ins answered."
    )


def draw_chart(
    rows: list[dict[str, Any]], ratios: list[dict[str, Any]], path: Path, title: str
) -> None:
    """Throughput and p99 per scenario and target (top), and userhub on MariaDB divided by each
    reference (bottom: above 1, userhub is faster). A target keeps its colour in all three."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    scenarios = list(dict.fromkeys(r["scenario"] for r in rows))
    targets = list(dict.fromkeys(r["target"] for r in rows))
    palette = plt.get_cmap("tab20")
    color = {target: palette(i % 20) for i, target in enumerate(targets)}
    fig = plt.figure(figsize=(15, 13))
    grid = fig.add_gridspec(2, 2, height_ratios=(3, 2))
    ax_rps = fig.add_subplot(grid[0, 0])
    ax_p99 = fig.add_subplot(grid[0, 1], sharey=ax_rps)
    ax_ratio = fig.add_subplot(grid[1, :])
    for s, scenario in enumerate(scenarios):
        mine = [r for r in rows if r["scenario"] == scenario]
        height = 0.8 / len(mine)
        for i, row in enumerate(mine):
            y = s - 0.4 + (i + 0.5) * height
            ax_rps.barh(y, row["rps"], height=height, color=color[row["target"]])
            ax_p99.barh(y, row["p99_ms"], height=height, color=color[row["target"]])
    ax_rps.set_yticks(range(len(scenarios)), scenarios)
    ax_rps.invert_yaxis()
    ax_rps.set_xscale("log")
    ax_rps.set_xlabel("requests per second (log scale, higher is better)")
    ax_p99.set_xscale("log")
    ax_p99.set_xlabel("p99 latency, ms (log scale, lower is better; dashed: the 20 ms goal)")
    ax_p99.axvline(20, color="grey", linestyle="--", linewidth=1)
    handles = [Rectangle((0, 0), 1, 1, color=color[t]) for t in targets]
    ax_rps.legend(handles, targets, loc="lower right", fontsize=7)
    labels = [f"{r['scenario']} ÷ {r['reference']}" for r in ratios]
    values = [r["ratio"] for r in ratios]
    ax_ratio.barh(range(len(ratios)), values, color=[color[r["reference"]] for r in ratios])
    for y, value in enumerate(values):
        ax_ratio.annotate(
            f"{value:.2f}",
            (value, y),
            xytext=(3, 0),
            textcoords="offset points",
            va="center",
            fontsize=7,
        )
    ax_ratio.set_yticks(range(len(ratios)), labels, fontsize=7)
    ax_ratio.invert_yaxis()
    ax_ratio.set_xscale("log")
    ax_ratio.axvline(1, color="black", linewidth=1)
    ax_ratio.set_xlabel(
        "userhub on MariaDB ÷ reference, req/s (log scale; above 1: userhub is faster; "
        "log-in: userhub with its limits off, as the references have none)"
    )
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def markdown_table(
    rows: list[dict[str, Any]], checks: list[dict[str, Any]], meta: dict[str, Any]
) -> str:
    lines = [
        f"Measured {meta['date']} on {meta['cores']} cores ({meta['cpu']}), "
        f"{meta['workers']} workers x {meta['threads']} threads, wrk -t1 -c{meta['connections']} "
        f"(-c{meta['hashing_connections']} for the routes that hash a password), "
        f"{meta['seconds']} s per run, median of {meta['rounds']} interleaved rounds; "
        f"one argon2id hash = {meta['hash_cpu_ms']:.1f} ms CPU, so the hashing bound is "
        f"{meta['hashing_bound']:.0f}/s. Command: `{meta['command']}`.",
        "",
        "| scenario | target | req/s | p50 ms | p99 ms | CPU ms/req | errors | non-2xx "
        "| RSS MB/worker |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        cpu = r.get("cpu_ms_per_request")
        lines.append(
            f"| {r['scenario']} | {r['target']} | {r['rps']:,} | {r['p50_ms']} | {r['p99_ms']} "
            f"| {'' if cpu is None else cpu} | {r['errors']} | {r['non_2xx']} "
            f"| {r['rss_mb_max']:.0f} |"
        )
    if meta.get("ratios"):
        before = "; ".join(f"{ref}, {what}" for ref, what in meta["baselines"].items())
        lines += [
            "",
            "Side by side, same run: userhub on MariaDB ÷ each reference (above 1, userhub is "
            "faster). The references: plain Flask and raw WSGI (no database), userhub before "
            f"({before or 'none'}; same venv, each on a MariaDB database of its own), "
            "fastapi-users (database access-token strategy, uvicorn, 2 workers, aiomysql) and "
            "Flask-Security-Too (token authentication, granian WSGI, 2 workers x 4 threads, "
            "PyMySQL), both on MariaDB (`bench/peers/`).",
            "",
            "| scenario | userhub | req/s | reference | req/s | ratio | p99 ms (userhub / ref.) |",
            "|---|---|---:|---|---:|---:|---:|",
        ]
        for r in meta["ratios"]:
            lines.append(
                f"| {r['scenario']} | {r['userhub']} | {r['userhub_rps']:,} | {r['reference']} "
                f"| {r['reference_rps']:,} | {r['ratio']} "
                f"| {r['userhub_p99_ms']} / {r['reference_p99_ms']} |"
            )
    if meta.get("logins"):
        lines += ["", login_preamble(meta["logins"], meta)]
        lines += [
            "",
            "| app | argon2 parameters (stored) | log-ins/s | CPU ms per log-in | p50 ms "
            "| p99 ms | errors | non-2xx |",
            "|---|---|---:|---:|---:|---:|---:|---:|",
        ]
        for r in meta["logins"]:
            lines.append(
                f"| {r['target']} | {r['argon2']} | {r['logins_per_second']:,} "
                f"| {r['cpu_ms_per_login']} | {r['p50_ms']} | {r['p99_ms']} | {r['errors']} "
                f"| {r['non_2xx']} |"
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
    parser.add_argument(
        "--hashing-connections",
        type=int,
        default=8,
        help="connections for the scenarios that hash a password (2 workers x 4 threads busy; "
        "at 32 a reference app's log-in, 4x userhub's hashing cost, outwaits wrk's timeout)",
    )
    parser.add_argument("--workers", type=int, default=available_cores())
    parser.add_argument("--threads", type=int, default=4, help="threads per worker")
    parser.add_argument("--backends", default="sqlite,mysql", type=lambda v: v.split(","))
    parser.add_argument("--mysql-url", default=DEFAULT_MYSQL)
    parser.add_argument(
        "--only",
        type=lambda v: v.split(","),
        help="run only the scenarios whose name contains this (or one of these, comma-separated)",
    )
    parser.add_argument("--no-server-comparison", dest="compare_servers", action="store_false")
    parser.add_argument(
        "--baseline",
        action="append",
        metavar="REF",
        help="userhub before, served from a git worktree of REF; repeatable (default: "
        f"{', '.join(f'{b.ref}, {b.before}' for b in BASELINES)}); none: no baseline",
    )
    parser.add_argument(
        "--baseline-mysql-url",
        default=DEFAULT_MYSQL.replace("userhub_bench_load", "userhub_bench_baseline"),
    )
    parser.add_argument(
        "--no-peers",
        dest="peers",
        action="store_false",
        help="leave out fastapi-users and Flask-Security-Too",
    )
    parser.add_argument(
        "--no-doc",
        "--no-readme",
        dest="doc",
        action="store_false",
        help="leave the table in docs/performance.md as it is",
    )
    parser.add_argument("--output", default=str(RESULTS / "bench.json"))
    args = parser.parse_args()
    refs = args.baseline or [b.ref for b in BASELINES]
    args.baselines = tuple(baseline_for(ref) for ref in refs if ref != "none")
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed: apt-get install wrk (make bench does this)")

    cores = available_cores()
    hash_ms = hash_cpu_ms()
    default_hash_ms = default_hash_cpu_ms() if args.peers else None
    hashing_bound = cores / (hash_ms / 1000)
    scenarios = [s for s in SCENARIOS if not args.only or any(o in s.name for o in args.only)]
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="userhub-bench-") as tmp, ExitStack() as stack:
        folder = Path(tmp)
        targets = start_targets(stack, args, folder)
        for round_ in range(1, args.rounds + 1):
            for scenario in scenarios:
                for target in targets:
                    if scenario.name not in target.scenarios:
                        continue
                    connections = args.hashing_connections if scenario.hashing else args.connections
                    run = measure(target, scenario, round_, args.seconds, connections)
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
    checks = evaluate_targets(rows, hashing_bound, import_result, args.baselines)
    ratios = reference_ratios(rows, runs, args.baselines)
    logins = login_rows(rows, targets)
    meta = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "cores": cores,
        "cpu": cpu_model(),
        "python": platform.python_version(),
        "workers": args.workers,
        "threads": args.threads,
        "connections": args.connections,
        "hashing_connections": args.hashing_connections,
        "seconds": args.seconds,
        "rounds": args.rounds,
        "hash_cpu_ms": round(hash_ms, 2),
        "argon2_default_hash_cpu_ms": default_hash_ms and round(default_hash_ms, 2),
        "hashing_bound": round(hashing_bound, 1),
        "command": shlex.join(["bench/run.py", *sys.argv[1:]]) if sys.argv[1:] else "make bench",
        "commit": _git_commit(),
        "baselines": {b.ref: b.before for b in args.baselines},
        "peers": {t.label: t.server for t in targets if t.app in REFERENCES[2:]},
    }
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "meta": meta,
        "medians": rows,
        "targets": checks,
        "ratios": ratios,
        "logins": logins,
        "access_log_lines": log_lines,
        "import": import_result,
        "runs": [asdict(r) for r in runs],
    }
    output.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    title = f"userhub bench, {meta['date']}, {cores} cores, commit {meta['commit']}"
    draw_chart(rows, ratios, output.with_suffix(".png"), title)
    table = markdown_table(
        rows, checks, {**meta, "import": import_result, "ratios": ratios, "logins": logins}
    )
    if args.doc:
        update_doc(table)
    print(table)
    print(f"\nwrote {output}, {output.with_suffix('.png')}")


def _git(*args: str) -> str:
    """What ``git ARGS`` prints in this checkout ("" on failure)."""
    result = subprocess.run(  # noqa: S603
        ["git", *args],  # noqa: S607
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip()


def _git_commit() -> str:
    return _git("rev-parse", "--short", "HEAD")


if __name__ == "__main__":
    main()
