"""``userhub serve``: the production server, one worker process per CPU core.

The tutorial warns that Flask's built-in server is for development only; this is what to run
instead. The default is granian, chosen by measurement (``bench/``, docs/performance.md): it
served userhub's GET routes about twice as fast as gunicorn's sync workers with the same number
of workers, keeps connections alive, and ships wheels for Windows, where gunicorn does not run.
``--server gunicorn`` runs the same app under gunicorn (Linux and macOS; ``pip install
gunicorn``), configured the same way.

Either way:
- the server's event loop receives each request, and only a complete one goes to one of the
  app's ``USERHUB_THREADS`` threads (``front.py``, an ASGI app both servers run): a client that
  sends slowly holds no thread, and has ``USERHUB_RECEIVE_TIMEOUT`` seconds for its headers and
  again for its body;
- each worker builds its own app (``create_app``) after the fork, so no database connection
  or pool is shared between processes;
- SIGTERM (or Ctrl+C) stops accepting connections and lets requests in flight finish, for up
  to ``USERHUB_SHUTDOWN_TIMEOUT`` seconds;
- the server's own access log stays off: the app logs one line per request (``logs.py``);
- with ``USERHUB_METRICS_TOKEN``, the workers keep their metrics in files of one folder, so
  that ``/metrics`` adds up all of them (``metrics_folder``).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import errno
import os
import platform
import shutil
import socket
import sys
import tempfile
from collections.abc import Iterator, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import click

from .. import metrics
from ..config import ConfigError, available_cores, load_config, read_environment
from ..config.language import gettext
from ..config.values import SERVERS

M_ARENA_MAX = -8  # glibc's mallopt() parameter number
CONNECTIONS = 4096  # connections the server queues, and requests one granian worker holds


def use_one_malloc_arena() -> None:
    """Make glibc's malloc keep one arena, unless the operator set ``MALLOC_ARENA_MAX``.

    Each argon2id hash allocates 19 MiB. With one arena per thread, glibc hands that memory back
    and faults it in again for almost every hash: measured on 2 cores, 4 threads per worker,
    ``POST /save_data_to_mysql`` cost 23.2 ms of CPU a request with the default arenas and
    21.1 ms with one (84.9 against 93.0 requests a second, RSS 158 against 120 MB per worker).
    Set before the workers start, so every worker inherits it. Elsewhere (no glibc) nothing
    changes.
    """
    if "MALLOC_ARENA_MAX" in os.environ or not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):  # not glibc: leave malloc alone
        ctypes.CDLL("libc.so.6").mallopt(M_ARENA_MAX, 1)


def claim_port(address: str, port: int) -> None:
    """Refuse to start on a port another server already listens on.

    Both servers listen with ``SO_REUSEPORT``, so that their worker processes share one port;
    the kernel lets any other process of the same user do the same, and a second ``userhub
    serve`` (a learner switching to MySQL without stopping the first) would start without a
    word and take every other connection: random answers from two databases. A plain bind,
    without that option, fails while anything listens there; it is closed again at once.
    (A server started in the same instant could still slip through; nobody types that fast.)
    """
    try:
        family, kind, proto, _, where = socket.getaddrinfo(
            address, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise ConfigError(
            gettext(
                "cannot listen on %(address)s: not an address of this machine (%(reason)s). "
                "Set USERHUB_HOST (or --host) to 127.0.0.1, or 0.0.0.0 for every address.",
                address=address,
                reason=exc.strerror,
            )
        ) from None
    probe = socket.socket(family, kind, proto)
    try:
        if os.name != "nt":  # Windows' SO_REUSEADDR would let the probe share the port
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a closed one is free
        probe.bind(where)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(
                gettext(
                    "port %(port)s on %(address)s is already in use, perhaps by another userhub "
                    "server (make run, userhub serve). Stop it first (Ctrl+C in its window), or "
                    "choose another port: --port or USERHUB_PORT.",
                    port=port,
                    address=address,
                )
            ) from None
        raise ConfigError(
            gettext(
                "cannot listen on %(address)s port %(port)s (%(reason)s). Choose another "
                "address or port (USERHUB_HOST, USERHUB_PORT); ports below 1024 need root.",
                address=address,
                port=port,
                reason=exc.strerror or str(exc),
            )
        ) from None
    finally:
        probe.close()


@contextlib.contextmanager
def metrics_folder(enabled: bool) -> Iterator[None]:
    """While the server runs, with metrics on: the folder where every worker keeps its values
    (``PROMETHEUS_MULTIPROC_DIR``), so that a scrape, whichever worker answers it, adds them up.

    The operator's folder if they set one (the values of a previous run in it are deleted: a
    new server starts from zero, as Prometheus expects after a restart), else a new temporary
    folder, deleted when the server exits. Entered before the app is built, so that no value
    is kept in memory, and before the workers start, which inherit it."""
    if not enabled:
        yield
        return
    given = metrics.multiprocess_folder()
    folder = Path(given) if given else Path(tempfile.mkdtemp(prefix="userhub-metrics-"))
    if given:
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("*.db"):
            old.unlink()
    metrics.use_folder(folder)
    try:
        yield
    finally:
        if not given:
            shutil.rmtree(folder, ignore_errors=True)


def worker_count(configured: int) -> int:
    return configured if configured > 0 else available_cores()


def serve_granian(
    address: str, port: int, workers: int, timeout: int, receive_timeout: int
) -> None:
    from granian import Granian
    from granian.constants import Interfaces
    from granian.http import HTTP1Settings

    Granian(
        "userhub.cli.front:asgi_app",  # the front receives requests; its threads run the app
        factory=True,  # every worker builds its app itself: pools are made after the fork
        interface=Interfaces.ASGI,
        address=address,
        port=port,
        workers=workers,
        http1_settings=HTTP1Settings(header_read_timeout=receive_timeout * 1000),
        # Requests a worker holds at once, most of them still arriving (no thread each): granian's
        # default, 1024 / workers, left ~500 a worker, and with 1,000 slow clients a normal
        # request waited for a place (bench/slow_clients.py); waiting costs a few kB each.
        backlog=CONNECTIONS,
        backpressure=CONNECTIONS,
        respawn_failed_workers=True,
        workers_kill_timeout=timeout,
        log_access=False,
    ).serve()


def serve_gunicorn(
    address: str, port: int, workers: int, timeout: int, receive_timeout: int
) -> None:
    """``receive_timeout`` bounds the body in the front; gunicorn has no setting for late
    headers (docs/production.md), so it is not passed on here."""
    from gunicorn.app.base import BaseApplication

    class Server(BaseApplication):  # type: ignore[misc]
        """gunicorn, configured here rather than from a file or its own command line."""

        def load_config(self) -> None:
            options: dict[str, Any] = {
                "bind": f"[{address}]:{port}" if ":" in address else f"{address}:{port}",
                "workers": workers,
                # gunicorn's asyncio worker receives each request; the front (cli/front.py)
                # runs the app in threads of its own.
                "worker_class": "asgi",
                "graceful_timeout": timeout,
                "accesslog": None,
                "preload_app": False,  # create_app() in each worker, after the fork
                # gunicorn 27's control socket has one path per host user, so a second server
                # would take over the first one's; userhub is managed by signals instead.
                "control_socket_disable": True,
                # A worker that exits takes its requests in flight and connections with it.
                "child_exit": lambda _server, worker: metrics.forget_worker(worker.pid),
            }
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self) -> Any:
            from .front import asgi_app

            return asgi_app()

    Server().run()


def installed_version() -> str:
    """The installed distribution's version (pyproject.toml's), as a deployer asks for it."""
    try:
        return metadata.version("userhub")
    except metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="userhub", description=__doc__)
    parser.add_argument(
        "--version",
        action="version",
        version=f"userhub {installed_version()} (Python {platform.python_version()})",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run userhub under a production WSGI server")
    serve.add_argument("--host", help="address to listen on (USERHUB_HOST)")
    serve.add_argument("--port", type=int, help="port (USERHUB_PORT)")
    serve.add_argument("--workers", type=int, help="worker processes (USERHUB_WORKERS; 0 = cores)")
    serve.add_argument("--threads", type=int, help="threads per worker (USERHUB_THREADS)")
    serve.add_argument("--server", choices=SERVERS, help="WSGI server (USERHUB_SERVER)")
    args = parser.parse_args(argv)

    running = contextlib.ExitStack()
    try:
        settings = load_config(read_environment())
        address = args.host or settings["USERHUB_HOST"]
        port = args.port or settings["USERHUB_PORT"]
        claim_port(address, port)
        running.enter_context(metrics_folder(bool(settings["USERHUB_METRICS_TOKEN"])))
        # Build the app once before forking: a bad setting, or a database that cannot be
        # reached or is not upgraded, stops here with one clear message, and the development
        # secret exists before any worker looks for it. The workers build their own apps and
        # connections.
        from .. import create_app, database
        from ..web import tracing

        app = create_app()
        database.ready_to_serve(app)
        tracing.shutdown(app)  # traced requests are the workers', each with its own exporter
    except click.ClickException as exc:  # ConfigError, DatabaseUnreachable
        running.close()
        parser.exit(2, f"userhub: {exc.format_message()}\n")

    workers = worker_count(
        args.workers if args.workers is not None else settings["USERHUB_WORKERS"]
    )
    # Workers inherit the environment: each builds its front with these threads, and together
    # they hash on every core, never more at once.
    if args.threads:
        os.environ["USERHUB_THREADS"] = str(args.threads)
    if not settings["USERHUB_HASHING_THREADS"]:
        os.environ["USERHUB_HASHING_THREADS"] = str(max(1, available_cores() // workers))
    use_one_malloc_arena()
    run = (
        serve_gunicorn
        if (args.server or settings["USERHUB_SERVER"]) == "gunicorn"
        else serve_granian
    )
    with running:
        run(
            address=address,
            port=port,
            workers=workers,
            timeout=settings["USERHUB_SHUTDOWN_TIMEOUT"],
            receive_timeout=settings["USERHUB_RECEIVE_TIMEOUT"],
        )


if __name__ == "__main__":
    main()
