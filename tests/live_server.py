"""Run userhub as a real server process for end-to-end tests (and the shipped nginx in front).

``production``: ``userhub serve`` (granian, 2 workers, ``USERHUB_ENV=production``).
``development``: Flask's built-in server (``flask run``), which the tutorial uses.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

import userhub
from tests.helpers import load_localcluster
from userhub.config import SETTINGS

BIN = Path(sys.executable).parent
# The folder the tests import userhub from: a server runs that code too, whatever the venv has
# installed (a checkout tested with PYTHONPATH=src, which a server's own folder would not find).
SOURCE = Path(userhub.__file__).resolve().parents[1]
STARTUP_SECONDS = 30
SHUTDOWN_TIMEOUT = next(s.default for s in SETTINGS if s.env == "USERHUB_SHUTDOWN_TIMEOUT")
# How long a SIGTERMed server may take to exit: the drain it promises, then a margin. Granian
# has a known race (emmett-framework/granian#875: a worker's runtime drop can deadlock on the
# GIL) that leaves a worker hanging after its last answer; granian kills it when the shutdown
# timeout ends and still exits 0. Measured here: 3 of 24 runs of the drain test (5 of 24 before
# issue 7), every request answered each time.
EXIT_SECONDS = SHUTDOWN_TIMEOUT + 15
# The hosts a production server under test answers to: the address the tests reach it at.
ALLOWED_HOSTS = "127.0.0.1,localhost"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_environment(database_url: str, instance: Path, kind: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("USERHUB_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SOURCE), env.get("PYTHONPATH")]))
    env.update(
        USERHUB_DATABASE_URL=database_url,
        USERHUB_INSTANCE_PATH=str(instance),
        USERHUB_LOG_LEVEL="WARNING",
    )
    if kind == "production":
        # Plain http on 127.0.0.1, as Postman and curl use it: cookies cannot be Secure here.
        env.update(
            USERHUB_ENV="production",
            USERHUB_SECRET_KEY=secrets.token_hex(32),
            USERHUB_ALLOWED_HOSTS=ALLOWED_HOSTS,
            USERHUB_COOKIE_SECURE="false",
        )
    return env


def upgrade_schema(env: dict[str, str], cwd: Path) -> None:
    subprocess.run(
        [str(BIN / "flask"), "--app", "userhub", "db", "upgrade"],
        env=env,
        cwd=cwd,
        check=True,
        capture_output=True,
        timeout=120,
    )


def create_admin(database_url: str, workdir: Path, username: str, password: str) -> None:
    """An administrator in a live server's database, made as a deployer makes one: through
    ``flask --app userhub create-admin``."""
    env = server_environment(database_url, workdir / "instance", "production")
    subprocess.run(
        [str(BIN / "flask"), "--app", "userhub", "create-admin", "--username", username]
        + ["--password-stdin"],
        input=password + "\n",
        text=True,
        env=env,
        cwd=workdir,
        check=True,
        capture_output=True,
        timeout=60,
    )


@dataclass
class ServerProcess:
    """A running server: its base URL, process and log file."""

    base: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def stop(self) -> int:
        """SIGTERM, as a service manager stops it; its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=EXIT_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


# Servers as a deployer might run userhub without `userhub serve`, with their own defaults.
OTHER_SERVERS = {
    # granian's WSGI default: backpressure // 2 threads a worker, 256 with 2 workers
    "granian-wsgi": ["granian", "--interface", "wsgi", "--workers", "2", "--factory"],
    "gunicorn-gthread": ["gunicorn", "--worker-class", "gthread", "--threads", "32", "-w", "2"],
}


