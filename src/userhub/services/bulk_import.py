"""Bulk import of accounts (behind ``import-users``): writing the rows ``import_file`` checked.

``import_users`` writes the good rows of an ``ImportPlan`` (``import_file`` reads them,
``import_rows`` checks them): batch by batch, one ``SELECT ... IN`` finds the usernames that
already exist (skipped and counted, so a re-run is idempotent), the e-mail addresses already
taken and the ids other accounts have (bad rows); only the remaining rows with a password are
hashed (a row may bring its argon2id hash instead, stored as it is), and each batch is inserted
in one transaction, through the user service (``users.insert_accounts``). Should a concurrent
registration take a name or an address between that check and the commit, the batch is rolled
back and inserted row by row, so every row ends up in the database or reported, never
half-written. Progress is reported through a callback; nothing here knows of click or HTTP.

**Ids.** A row's id (an export's) is kept, so ``/api/v1/users/<id>`` still names the same
account once a database has moved. Both backends carry on after the highest id inserted:
SQLite's AUTOINCREMENT records it in ``sqlite_sequence``, InnoDB raises its AUTO_INCREMENT
counter past it; a later registration never collides.

**Hashing in parallel: threads, by measurement.** argon2-cffi calls the C library through cffi,
which releases the GIL for the whole call, so threads hash on every core at once. Measured on
this project's 2-core machine at userhub's default parameters (m=19 MiB, t=2, p=1), 200 hashes
(``time.perf_counter``), one hash costing 20.0 ms of CPU (``time.process_time``, median of 15):

    one thread       50.0 hashes/s
    two threads     101.8 hashes/s   (the bound, 2 cores / 20.0 ms, is 99.8/s)
    four threads     92.9 hashes/s
    two processes   103.2 hashes/s   (ProcessPoolExecutor, chunksize 8)

Processes gain nothing over threads here and would cost start-up, pickling and a hasher per
process, so a ``ThreadPoolExecutor`` with one thread per core (``config.available_cores``)
hashes. To keep the threads busy while a batch is inserted, the next batch is checked and
queued for hashing before the current one is written.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from ..extensions import db
from ..models import User
from . import users
from .errors import EmailTaken
from .import_rows import BadRow, ImportPlan, ImportRow
from .passwords import passwords

EMAIL_TAKEN = EmailTaken().message
ID_TAKEN = (
    "id {id} belongs to another account. Import with --new-ids to give the file's accounts new "
    "ids (to add them to a database that has accounts of its own)."
)
DEFAULT_BATCH_SIZE = 500
MAX_BATCH_SIZE = 5000  # 2 bound values per row in the pre-check; SQLite allows 32766


Progress = Callable[[int], None]


def _no_progress(_done: int) -> None:
    pass


class ImportAborted(Exception):
    """The database failed during the import. What was committed before stays (a re-run skips
    it); the rest was rolled back. The message names no password or hash."""


@dataclass
class ImportResult:
    created: int = 0
    skipped: int = 0  # the username already exists
    bad: list[BadRow] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"created {self.created}, skipped {self.skipped} (already exist), bad {len(self.bad)}"
        )


def import_users(
    plan: ImportPlan,
    *,
    workers: int,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Progress = _no_progress,
) -> ImportResult:
    """Write the plan's rows; needs an app context. ``progress(n)`` is called, in this thread,
    each time ``n`` more rows are done (hashed, skipped or found bad). Raises ImportAborted if
    the database fails; batches committed before stay committed."""
    if not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise ValueError(f"batch_size must be between 1 and {MAX_BATCH_SIZE}")
    result = ImportResult(bad=list(plan.bad))
    progress(len(plan.bad))
    hash_password = passwords().hash  # the app's configured argon2id parameters
    queued: deque[tuple[list[ImportRow], list[Future[str]]]] = deque()
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="userhub-hash")
    try:
        for start in range(0, len(plan.rows), batch_size):
            batch = _new_rows(plan.rows[start : start + batch_size], result, progress)
            queued.append((batch, [_hash(pool, hash_password, row) for row in batch]))
            if len(queued) > 1:  # the pool already hashes the next batch while this one goes in
                _write_batch(*queued.popleft(), result, progress)
        while queued:
            _write_batch(*queued.popleft(), result, progress)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    result.bad.sort(key=lambda bad: bad.line)
    return result


def _hash(
    pool: ThreadPoolExecutor, hash_password: Callable[[str], str], row: ImportRow
) -> Future[str]:
    """The row's hash: its password hashed by the pool, or the hash it brought."""
    if row.password is not None:
        return pool.submit(hash_password, row.password)
    done: Future[str] = Future()
    done.set_result(row.password_hash or "")  # the row checker gave it one or the other
    return done


