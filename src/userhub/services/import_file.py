"""Reading and checking an import file (``import-users``), before anything is written.

The import reads a UTF-8 CSV file (``username,password`` and optionally ``is_admin``,
``display_name``, ``email``) in two steps; this is the first. ``read_import_file`` decodes and
checks the whole file without touching the database: a file that cannot be imported at all
(not UTF-8, a missing or unknown column) raises ``ImportFileError`` before anything is written;
every row is checked with the same rules and messages as registration
(``account_rules.check_new_account``), and so is every repeat of a username or an address
within the file. The result, an ``ImportPlan``, is what ``bulk_import.import_users`` writes.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .account_rules import (
    AccountValues,
    check_new_account,
    normalise_email,
    username_key,
    username_problems,
)
from .errors import InvalidUserInput

REQUIRED_COLUMNS = ("username", "password")
OPTIONAL_COLUMNS = ("is_admin", "display_name", "email")
IMPORT_COLUMNS = REQUIRED_COLUMNS + OPTIONAL_COLUMNS
TRUE_WORDS = frozenset({"true", "1", "yes"})
FALSE_WORDS = frozenset({"false", "0", "no", ""})
IS_ADMIN_PROBLEM = "is_admin must be true/false, 1/0, yes/no or empty."


class ImportFileError(Exception):
    """The file cannot be imported at all (unreadable, not UTF-8, wrong header); nothing was
    written."""


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
    account: AccountValues
    is_admin: bool
    password: str = field(repr=False)  # kept out of repr(), so out of logs and debug output


@dataclass
class ImportPlan:
    """The checked file: rows to write, rows already known to be bad, and how many data rows
    the file has (``total``, for a progress bar)."""

    rows: list[ImportRow]
    bad: list[BadRow]
    total: int


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
        account: AccountValues | None = None
        try:
            account = check_new_account(
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
        self, line: int, username: str, email: str, account: AccountValues | None
    ) -> list[str]:
        """Whether an earlier line has this username or e-mail address. A value claims its
        line as soon as it is valid itself, even if the row is bad for another reason."""
        problems = []
        key: str | None = None
        address: str | None = None
        if account is not None:
            key, address = account.username_key, account.email
        else:
            if not username_problems(username):
                key = username_key(username)
            if _blank_is_none(email) is not None:
                address = normalise_email(email)[0]
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
