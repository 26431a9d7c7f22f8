"""How fast ``flask --app userhub import-users`` is, against the hashing bound of this machine.

Run: ``.venv/bin/python bench/import_users.py`` (10,000 users into a fresh SQLite file), or with
``--database-url 'mysql+pymysql://root@127.0.0.1:3306/userhub_bench?charset=utf8mb4'`` for
MySQL/MariaDB (that database is dropped and created: its name must contain ``bench``).

It writes N generated users (username, password, display_name, email) to a CSV file in a
temporary folder, measures the CPU time of one argon2id hash at the configured parameters
(``USERHUB_ARGON2_*``, as the command will use them; ``time.process_time``, the median of 7
rounds of 10 hashes), runs the real command in a child process (wall time of the whole command,
start-up included), checks that a few imported passwords log in, runs the command again to show
that a re-run creates nothing, and records the numbers under the backend's key in
``bench/results/import.json``, with the CPU time other processes (the MySQL server among them)
took meanwhile: a busy machine lowers the ratio, so measure on a quiet one.

The bound: with ``cores`` cores and ``h`` CPU seconds per hash, no import can create more than
``cores / h`` users a second; ``ratio_to_bound`` is how close the import gets.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import random
import re
import resource
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask import Flask
from flask_migrate import upgrade
from machine import cpu_model
from sqlalchemy.engine import make_url

from userhub import create_app
from userhub.config import available_cores
from userhub.extensions import db
from userhub.services import users
from userhub.services.passwords import passwords

RESULTS = Path(__file__).parent / "results" / "import.json"
HASH_ROUNDS = 7
HASHES_PER_ROUND = 10
SUMMARY = re.compile(r"created (\d+), skipped (\d+) \(already exist\), bad (\d+)")
SYSTEM_DATABASES = {"", "test", "mysql", "information_schema", "performance_schema", "sys"}


def generate_csv(path: Path, count: int) -> dict[str, str]:
    """``count`` users in an import file; their passwords, by username."""
    passwords_by_user = {}
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["username", "password", "display_name", "email"])
        for n in range(count):
            username = f"bench{n:06d}"
            password = secrets.token_urlsafe(12)
            passwords_by_user[username] = password
            writer.writerow([username, password, f"Bench User {n}", f"{username}@example.com"])
    return passwords_by_user


def recreate_mysql_database(url: str) -> None:
    name = make_url(url).database or ""
    if name in SYSTEM_DATABASES or "bench" not in name or not re.fullmatch(r"\w+", name):
        raise SystemExit(
            f"refusing database {name!r}: this benchmark drops and creates its database, so "
            "give it one of its own whose name contains 'bench', e.g. userhub_bench"
        )
    server = sa.create_engine(make_url(url).set(database=""))
    with server.begin() as connection:
        connection.exec_driver_sql(f"DROP DATABASE IF EXISTS `{name}`")
        connection.exec_driver_sql(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    server.dispose()


def hash_cpu_seconds(app: Flask) -> float:
    """CPU time of one hash with the app's parameters: the median of ``HASH_ROUNDS`` rounds,
    each the mean of ``HASHES_PER_ROUND`` hashes."""
    with app.app_context():
        hasher = passwords()
        hasher.hash("warm-up password")
        rounds = []
        for _ in range(HASH_ROUNDS):
            start = time.process_time()
            for _ in range(HASHES_PER_ROUND):
                hasher.hash("correct horse battery")
            rounds.append((time.process_time() - start) / HASHES_PER_ROUND)
    return statistics.median(rounds)


def flask_command() -> list[str]:
    script = Path(sys.executable).with_name("flask")
    return [str(script)] if script.exists() else [sys.executable, "-m", "flask"]


def machine_busy_seconds() -> float | None:
    """CPU seconds every process on the machine has used since boot (Linux), to tell how much
    of a run's CPU went to other processes."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fields[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def run_import(csv_file: Path, options: list[str]) -> dict[str, Any]:
    """Run the command once; its counts, wall time, CPU time (all its threads), and the CPU
    time other processes took meanwhile (a busy machine makes the numbers pessimistic)."""
    command = [*flask_command(), "--app", "userhub", "import-users", str(csv_file), *options]
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy_before = machine_busy_seconds()
    start = time.perf_counter()
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=False)  # noqa: S603
    seconds = time.perf_counter() - start
    busy_after = machine_busy_seconds()
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    match = SUMMARY.search(done.stdout)
    if done.returncode != 0 or match is None:
        raise SystemExit(f"import-users failed ({done.returncode}):\n{done.stdout}")
    created, skipped, bad = map(int, match.groups())
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    others = None
    if busy_before is not None and busy_after is not None:
        others = round(max(0.0, busy_after - busy_before - cpu), 2)
    return {
        "created": created,
        "skipped": skipped,
        "bad": bad,
        "seconds": round(seconds, 2),
        "cpu_seconds": round(cpu, 2),
        "other_processes_cpu_seconds": others,
    }