def production_command(server: str, port: int) -> list[str]:
    """``userhub serve`` with ``--server granian|gunicorn``, or one of ``OTHER_SERVERS``."""
    if server == "granian-wsgi":
        program, *options = OTHER_SERVERS[server]
        address = ["--host", "127.0.0.1", "--port", str(port)]
        return [str(BIN / program), *options, *address, "userhub:create_app"]
    if server == "gunicorn-gthread":
        program, *options = OTHER_SERVERS[server]
        return [str(BIN / program), *options, "-b", f"127.0.0.1:{port}", "userhub:create_app()"]
    return [
        str(BIN / "userhub"),
        "serve",
        "--port",
        str(port),
        "--workers",
        "2",
        "--server",
        server,
    ]


@contextlib.contextmanager
def running_server(
    kind: str,
    database_url: str,
    workdir: Path,
    *,
    server: str = "granian",
    log_level: str = "WARNING",
    env: Mapping[str, str] | None = None,
    port: int | None = None,
) -> Iterator[ServerProcess]:
    """Migrate the database, start the server, yield it, stop it on exit. ``env`` adds
    settings (e.g. ``USERHUB_RATELIMIT_ENABLED=false`` for a test that logs in a lot); ``port``
    is chosen beforehand when a setting names it (``USERHUB_PUBLIC_URL``: links in mail)."""
    env = {**server_environment(database_url, workdir / "instance", kind), **(env or {})}
    env["USERHUB_LOG_LEVEL"] = log_level
    upgrade_schema(env, workdir)
    port = port or free_port()
    if kind == "production":
        command = production_command(server, port)
    else:
        command = [str(BIN / "flask"), "--app", "userhub", "run", "--port", str(port)]
    log_path = workdir / f"{kind}-{server}-server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, env=env, cwd=workdir, stdout=log, stderr=log)
    running = ServerProcess(f"http://127.0.0.1:{port}", process, log_path)
    try:
        wait_until_ready(running.base, process, log_path)
        yield running
    finally:
        running.stop()


@contextlib.contextmanager
def live_server(kind: str, database_url: str, workdir: Path) -> Iterator[str]:
    """Migrate the database, start the server, yield its base URL, stop it on exit."""
    with running_server(kind, database_url, workdir) as running:
        yield running.base


def wait_until_ready(base: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {log_path.read_text(errors='replace')}")
        # Not listening yet, or (gunicorn) listening before its workers have booted.
        with contextlib.suppress(requests.ConnectionError, requests.Timeout):
            if requests.get(base + "/response_json", timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"server not ready in {STARTUP_SECONDS}s: {log_path.read_text()}")


@contextlib.contextmanager
def running_nginx(workdir: Path, upstream_port: int) -> Iterator[int]:
    """deploy/nginx.conf.template as localcluster.py fills it, on a free port, with every
    instance of its upstream at ``upstream_port``; the port nginx listens on."""
    nginx = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")
    if nginx is None:
        pytest.skip("nginx is not installed (apt-get install nginx)")
    localcluster = load_localcluster()
    state = workdir / f"nginx-{upstream_port}"
    for folder in ("nginx", "logs"):
        (state / folder).mkdir(parents=True)
    conf = localcluster.render_nginx_config(state)
    port = free_port()
    listen = f"127.0.0.1:{localcluster.NGINX_PORT}"
    assert conf.count(listen) == 2  # the default server and the site's
    conf = conf.replace(listen, f"127.0.0.1:{port}")
    for node in localcluster.NODES:
        instance = f"server 127.0.0.1:{localcluster.userhub_port(node)} "
        assert conf.count(instance) == 1
        conf = conf.replace(instance, f"server 127.0.0.1:{upstream_port} ")
    (state / "nginx.conf").write_text(conf)
    argv = [nginx, "-c", str(state / "nginx.conf"), "-p", f"{state / 'nginx'}/"]
    argv += ["-e", str(state / "logs" / "nginx-error.log")]
    subprocess.run([*argv, "-t", "-q"], check=True, capture_output=True, timeout=30)
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)):
                break
            assert process.poll() is None and time.monotonic() < deadline, "nginx did not start"
            time.sleep(0.05)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)
