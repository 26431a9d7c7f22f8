"""Rate limits counted in a SQLite file: one count for every worker of a host, without Redis.

``memory://`` counts inside one process, so under ``userhub serve`` (one worker per core) every
limit was multiplied by the number of workers, and a client refused by one worker got a token
from the next. The default storage is this one instead: a SQLite file in the instance folder
(``ratelimits.sqlite3``, apart from the app's database, so counting never waits behind an
account's write), which every worker of the host opens. Several hosts still need Redis: a file
is shared by the processes of one machine only.

Defining the class registers its scheme with ``limits``: ``sqlite:///`` then the file's path,
as SQLAlchemy writes it (``sqlite:////var/lib/userhub/ratelimits.sqlite3`` is absolute,
``sqlite:///ratelimits.sqlite3`` relative to the working directory).

How it stays exact and small:

* a moving window is one row per hit (its time, when it leaves the window, its cost); a hit is
  counted inside one ``BEGIN IMMEDIATE`` transaction that sums the key's rows in the window and
  adds one, so two processes can never both take the last place. A hit on a window already
  full is refused on a plain read first, without the lock: a flood of refused attempts does
  not queue behind the writer;
* the transaction first deletes every row that has left its window, so the file holds only
  the hits of the last window (a few KiB; its write-ahead log beside it grows to at most about
  4 MiB, SQLite's default checkpoint, and is then reused);
* WAL lets reads go on beside the one writer; a writer waits at most ``BUSY_TIMEOUT_SECONDS``
  for another, then the error reaches the limiter, which fails open as for an unreachable
  Redis;
* a connection per thread, opened at first use, and again in a forked child: a SQLite
  connection must not cross a ``fork`` (``userhub serve`` builds an app in the master before
  its workers start, but that app never counts anything).

Cost, measured on the project's 2-core machine while other work ran on it
(``bench/limit_storage.py``, six runs, each figure the median of 5 runs of 2000 calls): a hit
let through 50 to 95 µs (4 µs with ``memory://``, 80 to 160 µs with Redis on the same
machine), a test 13 to 17 µs (2; 80 to 165), a refused hit 6 to 10 µs (3; 65 to 155). A log-in
costs an argon2id hash of about 17 ms, so counting it in the file adds about 0.5 %. Hammered
by 2 processes of 4 threads, the file took 9,000 to 16,000 hits a second let through (a hit
waited 45 µs at the median, 8 to 10 ms at the 99th percentile, 0.7 s at worst) and 75,000 to
135,000 refused: a hundred times the log-ins two cores can hash.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from limits.storage import MovingWindowSupport, Storage

SCHEME = "sqlite"
URI_PREFIX = f"{SCHEME}:///"
BUSY_TIMEOUT_SECONDS = 2.0

# A hit of a moving window: when it was counted, when it leaves the window, what it cost.
# A fixed window: its count, and when it ends.
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS moving_window "
    "(key TEXT NOT NULL, at REAL NOT NULL, expires REAL NOT NULL, cost INTEGER NOT NULL)",
    "CREATE INDEX IF NOT EXISTS moving_window_key_at ON moving_window (key, at)",
    "CREATE INDEX IF NOT EXISTS moving_window_expires ON moving_window (expires)",
    "CREATE TABLE IF NOT EXISTS fixed_window "
    "(key TEXT PRIMARY KEY, count INTEGER NOT NULL, expires REAL NOT NULL) WITHOUT ROWID",
)


def file_of(uri: str) -> Path:
    """The file a ``sqlite:///<path>`` URI names; ValueError if it names none."""
    path = uri[len(URI_PREFIX) :] if uri.startswith(URI_PREFIX) else ""
    if not path:
        raise ValueError(
            "expected sqlite:/// and the file's path, like "
            "sqlite:////var/lib/userhub/ratelimits.sqlite3"
        )
    return Path(path)


