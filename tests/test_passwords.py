"""The hashing cap: one process never computes more argon2id hashes at once than configured
(more than there are cores would only slow every hash down)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from threading import Lock

import pytest
from argon2 import PasswordHasher

from userhub.services.passwords import Passwords


class CountingHasher:
    """The real hasher, counting how many hashes run at the same moment."""

    def __init__(self, real: PasswordHasher) -> None:
        self.real = real
        self.running = self.peak = 0
        self.lock = Lock()

    def hash(self, password: str) -> str:
        with self.lock:
            self.running += 1
            self.peak = max(self.peak, self.running)
        try:
            return self.real.hash(password)
        finally:
            with self.lock:
                self.running -= 1

    def verify(self, password_hash: str, password: str) -> bool:
        return self.real.verify(password_hash, password)


@pytest.mark.parametrize("cap", [1, 2])
def test_no_more_hashes_run_at_once_than_the_cap(cap: int) -> None:
    passwords = Passwords(time_cost=2, memory_kib=19 * 1024, parallelism=1, concurrency=cap)
    counting = CountingHasher(passwords.hasher)
    passwords.hasher = counting  # type: ignore[assignment]
    with ThreadPoolExecutor(6) as pool:
        hashes = list(pool.map(passwords.hash, ["a-long-password"] * 18))
    assert counting.peak == cap
    assert all(passwords.verify(h, "a-long-password") for h in hashes)


def test_without_a_cap_threads_hash_side_by_side() -> None:
    passwords = Passwords(time_cost=2, memory_kib=19 * 1024, parallelism=1, concurrency=0)
    counting = CountingHasher(passwords.hasher)
    passwords.hasher = counting  # type: ignore[assignment]
    with ThreadPoolExecutor(6) as pool:
        list(pool.map(passwords.hash, ["a-long-password"] * 18))
    assert counting.peak > 2
