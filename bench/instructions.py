"""Instructions per request, userhub at an earlier commit against this checkout, counted by
valgrind's callgrind: a figure that, unlike req/s, does not move with what else the machine runs.

Each side is served in process by Flask's test client, one thread, on a fresh MariaDB database
of its own (the older one from a temporary ``git worktree``, as ``bench/run.py`` serves its
baselines), in production mode. For each read of ``SCENARIOS`` it warms up, then counts the
instructions of ``--requests`` requests between two callgrind dumps (``callgrind_control -d``),
less what a dump itself costs. Counted: the userhub process's user-space instructions (Flask's
test client included, the same on both sides); not counted: MariaDB's work, the kernel, the
front server. The count repeats within about 1% from run to run.

    .venv/bin/python bench/instructions.py [--before REF] [--requests N]

writes ``bench/results/instructions.json`` and prints a Markdown table. Needs valgrind.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import run  # bench/run.py: the baselines' worktrees, databases and environment

PROBE_FLAG = "--probe"
SCENARIOS = {s.name: s for s in run.SCENARIOS if s.name in run.BASELINE_SCENARIOS}
BASE_URL = "https://127.0.0.1"  # the session cookie is Secure in production
CAL = "calibration"


def probe(requests: int, warm: int) -> None:
    """In the process callgrind runs: log in, then count each scenario's requests."""
    from userhub import create_app

    app = create_app()
    browser, visitor = app.test_client(), app.test_client()
    page = browser.get("/login", base_url=BASE_URL).get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)
    assert csrf, page
    credentials = {"username": run.BENCH_USER, "password": run.BENCH_PASSWORD}
    logged_in = browser.post(
        "/test_post",
        base_url=BASE_URL,
        headers={"Referer": f"{BASE_URL}/login"},  # Flask-WTF's strict check over HTTPS
        data={**credentials, "csrf_token": csrf[1]},
    )
    assert logged_in.status_code == 302, logged_in.status_code
    token = visitor.post("/api/v1/tokens", base_url=BASE_URL, json=credentials).get_json()["token"]

    def dump(name: str) -> None:
        command = ["callgrind_control", "-d", name, str(os.getpid())]
        subprocess.run(command, check=True, capture_output=True)  # noqa: S603

    def send(name: str) -> int:
        scenario = SCENARIOS[name]
        client = browser if scenario.cookie else visitor
        headers = {"Authorization": f"Bearer {token}"} if scenario.token else {}
        return client.get(scenario.path, base_url=BASE_URL, headers=headers).status_code

    dump("start")
    dump(CAL)  # what a dump costs, and nothing else
    for number, name in enumerate(SCENARIOS):
        for _ in range(warm):
            assert send(name) == 200, name
        dump(f"warm-{number}")
        for _ in range(requests):
            send(name)
        dump(f"scenario-{number}")  # a plain word: callgrind_control cuts a name at a space


def counted(folder: Path) -> dict[str, int]:
    """Instructions per dump, by the dump's name."""
    counts = {}
    for path in folder.glob("callgrind.out*"):
        head = path.read_text(errors="replace")[:4000]
        trigger = re.search(r"^desc: Trigger: (?:Client Request: )?dump (.+)$", head, re.M)
        total = re.search(r"^(?:summary|totals): (\d+)", head, re.M)
        if trigger and total:
            counts[trigger[1].strip()] = int(total[1])
    return counts


def measure(label: str, env: dict[str, str], folder: Path, args: argparse.Namespace) -> Any:
    """Run the probe under callgrind with ``env``; instructions per request by scenario."""
    out = folder / f"callgrind-{run.safe_name(label)}"
    out.mkdir()
    command = [
        *("valgrind", "--tool=callgrind", f"--callgrind-out-file={out / 'callgrind.out'}"),
        *(sys.executable, __file__, PROBE_FLAG, str(args.requests), str(args.warm)),
    ]
    log = folder / f"{run.safe_name(label)}.log"
    with log.open("wb") as sink:
        done = subprocess.run(command, env=env, stdout=sink, stderr=subprocess.STDOUT, check=False)  # noqa: S603
    counts = counted(out)
    if done.returncode != 0 or CAL not in counts:
        sys.exit(f"the probe of {label} failed:\n{log.read_text()[-3000:]}")
    return {
        name: (counts[f"scenario-{number}"] - counts[CAL]) / args.requests
        for number, name in enumerate(SCENARIOS)
    }


def side(stack: ExitStack, folder: Path, ref: str | None, args: argparse.Namespace) -> Any:
    """A database for ``ref`` (None: this checkout), migrated by its code; its environment."""
    source = run.checkout(stack, ref, folder) / "src" if ref else run.ROOT / "src"
    name = f"userhub_bench_instructions_{run.safe_name(ref or 'now')}"
    instance = folder / f"instance-{run.safe_name(ref or 'now')}"
    url = run.prepare_database("mysql", args.mysql_url, instance, source, name)
    return run.userhub_env(url, instance / "instance-mysql", True, source)  # PYTHONPATH: source


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--before", default=run.BASELINES[-1].ref, metavar="REF")
    parser.add_argument("--requests", type=int, default=300, help="counted per scenario")
    parser.add_argument("--warm", type=int, default=50, help="uncounted, before the count")
    parser.add_argument("--mysql-url", default=run.DEFAULT_MYSQL)
    parser.add_argument("--output", default=str(run.RESULTS / "instructions.json"))
    args = parser.parse_args()
    for program in ("valgrind", "callgrind_control"):
        if not shutil.which(program):
            sys.exit(f"{program} is not installed: apt-get install valgrind")
    now = f"this checkout ({run._git_commit()})"
    before = args.before
    with tempfile.TemporaryDirectory(prefix="userhub-instructions-") as tmp, ExitStack() as stack:
        folder = Path(tmp)
        refs = {before: args.before, now: None}
        envs = {label: side(stack, folder, ref, args) for label, ref in refs.items()}
        counts = {label: measure(label, env, folder, args) for label, env in envs.items()}
    rows = [
        {
            "scenario": name,
            "before": round(counts[before][name]),
            "now": round(counts[now][name]),
            "ratio": round(counts[now][name] / counts[before][name], 3),
        }
        for name in SCENARIOS
    ]
    document = {
        "meta": {
            "before": args.before,
            "now": run._git_commit(),
            "requests": args.requests,
            "warm": args.warm,
            "command": " ".join(["bench/instructions.py", *sys.argv[1:]]),
        },
        "instructions_per_request": rows,
    }
    output = Path(args.output)
    output.write_text(json.dumps(document, indent=2) + "\n")
    print(f"| scenario | {args.before} | {run._git_commit()} | ratio |\n|---|---:|---:|---:|")
    for row in rows:
        print(f"| {row['scenario']} | {row['before']:,} | {row['now']:,} | {row['ratio']} |")
    print(f"\nwrote {output}")


if __name__ == "__main__":
    if sys.argv[1:2] == [PROBE_FLAG]:
        probe(int(sys.argv[2]), int(sys.argv[3]))
    else:
        main()
