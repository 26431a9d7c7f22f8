"""userhub's scale-out layout on one machine, over loopback: start it, look at it, stop it by PID.

    python deploy/localcluster.py start|stop|status|drill [--dir STATE_DIR]

``start`` brings up a 3-node MariaDB Galera cluster (3307-3309), a Redis for the rate limits
(6380), three ``userhub serve`` instances (8101-8103), instance N talking to Galera node N, and
nginx in front of them on http://127.0.0.1:8080. ``stop`` ends every one of them by the PID it
recorded, never by name, so nothing else on the machine (the system MariaDB on 3306, the system
Redis on 6379) is touched. ``drill`` kills a Galera node and an instance and measures what that
costs.

Everything lives in the state directory (default ``/tmp/userhub-cluster``, or ``--dir``, or
``USERHUB_CLUSTER_DIR``): configs, data, logs under ``logs/``, one ``pids/<name>.pid`` per child,
the shared secret (mode 600) and ``timings.json``.

A test imports this file (``importlib``) and drives ``Cluster``: ``start()``, ``kill(name)``,
``restart_galera_node(n)``, ``restart_userhub(n)``, ``mysql(n, sql)``, ``stop()``. Standard
library only, so it runs under any Python 3.11; it uses the ``flask`` and ``userhub`` commands of
the checkout's ``.venv``. Linux only (``/proc``, ``ss``, Debian's ``mariadbd``, ``galera-4``,
``redis-server`` and ``nginx``).
"""

# Every subprocess here runs a fixed program with arguments built by this file: no shell, no
# untrusted input. ruff's S603/S607 would flag each call.
# ruff: noqa: S603, S607

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

DEPLOY_DIR = Path(__file__).resolve().parent
REPO_ROOT = DEPLOY_DIR.parent
DEFAULT_STATE_DIR = Path("/tmp/userhub-cluster")  # noqa: S108 (a per-machine scratch folder)
STATE_DIR_ENV = "USERHUB_CLUSTER_DIR"
MARKER = ".userhub-cluster"  # only a folder holding this file is ever wiped by start()

NODES = (1, 2, 3)
NGINX_PORT = 8080
# The host the cluster is reached by, through nginx and at each instance (health checks): nginx's
# server_name and the instances' USERHUB_ALLOWED_HOSTS. Any other Host is refused by both.
SERVER_NAME = "127.0.0.1"
REDIS_PORT = 6380
GALERA_PROVIDER = Path("/usr/lib/galera/libgalera_smm.so")
DATABASE = "userhub"

# The number of proxies in front of each instance (nginx), for the app's ProxyFix. Set to None
# to leave the variable out for an app that does not know it yet.
TRUSTED_PROXIES: str | None = "1"

# Seconds to wait for each step; generous, as CI machines are slower than a laptop.
START_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0  # SIGTERM, then SIGKILL after this long
POLL = 0.1


def sql_port(node: int) -> int:
    return 3306 + node


def gcomm_port(node: int) -> int:
    return 4566 + node


def ist_port(node: int) -> int:
    return 4570 + node


def sst_port(node: int) -> int:
    return 4443 + node


def userhub_port(instance: int) -> int:
    return 8100 + instance


def all_ports() -> dict[int, str]:
    """Every port the cluster listens on, with what listens there."""
    ports = {NGINX_PORT: "nginx", REDIS_PORT: "redis"}
    for n in NODES:
        ports[userhub_port(n)] = f"userhub{n}"
        ports[sql_port(n)] = f"galera{n} SQL"
        ports[gcomm_port(n)] = f"galera{n} group communication"
        ports[ist_port(n)] = f"galera{n} IST"
        ports[sst_port(n)] = f"galera{n} SST"
    return dict(sorted(ports.items()))


def database_url(node: int) -> str:
    return f"mysql+pymysql://root@127.0.0.1:{sql_port(node)}/{DATABASE}?charset=utf8mb4"


class ClusterError(RuntimeError):
    """Something in the cluster did not start, stop or answer; the message says what and where
    to look."""


# --- processes, by PID --------------------------------------------------------------------------