def _new_rows(batch: list[ImportRow], result: ImportResult, progress: Progress) -> list[ImportRow]:
    """The rows of ``batch`` to insert: one query finds usernames that exist (skipped), and
    e-mail addresses and ids other accounts have (bad)."""
    keys = [row.account.username_key for row in batch]
    emails = [row.account.email for row in batch if row.account.email is not None]
    ids = [row.id for row in batch if row.id is not None]
    condition: ColumnElement[bool] = User.username_key.in_(keys)
    if emails:
        condition = or_(condition, User.email.in_(emails))
    if ids:
        condition = or_(condition, User.id.in_(ids))
    with _database_errors(batch[0].line, result):
        found = db.session.execute(
            select(User.id, User.username_key, User.email).where(condition)
        ).all()
    existing = {key for _, key, _ in found}
    taken = {email for _, _, email in found if email is not None}
    taken_ids = {user_id for user_id, _, _ in found}
    fresh = []
    for row in batch:
        if row.account.username_key in existing:
            result.skipped += 1
        elif row.account.email in taken:
            result.bad.append(BadRow(row.line, EMAIL_TAKEN))
        elif row.id in taken_ids:
            result.bad.append(BadRow(row.line, ID_TAKEN.format(id=row.id)))
        else:
            fresh.append(row)
    progress(len(batch) - len(fresh))
    return fresh


def _write_batch(
    batch: list[ImportRow], hashes: list[Future[str]], result: ImportResult, progress: Progress
) -> None:
    """Insert a batch in one transaction; if a concurrent write got in first, row by row."""
    values = []
    for row, future in zip(batch, hashes, strict=True):
        values.append(row.values(future.result()))
        progress(1)
    if not values:
        return
    with _database_errors(batch[0].line, result):
        try:
            users.insert_accounts(values)
        except IntegrityError:
            db.session.rollback()
            for row, row_values in zip(batch, values, strict=True):
                _write_row(row, row_values, result)
        else:
            result.created += len(values)


def _write_row(row: ImportRow, values: dict[str, Any], result: ImportResult) -> None:
    with _database_errors(row.line, result):
        try:
            users.insert_accounts([values])
        except IntegrityError:
            db.session.rollback()
            if _exists(User.username_key == row.account.username_key):
                result.skipped += 1
            elif row.account.email is not None and _exists(User.email == row.account.email):
                result.bad.append(BadRow(row.line, EMAIL_TAKEN))
            elif row.id is not None and _exists(User.id == row.id):
                result.bad.append(BadRow(row.line, ID_TAKEN.format(id=row.id)))
            else:
                raise
        else:
            result.created += 1


def _exists(condition: ColumnElement[bool]) -> bool:
    return db.session.scalar(select(User.id).where(condition).limit(1)) is not None


@contextmanager
def _database_errors(line: int, result: ImportResult) -> Iterator[None]:
    """Turn a database failure into ImportAborted, whose message (unlike SQLAlchemy's, which
    lists the statement's parameters) carries no password hash."""
    try:
        yield
    except SQLAlchemyError as exc:
        db.session.rollback()
        cause = getattr(exc, "orig", None) or type(exc).__name__
        raise ImportAborted(
            f"the database failed at line {line} ({cause}). The {result.created} rows "
            "imported before that stay; nothing after them was written. Run the same "
            "import again to continue: existing usernames are skipped."
        ) from None
