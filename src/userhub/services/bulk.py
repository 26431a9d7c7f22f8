"""Bulk import and export of accounts (behind ``import-users`` and ``export-users``).

**Import** reads a UTF-8 CSV file (``username,password`` and optionally ``is_admin``,
``display_name``, ``email``) in two steps. ``read_import_file`` decodes and checks the whole file
without touching the database: a file that cannot be imported at all (not UTF-8, a missing or
unknown column) raises ``ImportFileError`` before anything is written; every row is checked with
the same rules and messages as registration (``users.check_new_account``). ``import_users`` then
writes the good rows: batch by batch, one ``SELECT ... IN`` finds the usernames that already
exist (skipped and counted, so a re-run is idempotent) and the e-mail addresses already taken;
only the remaining rows are hashed, and each batch is inserted in one transaction. Should a
concurrent registration take a name or an address between that check and the commit, the batch
is rolled back and inserted row by row, so every row ends up in the database or reported, never
half-written. Progress is reported through a callback; nothing here knows of click or HTTP.

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

**Export** streams accounts in id order, ``EXPORT_CHUNK_SIZE`` rows per query (keyset
pagination: ``WHERE id > last``), as CSV or as one JSON array. Password hashes are left out
unless asked for. CSV cells are made safe to open in a spreadsheet: a text cell that begins
with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return (which Excel, LibreOffice and WPS would
run as a formula) gets a leading apostrophe, and so does one that already begins with an
apostrophe, so the rule is exactly reversible: strip one leading apostrophe
(``restore_csv_cell``). JSON is exact, for programs.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from sqlalchemy import ColumnElement, insert, or_, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from .. import transactions
from ..extensions import db
from ..models import User, utc_iso
from . import users
from .errors import EmailTaken, InvalidUserInput
from .passwords import passwords

REQUIRED_COLUMNS = ("username", "password")
OPTIONAL_COLUMNS = ("is_admin", "display_name", "email")
IMPORT_COLUMNS = REQUIRED_COLUMNS + OPTIONAL_COLUMNS
TRUE_WORDS = frozenset({"true", "1", "yes"})
FALSE_WORDS = frozenset({"false", "0", "no", ""})
IS_ADMIN_PROBLEM = "is_admin must be true/false, 1/0, yes/no or empty."
EMAIL_TAKEN = EmailTaken().message
DEFAULT_BATCH_SIZE = 500
MAX_BATCH_SIZE = 5000  # 2 bound values per row in the pre-check; SQLite allows 32766

EXPORT_COLUMNS = ("id", "username", "display_name", "email", "is_admin", "created_at")
HASH_COLUMN = "password_hash"
EXPORT_CHUNK_SIZE = 1000
FORMATS = ("csv", "json")
# What makes a spreadsheet read a cell as a formula (OWASP "CSV Injection"), plus the apostrophe
# itself so that the escaping can be undone exactly.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "'")

Progress = Callable[[int], None]


def _no_progress(_done: int) -> None:
    pass


# --- Import: reading and checking the file --------------------------------------------------


class ImportFileError(Exception):
    """The file cannot be imported at all (unreadable, not UTF-8, wrong header); nothing was
    written."""


class ImportAborted(Exception):
    """The database failed during the import. What was committed before stays (a re-run skips
    it); the rest was rolled back. The message names no password or hash."""


@dataclass(frozen=True)
class BadRow:
    """A row that was not imported: its physical line in the file (header = line 1), and why."""

    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


@dataclass(frozen=True)
class ImportRow:
    """A row that meets every rule, waiting to be written."""

    line: int
    account: users.NewAccount
    is_admin: bool
    password: str = field(repr=False)  # kept out of repr(), so out of logs and debug output


@dataclass
class ImportPlan:
    """The checked file: rows to write, rows already known to be bad, and how many data rows
    the file has (``total``, for a progress bar)."""

    rows: list[ImportRow]
    bad: list[BadRow]
    total: int


@dataclass
class ImportResult:
    created: int = 0
    skipped: int = 0  # the username already exists
    bad: list[BadRow] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"created {self.created}, skipped {self.skipped} (already exist), bad {len(self.bad)}"
        )


def read_import_file(path: Path) -> ImportPlan:
    """Decode (UTF-8, with or without a BOM) and check a whole import file."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImportFileError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ImportFileError(
            f"the file is not UTF-8 (line {line} has bytes that are not UTF-8); save it as "
            "UTF-8, e.g. as 'CSV UTF-8' in Excel"
        ) from None
    return parse_import_csv(text)