def check_logins(app: Flask, passwords_by_user: dict[str, str], sample: int = 3) -> None:
    with app.app_context():
        for username in random.sample(sorted(passwords_by_user), sample):
            if users.authenticate(username, passwords_by_user[username]) is None:
                raise SystemExit(f"imported user {username} cannot log in")
        db.session.remove()
        db.engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=10_000, help="how many users (10000)")
    parser.add_argument(
        "--database-url", help="default: a fresh SQLite file; a MySQL database is recreated"
    )
    parser.add_argument("--workers", type=int, help="passed to import-users (default: cores)")
    parser.add_argument("--batch-size", type=int, help="passed to import-users (default: 500)")
    parser.add_argument("--results", type=Path, default=RESULTS, help=f"default: {RESULTS}")
    args = parser.parse_args()
    load_before = [round(x, 2) for x in os.getloadavg()]

    with tempfile.TemporaryDirectory(prefix="userhub-bench-") as folder:
        work = Path(folder)
        url = args.database_url or f"sqlite:///{work / 'bench.sqlite3'}"
        backend = make_url(url).get_backend_name()
        if backend != "sqlite":
            recreate_mysql_database(url)
        # The child process and the app built here read the same settings (and .env).
        os.environ["USERHUB_DATABASE_URL"] = url
        os.environ["USERHUB_INSTANCE_PATH"] = str(work / "instance")
        app = create_app()
        with app.app_context():
            upgrade()
            server = db.session.scalar(
                sa.text("SELECT sqlite_version()" if backend == "sqlite" else "SELECT VERSION()")
            )
            db.session.remove()
            db.engine.dispose()
        hash_seconds = hash_cpu_seconds(app)
        cores = available_cores()
        bound = cores / hash_seconds
        options = []
        if args.workers:
            options += ["--workers", str(args.workers)]
        if args.batch_size:
            options += ["--batch-size", str(args.batch_size)]

        csv_file = work / "users.csv"
        passwords_by_user = generate_csv(csv_file, args.users)
        header_only = work / "empty.csv"
        header_only.write_text("username,password\n", encoding="utf-8")
        startup = run_import(header_only, options)["seconds"]  # start-up and exit, no rows
        first = run_import(csv_file, options)
        check_logins(app, passwords_by_user)
        second = run_import(csv_file, options)

    rate = first["created"] / first["seconds"]
    # Other processes' CPU time during the run is CPU the import could not have: the bound
    # on what was left to it (None where /proc/stat cannot be read).
    others = first["other_processes_cpu_seconds"]
    left_bound = None
    if others is not None:
        left_cores = max(cores * first["seconds"] - others, 0.0) / first["seconds"]
        left_bound = left_cores / hash_seconds
    result = {
        "n": args.users,
        "backend": backend,
        "server_version": server,
        "cores": cores,
        "workers": args.workers or cores,
        "batch_size": args.batch_size or 500,
        "argon2": {
            "time_cost": app.config["ARGON2_TIME_COST"],
            "memory_kib": app.config["ARGON2_MEMORY_KIB"],
            "parallelism": app.config["ARGON2_PARALLELISM"],
        },
        "seconds": first["seconds"],
        "users_per_second": round(rate, 1),
        "hash_cpu_ms": round(hash_seconds * 1000, 2),
        "hashing_bound_per_second": round(bound, 1),
        "ratio_to_bound": round(rate / bound, 3),
        "ratio_to_cpu_left_by_other_processes": (
            round(rate / left_bound, 3) if left_bound else None
        ),
        "first_run": first,
        "startup_seconds": startup,
        "second_run": second,
        "machine": {
            "cpu": cpu_model(),
            "python": platform.python_version(),
            "load_average_before": load_before,
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
        },
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "command": " ".join(["flask --app userhub import-users FILE.csv", *options]),
    }
    args.results.parent.mkdir(parents=True, exist_ok=True)
    everything = json.loads(args.results.read_text()) if args.results.exists() else {}
    everything[backend] = result
    args.results.write_text(json.dumps(everything, indent=2, ensure_ascii=False) + "\n")

    print(
        f"{backend}: {first['created']} users in {first['seconds']} s = {rate:.1f} users/s; "
        f"one hash {hash_seconds * 1000:.2f} ms CPU, bound {cores} cores / hash = "
        f"{bound:.1f}/s; ratio {rate / bound:.3f}\n"
        f"start-up {startup} s; the import used {first['cpu_seconds']} s of CPU of "
        f"{first['seconds'] * cores:.1f} core-seconds, other processes "
        f"{others} s (ratio to the CPU they left: "
        f"{result['ratio_to_cpu_left_by_other_processes']})\n"
        f"second run: created {second['created']}, skipped {second['skipped']}, "
        f"bad {second['bad']} in {second['seconds']} s\n"
        f"written to {args.results}"
    )


if __name__ == "__main__":
    main()
