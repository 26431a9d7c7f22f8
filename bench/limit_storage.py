"""What a rate-limit hit and test cost in each storage: memory, the SQLite file, Redis.

Run: ``.venv/bin/python bench/limit_storage.py [--redis redis://127.0.0.1:6379/15]`` (the Redis
database is flushed). The numbers in ``userhub/limit_storage.py``'s docstring came from it.

One process: the median, over ``RUNS`` runs, of the mean time of ``CALLS`` calls of ``limits``'
moving-window limiter, as Flask-Limiter and the per-account limit call it, on ``KEYS`` clients
with ``USERHUB_RATELIMIT_LOGIN``'s default (30 a minute), each filling its window to 20: every
hit is let through, so every hit writes; then a hit on a full window, which is refused.

Hammered: the SQLite file alone, 2 processes of 4 threads hitting as fast as they can (the
shape of ``userhub serve`` on 2 cores), hits let through, then hits refused: how many a second,
and how long a hit waited.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from multiprocessing.queues import Queue

import redis
from limits import RateLimitItem, parse
from limits.storage import Storage, storage_from_string
from limits.strategies import MovingWindowRateLimiter

import userhub.limit_storage  # noqa: F401 (registers sqlite://)

RUNS = 5
CALLS = 2000
KEYS = 100
LOGIN = parse("30 per minute")
FULL = parse("1 per minute")  # one hit, then every hit is refused
PROCESSES = 2
THREADS = 4


def mean_microseconds(call: Callable[[str], object], keys: list[str]) -> float:
    start = time.perf_counter()
    for n in range(CALLS):
        call(keys[n % KEYS])
    return (time.perf_counter() - start) / CALLS * 1e6


def measure(storage: Storage) -> tuple[float, float, float]:
    """Median microseconds of a hit let through, a test, and a hit refused."""
    limiter = MovingWindowRateLimiter(storage)
    limiter.hit(LOGIN, "warm-up")
    hits, tests, refusals = [], [], []
    for run in range(RUNS):
        keys = [f"run-{run}-client-{n}" for n in range(KEYS)]
        hits.append(mean_microseconds(lambda key: limiter.hit(LOGIN, key), keys))
        tests.append(mean_microseconds(lambda key: limiter.test(LOGIN, key), keys))
        for key in keys:
            limiter.hit(FULL, key)
        refusals.append(mean_microseconds(lambda key: limiter.hit(FULL, key), keys))
    return statistics.median(hits), statistics.median(tests), statistics.median(refusals)


def hammer_from_a_process(uri: str, item: RateLimitItem, waits: Queue[list[float]]) -> None:
    """``THREADS`` threads, each ``CALLS`` hits on ``KEYS`` keys of its own; every wait."""
    limiter = MovingWindowRateLimiter(storage_from_string(uri))
    seen: list[float] = []

    def hammer(thread: int) -> None:
        for n in range(CALLS):
            start = time.perf_counter()
            limiter.hit(item, f"{os.getpid()}-{thread}-{n % KEYS}")
            seen.append(time.perf_counter() - start)

    threads = [threading.Thread(target=hammer, args=(t,)) for t in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    waits.put(seen)


def hammer(uri: str, item: RateLimitItem) -> str:
    context = multiprocessing.get_context("fork")
    waits: Queue[list[float]] = context.Queue()
    processes = [
        context.Process(target=hammer_from_a_process, args=(uri, item, waits))
        for _ in range(PROCESSES)
    ]
    start = time.perf_counter()
    for process in processes:
        process.start()
    seen = sorted(wait for _ in processes for wait in waits.get())
    elapsed = time.perf_counter() - start
    for process in processes:
        process.join()
    return (
        f"{len(seen) / elapsed:8,.0f} hits/s; a hit waited {statistics.median(seen) * 1e6:.0f} µs "
        f"(median), {seen[int(len(seen) * 0.99)] * 1e3:.1f} ms (99th percentile), "
        f"{seen[-1] * 1e3:.0f} ms at worst"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis", help="a Redis database to measure too (it is flushed)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        sqlite_uri = f"sqlite:///{folder}/ratelimits.sqlite3"
        storages = {"memory://": "memory://", "SQLite file": sqlite_uri}
        if args.redis:
            redis.Redis.from_url(args.redis).flushdb()
            storages["Redis"] = args.redis
        for name, uri in storages.items():
            storage = storage_from_string(uri)
            assert isinstance(storage, Storage)
            hit, test, refused = measure(storage)
            print(
                f"{name:12} hit {hit:6.1f} µs   test {test:6.1f} µs   refused hit {refused:6.1f} "
                f"µs   (medians of {RUNS} runs of {CALLS})"
            )
            storage.reset()
        print(f"SQLite file, {PROCESSES} processes × {THREADS} threads hammering it:")
        print(f"  let through {hammer(sqlite_uri, LOGIN)}")
        print(f"  refused     {hammer(sqlite_uri, FULL)}")


if __name__ == "__main__":
    main()