class SQLiteStorage(Storage, MovingWindowSupport):
    """A ``limits`` storage in a SQLite file, for the moving-window strategy userhub uses (and
    the fixed window, so that no strategy would silently count nothing)."""

    STORAGE_SCHEME = [SCHEME]

    def __init__(
        self, uri: str, wrap_exceptions: bool = False, **options: float | str | bool
    ) -> None:
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)
        self.path = file_of(uri)
        self._local = threading.local()
        # Connections a forked child inherited: never used, never closed (closing one could
        # disturb the parent's locks), kept so that the garbage collector does not close them.
        self._inherited: list[sqlite3.Connection] = []

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        return (sqlite3.Error, OSError)

    # --- connections ------------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        local = self._local
        if getattr(local, "pid", None) != os.getpid():
            if getattr(local, "connection", None) is not None:
                self._inherited.append(local.connection)
            local.connection = self._connect()
            local.pid = os.getpid()
        connection: sqlite3.Connection = local.connection
        return connection

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Only the server's user may read it: keys name the usernames tried.
        os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
        connection = sqlite3.connect(
            self.path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None, check_same_thread=True
        )
        try:
            _use_wal(connection)
            connection.execute("PRAGMA synchronous=NORMAL")  # a lost count at power loss is fine
            with self._transaction(connection) as cursor:
                for statement in SCHEMA:
                    cursor.execute(statement)
        except BaseException:
            connection.close()
            raise
        return connection

    @contextlib.contextmanager
    def _transaction(
        self, connection: sqlite3.Connection | None = None
    ) -> Iterator[sqlite3.Cursor]:
        """``BEGIN IMMEDIATE``: the write lock from the start, so what is read stays true until
        the commit."""
        connection = connection or self._connection()
        cursor = connection.cursor()
        cursor.execute("BEGIN IMMEDIATE")
        try:
            yield cursor
            cursor.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.rollback()
            raise
        finally:
            cursor.close()

    # --- the moving window ------------------------------------------------------------------

    def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        """Count ``amount`` hits now, unless the window would then hold more than ``limit``."""
        if amount > limit or self.get_moving_window(key, limit, expiry)[1] + amount > limit:
            return False  # refused on a read: a flood of refused attempts takes no lock
        with self._transaction() as cursor:
            now = time.time()  # after the lock: no hit counted later can be dated earlier
            cursor.execute("DELETE FROM moving_window WHERE expires < ?", (now,))
            _, taken = _window(cursor, key, expiry, now)
            if taken + amount > limit:  # another process took the last places meanwhile
                return False
            cursor.execute(
                "INSERT INTO moving_window (key, at, expires, cost) VALUES (?, ?, ?, ?)",
                (key, now, now + expiry, amount),
            )
            return True

    def get_moving_window(self, key: str, limit: int, expiry: int) -> tuple[float, int]:
        """(the oldest hit still in the window, the hits in it); (now, 0) when empty."""
        now = time.time()
        with contextlib.closing(self._connection().cursor()) as cursor:
            oldest, taken = _window(cursor, key, expiry, now)
        return (now, 0) if oldest is None else (oldest, taken)

    # --- the fixed window (unused by userhub, but part of a storage) -------------------------

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        with self._transaction() as cursor:
            now = time.time()
            cursor.execute("DELETE FROM fixed_window WHERE expires <= ?", (now,))
            cursor.execute(
                "INSERT INTO fixed_window (key, count, expires) VALUES (?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET count = count + excluded.count RETURNING count",
                (key, amount, now + expiry),
            )
            (count,) = cursor.fetchone()
            return int(count)

    def get(self, key: str) -> int:
        row = (
            self._connection()
            .execute(
                "SELECT count FROM fixed_window WHERE key = ? AND expires > ?", (key, time.time())
            )
            .fetchone()
        )
        return int(row[0]) if row else 0

    def get_expiry(self, key: str) -> float:
        now = time.time()
        row = (
            self._connection()
            .execute("SELECT expires FROM fixed_window WHERE key = ? AND expires > ?", (key, now))
            .fetchone()
        )
        return float(row[0]) if row else now

    # --- the whole storage ------------------------------------------------------------------

    def clear(self, key: str) -> None:
        with self._transaction() as cursor:
            cursor.execute("DELETE FROM moving_window WHERE key = ?", (key,))
            cursor.execute("DELETE FROM fixed_window WHERE key = ?", (key,))

    def reset(self) -> int | None:
        """Forget every count; the number of keys that had one."""
        with self._transaction() as cursor:
            cursor.execute(
                "SELECT count(*) FROM (SELECT key FROM moving_window "
                "UNION SELECT key FROM fixed_window)"
            )
            (keys,) = cursor.fetchone()
            cursor.execute("DELETE FROM moving_window")
            cursor.execute("DELETE FROM fixed_window")
            return int(keys)

    def check(self) -> bool:
        """Whether hits can be counted: the file opens and its write lock can be taken."""
        try:
            with self._transaction():
                return True
        except (sqlite3.Error, OSError):
            return False


def _window(cursor: sqlite3.Cursor, key: str, expiry: int, now: float) -> tuple[float | None, int]:
    """The oldest hit of ``key`` in the window that ends ``now`` (None if none), and the hits."""
    cursor.execute(
        "SELECT min(at), coalesce(sum(cost), 0) FROM moving_window WHERE key = ? AND at >= ?",
        (key, now - expiry),
    )
    oldest, taken = cursor.fetchone()
    return oldest, int(taken)


def _use_wal(connection: sqlite3.Connection) -> None:
    """Turn a new file to WAL (a file already in WAL stays so).

    The switch takes an exclusive lock, and SQLite does not wait for that one (no busy
    handler): when two workers open the new file at the same moment, one is refused at once.
    It tries again, until the busy timeout."""
    deadline = time.monotonic() + BUSY_TIMEOUT_SECONDS
    while True:
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                raise
            time.sleep(0.001)
