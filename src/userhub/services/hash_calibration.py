"""How costly an argon2id hash this machine should make: the measurement behind
``flask --app userhub calibrate-hashing``.

A stronger hash costs an attacker more per guess, and this server the same per log-in: each
log-in (and each registration, each password change) spends one hash's CPU time and, while it
runs, its memory. So the memory stays as configured (never below OWASP's 19 MiB) and the
iterations (``time_cost``) rise from OWASP's minimum until one hash takes the time asked for;
what that allows, log-ins per second per core, is ``1000 / CPU ms`` of a hash. The CPU time
rather than the time on the clock, since with several lanes (``parallelism``) one hash keeps
several cores busy at once.

Each step is the median of a few hashes, so a hiccup of the machine moves no step. Nothing
weaker than OWASP's floors (``config.ARGON2_MIN_*``) is ever measured or suggested: when even
the minimum takes longer than asked, the minimum is the answer.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

from argon2.low_level import Type, hash_secret_raw

from ..config import ARGON2_MIN_MEMORY_KIB, ARGON2_MIN_PARALLELISM, ARGON2_MIN_TIME_COST

SAMPLES = 5  # hashes per step; their median is the step's cost
MIN_TARGET_MS = 10
MAX_TARGET_MS = 10_000
HASH_BYTES = 32  # what PasswordHasher makes (services/passwords.py)
SALT_BYTES = 16


@dataclass(frozen=True)
class Cost:
    """What one hash took: milliseconds on the clock, and of CPU (all its lanes together)."""

    wall_ms: float
    cpu_ms: float


@dataclass(frozen=True)
class Calibration:
    """The parameters chosen, what a hash costs with them, and whether the target was met."""

    time_cost: int
    memory_kib: int
    parallelism: int
    cost: Cost
    target_ms: float
    minimum_too_slow: bool  # even OWASP's minimum time_cost takes longer than the target

    @property
    def per_core_per_second(self) -> float:
        """Hashes (log-ins) one core computes in a second."""
        return 1000 / self.cost.cpu_ms

    def per_second(self, cores: int) -> float:
        return self.per_core_per_second * cores


Measure = Callable[[int, int, int], Cost]


def measure(time_cost: int, memory_kib: int, parallelism: int) -> Cost:
    """The median cost of ``SAMPLES`` hashes with these parameters, as a log-in makes them."""
    walls, cpus = [], []
    for _ in range(SAMPLES):
        salt = os.urandom(SALT_BYTES)
        wall, cpu = time.perf_counter(), time.process_time()
        hash_secret_raw(
            b"calibration password",
            salt,
            time_cost=time_cost,
            memory_cost=memory_kib,
            parallelism=parallelism,
            hash_len=HASH_BYTES,
            type=Type.ID,
        )
        walls.append((time.perf_counter() - wall) * 1000)
        cpus.append((time.process_time() - cpu) * 1000)
    return Cost(statistics.median(walls), statistics.median(cpus))


def calibrate(
    target_ms: float, memory_kib: int, parallelism: int, measure: Measure = measure
) -> Calibration:
    """The smallest ``time_cost`` (at least OWASP's) whose hash takes ``target_ms`` or more on
    the clock, with this memory and these lanes (raised to OWASP's floors if below)."""
    memory_kib = max(memory_kib, ARGON2_MIN_MEMORY_KIB)
    parallelism = max(parallelism, ARGON2_MIN_PARALLELISM)
    costs: dict[int, Cost] = {}

    def cost(time_cost: int) -> Cost:
        if time_cost not in costs:
            costs[time_cost] = measure(time_cost, memory_kib, parallelism)
        return costs[time_cost]

    def chosen(time_cost: int, *, too_slow: bool = False) -> Calibration:
        return Calibration(time_cost, memory_kib, parallelism, cost(time_cost), target_ms, too_slow)

    floor = ARGON2_MIN_TIME_COST
    if cost(floor).wall_ms > target_ms:
        return chosen(floor, too_slow=True)
    # A hash's time grows with its iterations: start from the guess that proportion makes,
    # then step to the first time_cost that reaches the target.
    time_cost = max(floor, int(floor * target_ms / max(cost(floor).wall_ms, 0.001)))
    while cost(time_cost).wall_ms < target_ms:
        time_cost += 1
    while time_cost > floor and cost(time_cost - 1).wall_ms >= target_ms:
        time_cost -= 1
    return chosen(time_cost)
