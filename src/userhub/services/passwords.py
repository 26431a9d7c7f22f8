"""Password hashing with argon2id.

The parameters come from configuration (floors enforced in ``config``); hashes made with older
parameters are upgraded when their owner next logs in (``needs_rehash``).

argon2-cffi releases the GIL, so a worker's threads hash in parallel. More hashes at once than
there are cores only makes each slower (each fills 19 MiB of memory), so
``USERHUB_HASHING_THREADS`` caps how many one process computes at once; ``userhub serve`` sets
it to cores ÷ workers. Measured on 2 cores, 2 workers of 4 threads: ``POST /save_data_to_mysql``
served 93 requests a second with the cap and 72 without (21 against 28 ms of CPU a request).
The worker's other threads keep serving requests that do not hash.
"""

from __future__ import annotations

import threading
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError
from flask import Flask, current_app

EXTENSION_KEY = "userhub.services.passwords"


class Passwords:
    """The app's hasher, plus a decoy hash so an unknown user costs a full verification."""

    def __init__(
        self, time_cost: int, memory_kib: int, parallelism: int, concurrency: int = 0
    ) -> None:
        self.hasher = PasswordHasher(
            time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism, type=Type.ID
        )
        self._decoy: str | None = None
        # 0: no cap (the development server, the CLI's own thread pool).
        self._slots = threading.BoundedSemaphore(concurrency) if concurrency > 0 else None

    def hash(self, password: str) -> str:
        with self._slot():
            return self.hasher.hash(password)

    def verify(self, password_hash: str, password: str) -> bool:
        try:
            with self._slot():
                return self.hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    def _slot(self) -> AbstractContextManager[object]:
        return self._slots if self._slots is not None else nullcontext()

    def needs_rehash(self, password_hash: str) -> bool:
        return self.hasher.check_needs_rehash(password_hash)

    def burn_verification(self, password: str) -> None:
        """Spend the same work as a real check, for a username that does not exist."""
        if self._decoy is None:
            self._decoy = self.hash("decoy password, never matches")
        self.verify(self._decoy, password)


def init_app(app: Flask) -> None:
    app.extensions[EXTENSION_KEY] = Passwords(
        time_cost=app.config["ARGON2_TIME_COST"],
        memory_kib=app.config["ARGON2_MEMORY_KIB"],
        parallelism=app.config["ARGON2_PARALLELISM"],
        concurrency=app.config["USERHUB_HASHING_THREADS"],
    )


def passwords() -> Passwords:
    """The current app's hasher."""
    hasher: Any = current_app.extensions[EXTENSION_KEY]
    return hasher  # type: ignore[no-any-return]