def parse_import_csv(text: str) -> ImportPlan:
    """Check the header and every row; raises ImportFileError for a wrong header.

    Line numbers are those an editor shows: a record is reported at the line it starts on (a
    quoted field may span lines). Blank lines are ignored."""
    reader = csv.reader(io.StringIO(text, newline=""))
    columns: list[str] | None = None
    checker = _RowChecker()
    lines_read = 0
    try:
        for record in reader:
            line, lines_read = lines_read + 1, reader.line_num
            if not record:
                continue
            if columns is None:
                columns = _check_header(record, line)
            else:
                checker.check(line, columns, record)
    except csv.Error as exc:
        raise ImportFileError(f"line {reader.line_num}: not valid CSV ({exc})") from None
    if columns is None:
        raise ImportFileError(f"the file is empty; its first line must be the header {_HEADER}")
    return ImportPlan(rows=checker.rows, bad=checker.bad, total=checker.total)


_HEADER = f"{','.join(REQUIRED_COLUMNS)}[,{','.join(OPTIONAL_COLUMNS)}]"


def _check_header(record: Sequence[str], line: int) -> list[str]:
    columns = [name.strip().lower() for name in record]
    if not set(columns) & set(IMPORT_COLUMNS):
        # Most likely a file without a header, starting with a user: never echo its password.
        raise ImportFileError(
            f"line {line} is not a header: it names none of the columns. The first line must "
            f"be the header {_HEADER}, in any order."
        )
    problems = []
    if unknown := [name for name in columns if name not in IMPORT_COLUMNS]:
        problems.append(f"unknown {_columns(unknown)}")
    if missing := [name for name in REQUIRED_COLUMNS if name not in columns]:
        problems.append(f"missing {_columns(missing)}")
    if repeated := sorted({name for name in columns if columns.count(name) > 1}):
        problems.append(f"{_columns(repeated)} given more than once")
    if problems:
        raise ImportFileError(
            f"line {line}: {'; '.join(problems)}. The first line must be the header "
            f"{_HEADER}, in any order."
        )
    return columns


def _columns(names: Sequence[str]) -> str:
    """``column "a"`` or ``columns "a", "b"`` (each cut to 30 characters)."""
    quoted = ", ".join(f'"{name[:30]}"' for name in names)
    return f"column {quoted}" if len(names) == 1 else f"columns {quoted}"


def parse_is_admin(value: str) -> bool | None:
    """true/false, 1/0, yes/no in any case, or empty (false); None for anything else."""
    word = value.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    return None