def _proc_stat(pid: int) -> tuple[str, int, int] | None:
    """(state, process group, start time in clock ticks after boot) of a live process, or None."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = raw[raw.rindex(")") + 2 :].split()  # after "pid (comm) "; comm may hold spaces
    state, pgrp, start = fields[0], int(fields[2]), int(fields[19])
    if state in {"Z", "X"}:  # a zombie has exited; only its parent has not collected it yet
        return None
    return state, pgrp, start


def _boot_time() -> float:
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    raise ClusterError("/proc/stat has no btime")


def _started_at(start_ticks: int) -> float:
    return _boot_time() + start_ticks / os.sysconf("SC_CLK_TCK")


def _group_alive(pgid: int) -> bool:
    """Whether any process of the group still runs (granian's workers and mariadbd's SST
    scripts are in their parent's group, and must go with it)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _proc_stat(int(entry.name))
            if stat is not None and stat[1] == pgid:
                return True
    return False


def _listener(port: int) -> str:
    """Who listens on ``port``, as ``ss -ltnp`` tells (empty if it does not)."""
    try:
        out = subprocess.run(
            ["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True, timeout=5
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return ""
    found = re.findall(r'\("([^"]+)",pid=(\d+)', out)
    return ", ".join(f"{name} (pid {pid})" for name, pid in dict.fromkeys(found))


def _port_free(port: int) -> bool:
    """Bind as the servers will (SO_REUSEADDR, so a TIME_WAIT left by the last run is no
    obstacle, while any listener, on 127.0.0.1 or on 0.0.0.0, is)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _find(program: str, hint: str) -> str:
    """A program's path; sbin is searched too, as it may be missing from a user's PATH."""
    path = os.environ.get("PATH", "") + os.pathsep + "/usr/sbin:/sbin"
    found = shutil.which(program, path=path)
    if found is None:
        raise ClusterError(f"{program} not found: {hint}")
    return found


def _tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return f"({path} does not exist)"
    return f"last lines of {path}:\n" + "\n".join(text.splitlines()[-lines:])


def _render(template: Path, values: Mapping[str, str]) -> str:
    """Fill ``@NAME@`` placeholders (neither nginx's ``$`` nor ``{}`` clash with them)."""
    text = template.read_text()
    for name, value in values.items():
        text = text.replace(f"@{name}@", value)
    if left := sorted(set(re.findall(r"@[A-Z_]+@", text))):
        raise ClusterError(f"{template}: no value for {', '.join(left)}")
    return text


def render_nginx_config(state: Path) -> str:
    """deploy/nginx.conf.template as this cluster runs it, with its files under ``state``."""
    return _render(
        DEPLOY_DIR / "nginx.conf.template", {"STATE": str(state), "SERVER_NAME": SERVER_NAME}
    )


# --- the cluster --------------------------------------------------------------------------------


class Cluster:
    """One local cluster, described by its state directory.

    Every method works from the files in that directory, so a ``Cluster`` made in another
    process (``python deploy/localcluster.py stop`` from a shell ``trap``) stops what this one
    started.

    ``app_env`` adds or overrides ``USERHUB_*`` variables of the three instances (a test may
    lower a rate limit, or set ``USERHUB_COOKIE_SECURE=false`` to send cookies over plain HTTP).
    """

    def __init__(
        self,
        state_dir: str | os.PathLike[str] | None = None,
        repo_root: str | os.PathLike[str] | None = None,
        *,
        app_env: Mapping[str, str] | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.state = Path(state_dir or os.environ.get(STATE_DIR_ENV) or DEFAULT_STATE_DIR)
        self.state = self.state.resolve()
        self.repo = Path(repo_root or REPO_ROOT).resolve()
        self.app_env = dict(app_env or {})
        self._log = log or (lambda line: print(line, flush=True))
        self._children: dict[str, subprocess.Popen[bytes]] = {}  # to collect our own zombies
        self._t0 = time.monotonic()
        self.timings: dict[str, float] = {}

    # -- names, paths, addresses

    url = f"http://127.0.0.1:{NGINX_PORT}"
    redis_url = f"redis://127.0.0.1:{REDIS_PORT}/0"
    galera_names = tuple(f"galera{n}" for n in NODES)
    userhub_names = tuple(f"userhub{n}" for n in NODES)
    # Start order; stop() goes the other way: the front first, the database last.
    names = (*galera_names, "redis", *userhub_names, "nginx")

    @staticmethod
    def userhub_url(instance: int) -> str:
        return f"http://127.0.0.1:{userhub_port(instance)}"

    @staticmethod
    def database_url(node: int) -> str:
        return database_url(node)

    @property
    def pids_dir(self) -> Path:
        return self.state / "pids"

    @property
    def logs_dir(self) -> Path:
        return self.state / "logs"

    def log_path(self, name: str) -> Path:
        return self.logs_dir / f"{name}.log"

    def _node_dir(self, node: int) -> Path:
        return self.state / "galera" / f"node{node}"

    def _node_cnf(self, node: int) -> Path:
        return self.state / "galera" / f"node{node}.cnf"

    @property
    def secret(self) -> str:
        """The one ``USERHUB_SECRET_KEY`` every instance shares (sessions signed by one
        instance are read by the others)."""
        return (self.state / "secret_key").read_text().strip()

    def app_environment(self, instance: int) -> dict[str, str]:
        """The environment of instance N (also right for a ``flask --app userhub`` command
        against Galera node N). The caller's own ``USERHUB_*`` variables are left out, so a
        test's settings do not leak into the cluster."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("USERHUB_")}
        env.update(
            USERHUB_ENV="production",
            USERHUB_SECRET_KEY=self.secret,
            USERHUB_ALLOWED_HOSTS=SERVER_NAME,
            USERHUB_DATABASE_URL=database_url(instance),
            USERHUB_HOST="127.0.0.1",
            USERHUB_PORT=str(userhub_port(instance)),
            USERHUB_WORKERS="1",
            USERHUB_THREADS="4",
            USERHUB_RATELIMIT_STORAGE_URI=self.redis_url,
            USERHUB_INSTANCE_PATH=str(self.state / f"instance{instance}"),
            # Requests in flight get 5 s after SIGTERM: inside stop()'s 10 s before SIGKILL.
            USERHUB_SHUTDOWN_TIMEOUT="5",
        )
        if TRUSTED_PROXIES is not None:
            env["USERHUB_TRUSTED_PROXIES"] = TRUSTED_PROXIES
        env.update(self.app_env)
        return env

    def _bin(self, program: str) -> str:
        """A command of the checkout's virtualenv (or of the one running this file)."""
        for folder in (self.repo / ".venv" / "bin", Path(sys.executable).parent):
            if (folder / program).exists():
                return str(folder / program)
        raise ClusterError(f"{program} not found in {self.repo}/.venv/bin: run `make install`")

    # -- timing

    def say(self, message: str) -> None:
        """Print ``message`` after the seconds since ``start()`` (or since this object was made)."""
        self._log(f"[{time.monotonic() - self._t0:6.1f}s] {message}")

    @contextlib.contextmanager
    def _phase(self, name: str) -> Iterator[None]:
        start = time.monotonic()
        yield
        self.timings[name] = round(time.monotonic() - start, 2)
        self.say(f"{name}: {self.timings[name]:.1f}s")

    # -- PIDs

    def _pid_file(self, name: str) -> Path:
        return self.pids_dir / f"{name}.pid"

    def pid(self, name: str) -> int | None:
        """The PID of a component that runs now, else None.

        The recorded PID counts only if that process started before its pid file was written:
        after a reboot or a long pause the number may belong to someone else, who is left alone.
        """
        path = self._pid_file(name)
        try:
            pid = int(path.read_text().split()[0])
            written = path.stat().st_mtime
        except (FileNotFoundError, ValueError, IndexError):
            return None
        child = self._children.get(name)
        if child is not None and child.pid == pid:
            child.poll()  # collects it if it has exited, so it is not a zombie of ours
        stat = _proc_stat(pid)
        if stat is None or _started_at(stat[2]) > written + 1.5:
            return None
        return pid

    def alive(self, name: str) -> bool:
        return self.pid(name) is not None

    def _spawn(self, name: str, argv: list[str], env: Mapping[str, str] | None = None) -> int:
        """Start a component in its own session (so its whole process group can be signalled,
        and a Ctrl+C in the caller's terminal does not reach it) and record its PID."""
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        self.pids_dir.mkdir(parents=True, exist_ok=True)
        with self.log_path(name).open("ab") as out:
            out.write(f"--- {time.strftime('%H:%M:%S')} {' '.join(argv)}\n".encode())
            out.flush()
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.state,  # not the checkout: its .env must not configure the cluster
                env=dict(env) if env is not None else None,
                start_new_session=True,
            )
        self._children[name] = proc
        tmp = self._pid_file(name).with_suffix(".tmp")
        tmp.write_text(f"{proc.pid}\n")
        tmp.replace(self._pid_file(name))
        return proc.pid

    def _wait_gone(self, name: str, pgid: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            child = self._children.get(name)
            if child is not None:
                child.poll()
            if not _group_alive(pgid):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(POLL)

    def _signal(self, groups: Mapping[str, int], sig: signal.Signals, timeout: float) -> list[str]:
        """Send ``sig`` to every process group of ``groups`` (name: group id) at once, wait for
        all of them; return the names still running after ``timeout``."""
        for pgid in groups.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, sig)
        deadline = time.monotonic() + timeout
        return [
            name
            for name, pgid in groups.items()
            if not self._wait_gone(name, pgid, max(0.0, deadline - time.monotonic()))
        ]

    def terminate(self, name: str, timeout: float = STOP_TIMEOUT) -> None:
        """Stop one component: SIGTERM to its group, SIGKILL after ``timeout`` seconds."""
        self._stop_all([name], timeout)

    def _stop_all(self, names: Iterable[str], timeout: float) -> None:
        names = list(names)
        # start_new_session: each PID is also its group's id. Kept from here on, so that a
        # worker outliving its parent is still found by the group.
        groups = {name: pid for name in names if (pid := self.pid(name)) is not None}
        if stuck := self._signal(groups, signal.SIGTERM, timeout):
            self.say(f"{', '.join(stuck)} still running {timeout:.0f}s after SIGTERM: SIGKILL")
            if left := self._signal(
                {name: groups[name] for name in stuck}, signal.SIGKILL, timeout
            ):
                raise ClusterError(f"{', '.join(left)} survived SIGKILL")
        for name in names:
            self._pid_file(name).unlink(missing_ok=True)
            if (child := self._children.pop(name, None)) is not None:
                # Reap it: its group may have looked gone while it was still a zombie, and a
                # Popen dropped before its exit status is read warns (ResourceWarning).
                child.wait(timeout=timeout)

    def kill(self, name: str) -> None:
        """SIGKILL a component's whole process group (a crash, for the failure tests); return
        once every process of it is gone. Its pid file stays, so ``stop()`` still finds it."""
        if (pid := self.pid(name)) is None:
            raise ClusterError(f"{name} is not running")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        if not self._wait_gone(name, pid, STOP_TIMEOUT):
            raise ClusterError(f"{name} (pid {pid}) survived SIGKILL")
        self.say(f"killed {name} (pid {pid}) with SIGKILL")

    # -- readiness

    def _wait(
        self, name: str, ready: Callable[[], bool], what: str, log: Path | None = None
    ) -> None:
        """Poll ``ready`` until it holds; fail early, with the log, if the process died."""
        deadline = time.monotonic() + START_TIMEOUT
        while not ready():
            if not self.alive(name):
                raise ClusterError(
                    f"{name} exited before {what}; {_tail(log or self.log_path(name))}"
                )
            if time.monotonic() > deadline:
                raise ClusterError(
                    f"{name}: no {what} after {START_TIMEOUT:.0f}s; "
                    + _tail(log or self.log_path(name))
                )
            time.sleep(POLL)

    @staticmethod
    def http_status(url: str, timeout: float = 2.0) -> int | None:
        """The status of a GET, or None when nothing answers."""
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (http://127.0.0.1 only)
                return int(response.status)
        except urllib.error.HTTPError as exc:
            exc.close()  # it holds the response; left open it would warn (ResourceWarning)
            return exc.code
        except (OSError, ValueError):
            return None

    def _healthy(self, base: str) -> bool:
        return self.http_status(f"{base}/api/v1/health") == 200

    # -- SQL

    def mysql(
        self, node: int, sql: str, *, database: str | None = None, timeout: float = 30
    ) -> list[list[str]]:
        """Run ``sql`` on Galera node N as root over TCP; the rows, as lists of strings
        (``NULL`` for NULL). Raises ClusterError with the client's message on failure."""
        argv = [
            "mariadb",
            "--no-defaults",  # never a ~/.my.cnf or /etc/mysql pointing somewhere else
            "--host=127.0.0.1",
            f"--port={sql_port(node)}",
            "--user=root",
            "--batch",
            "--skip-column-names",
            "--connect-timeout=2",
            f"--execute={sql}",
        ]
        if database:
            argv.append(database)
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise ClusterError(f"galera{node}: no answer in {timeout:.0f}s to {sql!r}") from exc
        if done.returncode != 0:
            raise ClusterError(f"galera{node}: {done.stderr.strip()}")
        return [line.split("\t") for line in done.stdout.splitlines()]

    def galera_state(self, node: int) -> dict[str, str]:
        """wsrep_ready, wsrep_cluster_size, wsrep_cluster_status and wsrep_local_state_comment
        of node N (empty if it does not answer)."""
        try:
            rows = self.mysql(
                node,
                "SHOW GLOBAL STATUS WHERE Variable_name IN ('wsrep_ready', 'wsrep_cluster_size',"
                " 'wsrep_cluster_status', 'wsrep_local_state_comment')",
                timeout=5,
            )
        except ClusterError:
            return {}
        return {row[0]: row[1] for row in rows if len(row) == 2}

    def synced(self, node: int, size: int) -> bool:
        state = self.galera_state(node)
        return (
            state.get("wsrep_ready") == "ON"
            and state.get("wsrep_local_state_comment") == "Synced"
            and state.get("wsrep_cluster_size") == str(size)
        )

    # -- start

    def check_ports(self) -> None:
        """Every port the cluster needs must be free before anything starts; the error names
        each busy one and, where ``ss`` tells, who holds it."""
        busy = [
            f"{port} ({role}) is in use" + (f" by {who}" if (who := _listener(port)) else "")
            for port, role in all_ports().items()
            if not _port_free(port)
        ]
        if busy:
            raise ClusterError("cannot start the local cluster: " + "; ".join(busy))

    def start(self) -> dict[str, float]:
        """Bring up the whole cluster; return how long each phase took (also printed, and
        saved to ``timings.json``). On any failure everything started so far is stopped."""
        self._t0 = time.monotonic()
        self.timings = {}
        if running := [name for name in self.names if self.alive(name)]:
            raise ClusterError(
                f"{', '.join(running)} already running from {self.state}: stop that cluster first"
            )
        programs = {
            "mariadbd": _find("mariadbd", "apt-get install mariadb-server"),
            "install-db": _find("mariadb-install-db", "apt-get install mariadb-server"),
            "redis": _find("redis-server", "apt-get install redis-server"),
            "nginx": _find("nginx", "apt-get install nginx (deploy/README.md)"),
        }
        _find("mariadb", "apt-get install mariadb-client")
        _find("rsync", "apt-get install rsync (Galera's SST)")
        if not GALERA_PROVIDER.exists():
            raise ClusterError(f"{GALERA_PROVIDER} not found: apt-get install galera-4")
        self.check_ports()
        # Only a folder this tool made, or an empty one, is wiped: a --dir pointed at the wrong
        # folder must not cost its contents.
        if self.state.exists() and not self._ours() and any(self.state.iterdir()):
            raise ClusterError(
                f"{self.state} is not empty and was not made by localcluster.py: "
                "choose another --dir"
            )
        try:
            with self._phase("total start"):
                self._fresh_state_dir()
                with self._phase("galera (3 nodes synced)"):
                    self._start_galera(programs["mariadbd"], programs["install-db"])
                with self._phase("redis"):
                    self._start_redis(programs["redis"])
                with self._phase("database and migrations"):
                    self._migrate()
                with self._phase("userhub (3 instances healthy)"):
                    for n in NODES:
                        self._spawn_userhub(n)
                    for n in NODES:
                        healthy = functools.partial(self._healthy, self.userhub_url(n))
                        self._wait(f"userhub{n}", healthy, "health 200")
                with self._phase("nginx"):
                    self._start_nginx(programs["nginx"])
        except BaseException:
            self.say(f"start failed: stopping what was started (logs stay in {self.logs_dir})")
            self.stop()
            raise
        (self.state / "timings.json").write_text(json.dumps(self.timings, indent=2) + "\n")
        self.say(f"cluster up: {self.url} (state in {self.state})")
        return dict(self.timings)

    def _ours(self) -> bool:
        """Whether the state directory was made by this tool (it holds the marker file)."""
        return (self.state / MARKER).exists()

    def _fresh_state_dir(self) -> None:
        """Wipe the state directory (``start`` has checked that it is ours, or empty)."""
        if self.state.exists():
            shutil.rmtree(self.state)
        for folder in (self.state, self.pids_dir, self.logs_dir, self.state / "nginx"):
            folder.mkdir(parents=True)
        (self.state / MARKER).write_text("made by deploy/localcluster.py; wiped by its start\n")
        secret = self.state / "secret_key"
        fd = os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(48) + "\n")

    # -- Galera

    def _db_user(self) -> pwd.struct_passwd:
        """mariadbd's user: ``mysql`` when run as root (rsync SST fails as root), else us."""
        if os.geteuid() == 0:
            try:
                return pwd.getpwnam("mysql")
            except KeyError as exc:
                raise ClusterError("no mysql user: apt-get install mariadb-server") from exc
        return pwd.getpwuid(os.geteuid())

    def _write_node_config(self, node: int) -> None:
        user = self._db_user()
        node_dir = self._node_dir(node)
        (node_dir / "data").mkdir(parents=True)
        for folder in (node_dir, node_dir / "data"):
            os.chown(folder, user.pw_uid, user.pw_gid)
            folder.chmod(0o750)
        values = {
            "NODE": str(node),
            "USER": user.pw_name,
            "NODE_DIR": str(node_dir),
            "SQL_PORT": str(sql_port(node)),
            "GCOMM_PORT": str(gcomm_port(node)),
            "IST_PORT": str(ist_port(node)),
            "SST_PORT": str(sst_port(node)),
        }
        self._node_cnf(node).write_text(
            _render(DEPLOY_DIR / "galera" / "node.cnf.template", values)
        )

    def _start_galera(self, mariadbd: str, install_db: str) -> None:
        for n in NODES:
            self._write_node_config(n)
        # Only the first node gets system tables; the others receive a copy of its datadir
        # (SST). "normal" root authentication: root with an empty password from localhost,
        # 127.0.0.1 and ::1, which is how the instances connect (a loopback-only test cluster).
        cnf = self._node_cnf(1)
        install = [
            install_db,
            f"--defaults-file={cnf}",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
        ]
        with self.log_path("galera1-install").open("wb") as log:
            done = subprocess.run(
                install, stdout=log, stderr=subprocess.STDOUT, cwd=self.state, timeout=120
            )
        if done.returncode != 0:
            raise ClusterError(
                f"mariadb-install-db failed; {_tail(self.log_path('galera1-install'))}"
            )
        self._spawn("galera1", [mariadbd, f"--defaults-file={cnf}", "--wsrep-new-cluster"])
        self._wait("galera1", lambda: self.synced(1, 1), "wsrep_ready=ON (new cluster)")
        self.say("galera1 ready: a new cluster of 1")
        for n in NODES[1:]:
            began = time.monotonic()
            self._spawn(f"galera{n}", [mariadbd, f"--defaults-file={self._node_cnf(n)}"])
            self._wait(
                f"galera{n}", functools.partial(self.synced, n, n), f"Synced in a cluster of {n}"
            )
            self.timings[f"galera{n} join (SST)"] = round(time.monotonic() - began, 2)
            self.say(f"galera{n} joined by {self.last_state_transfer(n)}: cluster size {n}")

    def recovered_position(self, node: int) -> str:
        """``uuid:seqno`` of the last transaction node N committed, read from its data by
        ``mariadbd --wsrep-recover`` (which needs the node stopped)."""
        mariadbd = _find("mariadbd", "apt-get install mariadb-server")
        done = subprocess.run(
            [mariadbd, f"--defaults-file={self._node_cnf(node)}", "--wsrep-recover"],
            capture_output=True,
            text=True,
            cwd=self.state,
            timeout=120,
        )
        with self.log_path(f"galera{node}").open("a") as log:
            log.write(f"--- --wsrep-recover\n{done.stdout}{done.stderr}")
        found = re.findall(r"WSREP: Recovered position: ([0-9a-f-]{36}:-?\d+)", done.stderr)
        if not found:
            raise ClusterError(f"galera{node}: --wsrep-recover found no position:\n{done.stderr}")
        return str(found[-1])

    def last_state_transfer(self, node: int) -> str:
        """How node N caught up when it last started: ``"IST"`` (only the missing writes, from
        a donor's gcache), ``"SST"`` (a full copy of a donor's datadir) or ``"none"``; read from
        the rsync script's lines in its log."""
        log = self.log_path(f"galera{node}").read_text(errors="replace")
        last_start = log.rsplit("\n--- ", 1)[-1]
        if "rsync SST completed" in last_start:
            return "SST"
        if "rsync IST completed" in last_start:
            return "IST"
        return "none"

    def restart_galera_node(self, node: int) -> float:
        """Bring a stopped or killed node back: recover its position, start it there, wait until
        it is Synced in a cluster of 3 again. The missing writes come by IST from a donor's
        gcache. Returns the seconds it took, recovery included."""
        name = f"galera{node}"
        if self.alive(name):
            raise ClusterError(f"{name} is still running: kill or terminate it first")
        start = time.monotonic()
        position = self.recovered_position(node)
        self.say(f"{name}: recovered position {position}")
        mariadbd = _find("mariadbd", "apt-get install mariadb-server")
        self._spawn(
            name,
            [
                mariadbd,
                f"--defaults-file={self._node_cnf(node)}",
                f"--wsrep-start-position={position}",
            ],
        )
        self._wait(name, lambda: self.synced(node, len(NODES)), "Synced in a cluster of 3")
        took = round(time.monotonic() - start, 2)
        self.timings[f"{name} rejoin"] = took
        self.say(f"{name} rejoined and Synced in {took:.1f}s")
        return took

    # -- Redis, the app, nginx

    def _start_redis(self, redis_server: str) -> None:
        (self.state / "redis").mkdir()
        self._spawn(
            "redis",
            [
                redis_server,
                "--bind",
                "127.0.0.1",
                "--port",
                str(REDIS_PORT),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.state / "redis"),
                "--daemonize",
                "no",
                "--logfile",
                "",
            ],
        )
        self._wait("redis", self.redis_ping, "PONG")

    @staticmethod
    def redis_ping() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", REDIS_PORT), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def _migrate(self) -> None:
        self.mysql(1, f"CREATE DATABASE {DATABASE} CHARACTER SET utf8mb4")
        done = subprocess.run(
            [self._bin("flask"), "--app", "userhub", "db", "upgrade"],
            env=self.app_environment(1),
            cwd=self.state,
            capture_output=True,
            text=True,
            timeout=120,
        )
        with self.log_path("migrate").open("w") as log:
            log.write(done.stdout + done.stderr)
        if done.returncode != 0:
            raise ClusterError(f"flask db upgrade failed:\n{done.stdout}{done.stderr}")

    def _spawn_userhub(self, instance: int) -> None:
        self._spawn(
            f"userhub{instance}", [self._bin("userhub"), "serve"], self.app_environment(instance)
        )

    def restart_userhub(self, instance: int) -> float:
        """Stop instance N if it runs, start it again, wait for its health check; the seconds
        it took."""
        name = f"userhub{instance}"
        start = time.monotonic()
        self.terminate(name)
        self._spawn_userhub(instance)
        self._wait(name, lambda: self._healthy(self.userhub_url(instance)), "health 200")
        took = round(time.monotonic() - start, 2)
        self.say(f"{name} restarted and healthy in {took:.1f}s")
        return took

    def _nginx_argv(self, nginx: str) -> list[str]:
        # -e: the error log before the configuration is read (else Debian's /var/log/nginx).
        return [
            nginx,
            "-c",
            str(self.state / "nginx.conf"),
            "-p",
            str(self.state / "nginx") + "/",
            "-e",
            str(self.log_path("nginx-error")),
        ]

    def _start_nginx(self, nginx: str) -> None:
        conf = render_nginx_config(self.state)
        (self.state / "nginx.conf").write_text(conf)
        test = subprocess.run(
            [*self._nginx_argv(nginx), "-t", "-q"], capture_output=True, text=True, timeout=30
        )
        if test.returncode != 0:
            raise ClusterError(f"nginx rejects {self.state / 'nginx.conf'}:\n{test.stderr}")
        self._spawn("nginx", self._nginx_argv(nginx))
        self._wait(
            "nginx",
            lambda: self._healthy(self.url),
            "health 200 through nginx",
            self.log_path("nginx-error"),
        )

    # -- stop, status

    def stop(self) -> float:
        """Stop everything this state directory records, by PID: the front first, the
        databases last, each tier at once. Safe to repeat, and after a crashed run (missing pid
        files and dead processes are skipped). Returns the seconds it took."""
        start = time.monotonic()
        if not self._ours():  # nothing of ours here: never signal PIDs from a stranger's files
            self.say(f"no cluster in {self.state}: nothing to stop")
            return 0.0
        known = {path.stem for path in self.pids_dir.glob("*.pid")}
        tiers = [["nginx"], list(self.userhub_names), ["redis"], list(self.galera_names)]
        tiers.append(sorted(known - set(self.names)))  # anything else it recorded
        for tier in tiers:
            if present := [name for name in tier if name in known]:
                began = time.monotonic()
                self._stop_all(present, STOP_TIMEOUT)
                self.say(f"stopped {', '.join(present)} in {time.monotonic() - began:.1f}s")
        # Collect children of this object that another one stopped (a shell trap, a second
        # Cluster): an uncollected Popen warns (ResourceWarning) when it is garbage-collected.
        for name, child in list(self._children.items()):
            if child.poll() is not None:
                del self._children[name]
        took = round(time.monotonic() - start, 2)
        self.say(f"stopped in {took:.1f}s")
        return took

    def status(self) -> list[dict[str, Any]]:
        """One entry per component: name, pid, alive, and for Galera nodes their wsrep state."""
        report = []
        for name in self.names:
            pid = self.pid(name)
            entry: dict[str, Any] = {"name": name, "pid": pid, "alive": pid is not None}
            if name.startswith("galera") and pid is not None:
                entry.update(self.galera_state(int(name.removeprefix("galera"))))
            report.append(entry)
        return report

    def print_status(self) -> bool:
        """Print ``status()``; True if everything runs."""
        report = self.status()
        for entry in report:
            state = "up" if entry["alive"] else "down"
            line = f"{entry['name']:<9} pid {entry['pid'] or '-':<8} {state}"
            if "wsrep_cluster_size" in entry:
                line += (
                    f"  cluster size {entry['wsrep_cluster_size']},"
                    f" {entry.get('wsrep_local_state_comment')}, ready {entry.get('wsrep_ready')}"
                )
            print(line)
        return all(entry["alive"] for entry in report)


# --- the failure drill --------------------------------------------------------------------------


def drill(cluster: Cluster) -> dict[str, Any]:
    """Measure on a running cluster what a crash costs: SIGKILL galera3 while node 1 takes
    writes (seconds until a write commits again), restart it (seconds to rejoin; are the rows
    written meanwhile on it?), then SIGKILL and restart userhub2 (GETs through nginx meanwhile).
    Leaves the cluster as it found it, plus a ``drill`` database."""
    results: dict[str, Any] = {}
    cluster.mysql(1, "CREATE DATABASE IF NOT EXISTS drill")
    cluster.mysql(
        1,
        "CREATE TABLE IF NOT EXISTS drill.t"
        " (id BIGINT AUTO_INCREMENT PRIMARY KEY, note VARCHAR(20))",
    )

    def write(note: str) -> None:
        sql = f"INSERT INTO drill.t (note) VALUES ('{note}')"  # noqa: S608 (notes are ours)
        cluster.mysql(1, sql, timeout=30)

    write("before")
    killed = time.monotonic()
    cluster.kill("galera3")
    write("during")  # blocks until the survivors have evicted node 3
    results["galera write stall s"] = round(time.monotonic() - killed, 2)
    cluster.say(
        f"first write after killing galera3 committed after {results['galera write stall s']:.1f}s"
    )
    for i in range(20):
        write(f"while-down-{i}")
    size = cluster.galera_state(1).get("wsrep_cluster_size")
    cluster.say(f"20 more writes on node 1 with galera3 down (cluster size {size})")
    results["galera rejoin s"] = cluster.restart_galera_node(3)
    counts = [cluster.mysql(n, "SELECT COUNT(*) FROM drill.t")[0][0] for n in NODES]
    results["galera3 caught up by"] = transfer = cluster.last_state_transfer(3)
    cluster.say(f"rows on nodes 1, 2, 3: {', '.join(counts)}; galera3 caught up by {transfer}")
    if len(set(counts)) != 1:
        raise ClusterError(f"nodes disagree after the rejoin: {counts}")

    failed = 0
    cluster.kill("userhub2")
    for _ in range(30):
        failed += cluster.http_status(f"{cluster.url}/api/v1/health") != 200
    results["GETs failed while userhub2 down (of 30)"] = failed
    results["userhub restart s"] = cluster.restart_userhub(2)
    cluster.say(f"{failed} of 30 GETs through nginx failed with userhub2 down")
    return results


# --- command line -------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="localcluster.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=("start", "stop", "status", "drill", "ports"))
    parser.add_argument(
        "--dir", help=f"state directory (default: ${STATE_DIR_ENV} or {DEFAULT_STATE_DIR})"
    )
    args = parser.parse_args(argv)
    cluster = Cluster(args.dir)
    try:
        if args.command == "start":
            cluster.start()
        elif args.command == "stop":
            cluster.stop()
        elif args.command == "status":
            return 0 if cluster.print_status() else 1
        elif args.command == "ports":
            cluster.check_ports()
            print("all ports free: " + ", ".join(map(str, all_ports())))
        else:
            print(json.dumps(drill(cluster), indent=2))
    except ClusterError as exc:
        print(f"localcluster: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
