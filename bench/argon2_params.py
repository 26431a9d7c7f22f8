"""How long one argon2id hash takes with each OWASP-approved parameter set on this machine.

Run: ``.venv/bin/python bench/argon2_params.py``. The argon2id table in docs/performance.md
came from it; userhub's default is the cheapest set OWASP accepts (m=19 MiB, t=2, p=1).
"""

from __future__ import annotations

import statistics
import time

from argon2 import PasswordHasher, Type

CANDIDATES = [  # (time_cost, memory KiB, parallelism)
    (2, 19 * 1024, 1),  # OWASP minimum: userhub's default
    (3, 12 * 1024, 1),  # OWASP equivalent
    (1, 46 * 1024, 1),  # OWASP equivalent
    (3, 64 * 1024, 4),  # argon2-cffi's default (RFC 9106 low-memory)
]
ROUNDS = 15


def median_ms(hasher: PasswordHasher) -> float:
    hasher.hash("warm-up password")
    times = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        hasher.hash("correct horse battery")
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> None:
    for time_cost, memory_kib, parallelism in CANDIDATES:
        hasher = PasswordHasher(
            time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism, type=Type.ID
        )
        print(
            f"m={memory_kib // 1024} MiB, t={time_cost}, p={parallelism}: "
            f"{median_ms(hasher):.1f} ms (median of {ROUNDS})"
        )


if __name__ == "__main__":
    main()