class _RowChecker:
    """Checks data rows in file order, remembering which line first used each username (by its
    key) and e-mail address, so that a repeat is reported as such."""

    def __init__(self) -> None:
        self.rows: list[ImportRow] = []
        self.bad: list[BadRow] = []
        self.total = 0
        self.username_lines: dict[str, int] = {}
        self.email_lines: dict[str, int] = {}

    def check(self, line: int, columns: list[str], record: list[str]) -> None:
        self.total += 1
        if len(record) != len(columns):
            self.bad.append(BadRow(line, f"expected {len(columns)} fields, found {len(record)}"))
            return
        fields = dict(zip(columns, record, strict=True))
        username, password = fields["username"], fields["password"]
        problems: list[str] = []
        account: users.NewAccount | None = None
        try:
            account = users.check_new_account(
                username,
                password,
                display_name=_blank_is_none(fields.get("display_name", "")),
                email=_blank_is_none(fields.get("email", "")),
            )
        except InvalidUserInput as exc:
            problems = [message for messages in exc.errors.values() for message in messages]
        is_admin = parse_is_admin(fields.get("is_admin", ""))
        if is_admin is None:
            problems.append(IS_ADMIN_PROBLEM)
        problems[:0] = self._repeats(line, username, fields.get("email", ""), account)
        if problems:
            self.bad.append(BadRow(line, _sentences(problems)))
        elif account is not None and is_admin is not None:
            self.rows.append(ImportRow(line, account, is_admin, password))

    def _repeats(
        self, line: int, username: str, email: str, account: users.NewAccount | None
    ) -> list[str]:
        """Whether an earlier line has this username or e-mail address. A value claims its
        line as soon as it is valid itself, even if the row is bad for another reason."""
        problems = []
        key: str | None = None
        address: str | None = None
        if account is not None:
            key, address = account.username_key, account.email
        else:
            if not users.username_problems(username):
                key = users.username_key(username)
            if _blank_is_none(email) is not None:
                address = users.normalise_email(email)[0]
        if key is not None:
            first = self.username_lines.setdefault(key, line)
            if first != line:
                problems.append(f"duplicate of line {first}")
        if address is not None:
            first = self.email_lines.setdefault(address, line)
            if first != line:
                problems.append(f"This e-mail address is already used by line {first}.")
        return problems


def _sentences(problems: list[str]) -> str:
    """One problem as it is; several as sentences one after the other."""
    if len(problems) == 1:
        return problems[0]
    return " ".join(problem if problem.endswith(".") else f"{problem}." for problem in problems)


def _blank_is_none(value: str) -> str | None:
    """An empty (or all-space) cell means "none" for the optional profile fields."""
    return value if value.strip() else None


# --- Import: writing ----------------------------------------------------------------------------


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
            queued.append((batch, [pool.submit(hash_password, row.password) for row in batch]))
            if len(queued) > 1:  # the pool already hashes the next batch while this one goes in
                _write_batch(*queued.popleft(), result, progress)
        while queued:
            _write_batch(*queued.popleft(), result, progress)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    result.bad.sort(key=lambda bad: bad.line)
    return result


def _new_rows(batch: list[ImportRow], result: ImportResult, progress: Progress) -> list[ImportRow]:
    """The rows of ``batch`` to insert: one query finds usernames that exist (skipped) and
    e-mail addresses other accounts use (bad)."""
    keys = [row.account.username_key for row in batch]
    emails = [row.account.email for row in batch if row.account.email is not None]
    condition: ColumnElement[bool] = User.username_key.in_(keys)
    if emails:
        condition = or_(condition, User.email.in_(emails))
    with _database_errors(batch[0].line, result):
        found = db.session.execute(select(User.username_key, User.email).where(condition)).all()
    existing = {key for key, _ in found}
    taken = {email for _, email in found if email is not None}
    fresh = []
    for row in batch:
        if row.account.username_key in existing:
            result.skipped += 1
        elif row.account.email in taken:
            result.bad.append(BadRow(row.line, EMAIL_TAKEN))
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
        values.append(_values(row, future.result()))
        progress(1)
    if not values:
        return
    with _database_errors(batch[0].line, result):
        try:
            transactions.committed(lambda: db.session.execute(insert(User), values))
        except IntegrityError:
            db.session.rollback()
            for row, row_values in zip(batch, values, strict=True):
                _write_row(row, row_values, result)
        else:
            result.created += len(values)


def _write_row(row: ImportRow, values: dict[str, Any], result: ImportResult) -> None:
    with _database_errors(row.line, result):
        try:
            transactions.committed(lambda: db.session.execute(insert(User), [values]))
        except IntegrityError:
            db.session.rollback()
            if _exists(User.username_key == row.account.username_key):
                result.skipped += 1
            elif row.account.email is not None and _exists(User.email == row.account.email):
                result.bad.append(BadRow(row.line, EMAIL_TAKEN))
            else:
                raise
        else:
            result.created += 1


