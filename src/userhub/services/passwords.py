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

import base64
import binascii
import threading
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from argon2 import PasswordHasher, Type, extract_parameters
from argon2.exceptions import InvalidHashError, VerificationError
from flask import Flask, current_app

from ..metrics import HASH_TIME, VERIFY_TIME

EXTENSION_KEY = "userhub.services.passwords"

# What a hash brought in from elsewhere (``import-users``) must be to be stored as it is.
HASH_MAX_LENGTH = 255  # the password_hash column
HASH_PREFIX = "$argon2id$"
ARGON2_VERSIONS = (0x10, 0x13)  # argon2 1.0 and 1.3, both verifiable
SALT_MIN_BYTES = 8  # argon2's own minimum
# Every common argon2 library (argon2-cffi, Django, passlib, PHP, Spring, node-argon2) writes a
# 32-byte hash by default; a shorter one is almost surely cut short (a cut base64 text can still
# decode), and would never match its owner's password.
DIGEST_MIN_BYTES = 32
# A log-in verifies with the hash's own parameters: a mistyped m= must not take all the memory.
IMPORT_MAX_MEMORY_KIB = 1024 * 1024
OTHER_SCHEMES = {
    "argon2i": "an argon2i hash",
    "argon2d": "an argon2d hash",
    "2a": "a bcrypt hash",
    "2b": "a bcrypt hash",
    "2y": "a bcrypt hash",
    "pbkdf2-sha256": "a PBKDF2 hash",
    "scrypt": "an scrypt hash",
}
START_AFRESH = (
    "Put a new password for this account in the password column instead (it is hashed on "
    "import; tell its owner), and leave password_hash empty."
)


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
        with self._slot(), HASH_TIME.time():  # timed once a slot is free: the hash alone
            return self.hasher.hash(password)

    def verify(self, password_hash: str, password: str) -> bool:
        try:
            with self._slot(), VERIFY_TIME.time():
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


def hash_problem(password_hash: str) -> str | None:
    """What is wrong with a hash brought in from elsewhere, in words that say what to do; None
    for a whole argon2id hash that a log-in can verify (its parameters may differ from ours:
    ``needs_rehash`` replaces it at its owner's next log-in). The words never quote the hash.

    The parameters are read by argon2-cffi (``extract_parameters``); the salt and the hash
    must be canonical base64 of a sound length, which is what catches a hash cut short."""
    if not password_hash.startswith(HASH_PREFIX):
        return _not_argon2id(password_hash)
    if len(password_hash) > HASH_MAX_LENGTH:
        return f"password_hash is longer than the {HASH_MAX_LENGTH} characters it may have."
    try:
        parameters = extract_parameters(password_hash)
    except InvalidHashError:
        return (
            "password_hash is not a whole argon2id hash: its parameters cannot be read (was it "
            "cut short or edited?). Export it again with export-users --with-hashes."
        )
    settings = f"m={parameters.memory_cost}, t={parameters.time_cost}, p={parameters.parallelism}"
    if (
        parameters.version not in ARGON2_VERSIONS
        or min(parameters.time_cost, parameters.parallelism) < 1
        or parameters.memory_cost < 8 * parameters.parallelism
    ):
        version = parameters.version
        return f"password_hash has parameters argon2 cannot use (v={version}, {settings})."
    if parameters.memory_cost > IMPORT_MAX_MEMORY_KIB:
        return (
            f"password_hash asks for {parameters.memory_cost} KiB of memory at every log-in; "
            f"at most {IMPORT_MAX_MEMORY_KIB} (1 GiB) are accepted. {START_AFRESH}"
        )
    *_, salt, digest = password_hash.split("$")
    salt_bytes, digest_bytes = _base64_length(salt), _base64_length(digest)
    if salt_bytes is None or digest_bytes is None:
        return (
            "password_hash is damaged: its salt or hash part is not base64 as argon2 writes "
            "it. Export it again with export-users --with-hashes."
        )
    if salt_bytes < SALT_MIN_BYTES or digest_bytes < DIGEST_MIN_BYTES:
        return (
            f"password_hash is cut short: its salt has {salt_bytes} bytes and its hash "
            f"{digest_bytes} (at least {SALT_MIN_BYTES} and {DIGEST_MIN_BYTES} expected). "
            "Export it again with export-users --with-hashes."
        )
    return None


def _not_argon2id(password_hash: str) -> str:
    if not password_hash.startswith("$"):
        return (
            "password_hash is not a password hash (it does not start with $argon2id$); a "
            "plain password goes in the password column."
        )
    scheme = password_hash.split("$")[1]
    kind = OTHER_SCHEMES.get(scheme, "a hash of a kind userhub cannot check")
    return f"password_hash is {kind}; only argon2id hashes are accepted. {START_AFRESH}"


def _base64_length(text: str) -> int | None:
    """How many bytes ``text``, unpadded base64 as argon2 writes it, holds; None if it is not
    exactly that (a character outside base64, or one that a cut left dangling)."""
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None
    if base64.b64encode(raw).decode("ascii").rstrip("=") != text:
        return None
    return len(raw)


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
