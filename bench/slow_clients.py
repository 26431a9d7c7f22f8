"""How many slow clients a 2-worker ``userhub serve`` survives while it answers everyone else.

A slow client sends a POST's headers (``Content-Length: 100000``) and then one byte of the body
every second; when the server drops it (408 after ``USERHUB_RECEIVE_TIMEOUT``, 10 s by
default) it connects again at once, so the attack never lets up. Meanwhile a normal client asks
for ``/api/v1/health`` four times a second (one request in flight at a time, 5 s timeout), and
the bench records how long each answer took. "Survives" means every health check was answered,
the slowest in under a second.

Targets, for each number of slow clients in ``--clients``:

- ``userhub serve`` (the front: bodies received on the event loop, cli/front.py);
- the same app under granian's WSGI threads without the front: the server issue 16 found;
- ``userhub serve`` behind nginx with the shipped config (deploy/nginx.conf.template), which
  buffers each body before it opens a connection to userhub.

Writes ``bench/results/slow_clients.json``, ``bench/results/slow_clients.png`` and the table
between the ``slow-clients`` markers in docs/performance.md.
Run: ``.venv/bin/python bench/slow_clients.py`` (nginx installed for the third target).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import secrets
import selectors
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import requests
from run import BENCH, BIN, RESULTS, ROOT, free_port, running, wait_until_up

DOC = ROOT / "docs" / "performance.md"
MARKERS = ("<!-- slow-clients:start -->", "<!-- slow-clients:end -->")
HEADERS = (
    b"POST /api/v1/users HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    b"Content-Length: 100000\r\n\r\n"
)


@dataclass
class Result:
    target: str
    clients: int
    seconds: float
    checks: int
    failed: int
    p50_ms: float
    max_ms: float
    reconnects: int  # slow clients the server dropped (and that came back)

    @property
    def survived(self) -> bool:
        return self.failed == 0 and self.max_ms < 1000


def app_env(folder: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("USERHUB_")}
    env.update(
        USERHUB_ENV="production",
        USERHUB_SECRET_KEY=secrets.token_hex(32),
        USERHUB_COOKIE_SECURE="false",
        USERHUB_ALLOWED_HOSTS="127.0.0.1,localhost",
        USERHUB_DATABASE_URL=f"sqlite:///{folder / 'slow.sqlite3'}",
        USERHUB_INSTANCE_PATH=str(folder / "instance"),
        USERHUB_LOG_LEVEL="WARNING",
    )
    subprocess.run(  # noqa: S603
        [str(BIN / "flask"), "--app", "userhub", "db", "upgrade"],
        env=env,
        check=True,
        capture_output=True,
        cwd=folder,
    )
    return env


def userhub_serve(port: int, workers: int) -> list[str]:
    return [str(BIN / "userhub"), "serve", "--port", str(port), "--workers", str(workers)]


def granian_wsgi(port: int, workers: int) -> list[str]:
    return [
        *(str(BIN / "granian"), "--interface", "wsgi", "--factory", "--no-access-log"),
        *("--workers", str(workers), "--blocking-threads", "4", "--port", str(port)),
        "userhub:create_app",
    ]


@contextlib.contextmanager
def behind_nginx(folder: Path, env: dict[str, str], workers: int) -> Iterator[str]:
    """The shipped nginx config, rendered as deploy/localcluster.py renders it, in front of one
    ``userhub serve`` on its first upstream port (the other two are down: nginx skips them)."""
    spec = importlib.util.spec_from_file_location("localcluster", ROOT / "deploy/localcluster.py")
    assert spec and spec.loader
    cluster = importlib.util.module_from_spec(spec)
    sys.modules["localcluster"] = cluster
    spec.loader.exec_module(cluster)
    state = folder / "nginx-state"
    for sub in ("nginx", "logs"):
        (state / sub).mkdir(parents=True, exist_ok=True)
    conf = state / "nginx.conf"
    conf.write_text(cluster.render_nginx_config(state))
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    app_port = cluster.userhub_port(1)
    nginx_argv = [nginx, "-c", str(conf), "-p", str(state / "nginx")]
    with (
        running(userhub_serve(app_port, workers), env, folder / "userhub.log", BENCH) as app,
        running(nginx_argv, env, folder / "nginx.log", BENCH) as proxy,
    ):
        wait_until_up(app_port, "/api/v1/health", app, folder / "userhub.log")
        wait_until_up(cluster.NGINX_PORT, "/api/v1/health", proxy, folder / "nginx.log")
        yield f"http://127.0.0.1:{cluster.NGINX_PORT}"


class SlowClients:
    """``count`` connections trickling a body, each reopened as soon as the server drops it."""

    def __init__(self, base: str, count: int) -> None:
        host, port = base.removeprefix("http://").split(":")
        self.address = (host, int(port))
        self.selector = selectors.DefaultSelector()
        self.reconnects = 0
        for _ in range(count):
            self._connect()

    def _connect(self) -> None:
        sock = socket.create_connection(self.address, timeout=5)
        sock.sendall(HEADERS)
        sock.setblocking(False)
        self.selector.register(sock, selectors.EVENT_READ)

    def trickle(self) -> None:
        """One byte on every connection; reconnect those the server answered or closed."""
        for key, _ in self.selector.select(timeout=0):
            sock: socket.socket = key.fileobj  # type: ignore[assignment]
            self.selector.unregister(sock)
            sock.close()
            self.reconnects += 1
            self._connect()
        for key in list(self.selector.get_map().values()):
            with contextlib.suppress(OSError):
                key.fileobj.send(b"x")  # type: ignore[union-attr]

    def close(self) -> None:
        for key in list(self.selector.get_map().values()):
            key.fileobj.close()  # type: ignore[union-attr]
        self.selector.close()


def attack(target: str, base: str, clients: int, seconds: float) -> Result:
    slow = SlowClients(base, clients)
    latencies: list[float] = []
    failed = 0
    started_at = time.monotonic()
    next_trickle = started_at
    try:
        while time.monotonic() - started_at < seconds:
            if time.monotonic() >= next_trickle:
                slow.trickle()
                next_trickle += 1.0
            began = time.monotonic()
            try:
                ok = requests.get(base + "/api/v1/health", timeout=5).status_code == 200
            except requests.RequestException:
                ok = False
            latencies.append((time.monotonic() - began) * 1000)
            failed += not ok
            time.sleep(0.25)
    finally:
        slow.close()
    return Result(
        target,
        clients,
        seconds,
        len(latencies),
        failed,
        round(statistics.median(latencies), 1),
        round(max(latencies), 1),
        slow.reconnects,
    )


def plot(results: list[Result], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4))
    for target in dict.fromkeys(r.target for r in results):
        mine = [r for r in results if r.target == target]
        axis.plot(
            [r.clients for r in mine],
            [r.max_ms if not r.failed else 5000 for r in mine],
            marker="o",
            label=target,
        )
    axis.axhline(1000, color="grey", linestyle="--", linewidth=1)
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_xlabel("slow clients (trickling a body, reconnecting when dropped)")
    axis.set_ylabel("slowest /api/v1/health answer, ms (5000 = failed)")
    axis.set_title("Normal requests while slow clients attack (2 workers)")
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", default="8,200,1000,2000", type=lambda v: v.split(","))
    parser.add_argument("--seconds", type=float, default=15, help="length of each attack")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-nginx", dest="nginx", action="store_false")
    args = parser.parse_args()
    counts = [int(c) for c in args.clients]
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="userhub-slow-") as tmp:
        folder = Path(tmp)
        env = app_env(folder)
        targets = {
            "userhub serve": userhub_serve,
            "granian WSGI, no front (before)": granian_wsgi,
        }
        for label, command in targets.items():
            port = free_port()
            log = folder / f"{port}.log"
            with running(command(port, args.workers), env, log, BENCH) as server:
                wait_until_up(port, "/api/v1/health", server, log)
                base = f"http://127.0.0.1:{port}"
                for count in counts:
                    results.append(attack(label, base, count, args.seconds))
                    print(asdict(results[-1]), flush=True)
        if args.nginx:
            with behind_nginx(folder, env, args.workers) as base:
                for count in counts:
                    results.append(attack("nginx + userhub serve", base, count, args.seconds))
                    print(asdict(results[-1]), flush=True)
    RESULTS.mkdir(exist_ok=True)
    report: dict[str, Any] = {
        "measured": time.strftime("%Y-%m-%d"),
        "command": "python bench/slow_clients.py " + " ".join(sys.argv[1:]),
        "workers": args.workers,
        "results": [{**asdict(r), "survived": r.survived} for r in results],
    }
    (RESULTS / "slow_clients.json").write_text(json.dumps(report, indent=2) + "\n")
    plot(results, RESULTS / "slow_clients.png")
    write_table(report)


def write_table(report: dict[str, Any]) -> None:
    """The results as a Markdown table between the markers of docs/performance.md."""
    lines = [
        f"Measured {report['measured']}, {report['workers']} workers x 4 threads, "
        f"{report['results'][0]['seconds']:g} s per attack. "
        f"Command: `{report['command'].strip()}`.",
        "",
        "| target | slow clients | health checks | failed | p50 ms | slowest ms | dropped and "
        "back | survived |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in report["results"]:
        lines.append(
            f"| {r['target']} | {r['clients']:,} | {r['checks']} | {r['failed']} | {r['p50_ms']} "
            f"| {r['max_ms']:,} | {r['reconnects']:,} | {'yes' if r['survived'] else '**no**'} |"
        )
    text = DOC.read_text()
    start, end = text.index(MARKERS[0]) + len(MARKERS[0]), text.index(MARKERS[1])
    DOC.write_text(text[:start] + "\n" + "\n".join(lines) + "\n" + text[end:])


if __name__ == "__main__":
    main()