def _exists(condition: ColumnElement[bool]) -> bool:
    return db.session.scalar(select(User.id).where(condition).limit(1)) is not None


def _values(row: ImportRow, password_hash: str) -> dict[str, Any]:
    return {
        "username": row.account.username,
        "username_key": row.account.username_key,
        "password_hash": password_hash,
        "display_name": row.account.display_name,
        "email": row.account.email,
        "is_admin": row.is_admin,
    }


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


# --- Export ---------------------------------------------------------------------------------


def export_columns(with_hashes: bool = False) -> tuple[str, ...]:
    return EXPORT_COLUMNS + ((HASH_COLUMN,) if with_hashes else ())


def iter_user_records(
    *, with_hashes: bool = False, chunk_size: int = EXPORT_CHUNK_SIZE
) -> Iterator[dict[str, Any]]:
    """Every account in id order as a dict of JSON values, ``chunk_size`` rows per query, so
    memory stays flat however many accounts there are. Needs an app context."""
    names = export_columns(with_hashes)
    columns = [getattr(User, name) for name in names]
    last_id = 0
    while True:
        rows = db.session.execute(
            select(*columns).where(User.id > last_id).order_by(User.id).limit(chunk_size)
        ).all()
        for row in rows:
            record = dict(zip(names, row, strict=True))
            record["is_admin"] = bool(record["is_admin"])
            record["created_at"] = utc_iso(record["created_at"])
            yield record
        if len(rows) < chunk_size:
            return
        last_id = rows[-1].id


def neutralise_csv_cell(value: str) -> str:
    """A text cell a spreadsheet will not run as a formula (see the module's docstring)."""
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def restore_csv_cell(value: str) -> str:
    """The value ``neutralise_csv_cell`` was given."""
    return value[1:] if value.startswith("'") else value


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return neutralise_csv_cell(value)
    return str(value)


def write_csv(records: Iterable[dict[str, Any]], out: IO[str], columns: Sequence[str]) -> int:
    """RFC 4180 CSV (CRLF line ends; ``out`` must not translate newlines); the row count."""
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    count = 0
    for count, record in enumerate(records, start=1):  # noqa: B007 (count is the result)
        writer.writerow([_csv_cell(record[name]) for name in columns])
    return count


def write_json(records: Iterable[dict[str, Any]], out: IO[str]) -> int:
    """One JSON array, an account per line, written as the rows arrive; the row count."""
    count = 0
    for count, record in enumerate(records, start=1):  # noqa: B007 (count is the result)
        out.write("[\n" if count == 1 else ",\n")
        out.write(json.dumps(record, ensure_ascii=False))
    out.write("\n]\n" if count else "[]\n")
    return count


def export_users(out: IO[str], *, fmt: str = "csv", with_hashes: bool = False) -> int:
    """Write every account to ``out`` as CSV or JSON; how many were written."""
    records = iter_user_records(with_hashes=with_hashes)
    if fmt == "csv":
        return write_csv(records, out, export_columns(with_hashes))
    if fmt == "json":
        return write_json(records, out)
    raise ValueError(f"format must be one of {', '.join(FORMATS)}")


def export_to_binary(stream: IO[bytes], *, fmt: str = "csv", with_hashes: bool = False) -> int:
    """Export as UTF-8 to a binary stream (standard output), whatever the locale's encoding."""
    text = io.TextIOWrapper(stream, encoding="utf-8", newline="")
    try:
        return export_users(text, fmt=fmt, with_hashes=with_hashes)
    finally:
        text.flush()
        text.detach()  # leave the caller's stream open


def export_to_file(path: Path, *, fmt: str = "csv", with_hashes: bool = False) -> int:
    """Export to ``path`` atomically: a temporary file beside it (readable by its owner only,
    as it holds e-mail addresses and maybe hashes) replaces ``path`` once complete."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with open(handle, "w", encoding="utf-8", newline="") as out:
            count = export_users(out, fmt=fmt, with_hashes=with_hashes)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return count
