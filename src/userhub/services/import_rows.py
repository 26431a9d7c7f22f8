"""Checking the rows of an import file (``import-users``): each row against registration's
rules, and against the rows before it.

``import_file`` reads a CSV or JSON file into rows of text cells, named as the columns of
``export-users`` (JSON values are turned into the cells that say the same); ``RowChecker``
checks each row as it comes, with the same rules and messages as registration
(``account_rules.check_new_account``) and a hash with ``passwords.hash_problem``, and remembers
which line first used each username (by its key), e-mail address and id. What it builds, an
``ImportPlan``, is what ``bulk_import.import_users`` writes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .account_rules import (
    AccountValues,
    check_new_account,
    normalise_email,
    username_key,
    username_problems,
)
from .errors import InvalidUserInput
from .passwords import hash_problem

PASSWORD_COLUMNS = ("password", "password_hash")
OPTIONAL_COLUMNS = ("is_admin", "display_name", "email", "id", "created_at")
IMPORT_COLUMNS = ("username", *PASSWORD_COLUMNS, *OPTIONAL_COLUMNS)
TRUE_WORDS = frozenset({"true", "1", "yes"})
FALSE_WORDS = frozenset({"false", "0", "no", ""})
ID_MAX = 2**31 - 1  # the user table's id is an INT on MySQL
IS_ADMIN_PROBLEM = "is_admin must be true/false, 1/0, yes/no or empty."
ID_PROBLEM = f"id must be a whole number from 1 to {ID_MAX}, or empty for a new id."
CREATED_AT_PROBLEM = (
    "created_at must be a date and time as export-users writes it, such as "
    "2026-12-01T03:51:06Z (UTC), or empty for now."
)
BOTH_GIVEN = "Give a password or a password_hash, not both."
NEITHER_GIVEN = "This row has neither a password nor a password_hash."


@dataclass(frozen=True)
class BadRow:
    """A row that was not imported: its physical line in the file (header = line 1), and why."""

    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


@dataclass(frozen=True)
class ImportRow:
    """A row that meets every rule, waiting to be written: with a password to hash, or with a
    hash checked by ``passwords.hash_problem`` (kept out of repr(), so out of logs)."""

    line: int
    account: AccountValues
    is_admin: bool
    password: str | None = field(default=None, repr=False)
    password_hash: str | None = field(default=None, repr=False)
    id: int | None = None  # None: the database gives it one
    created_at: datetime | None = None  # None: now

    def values(self, password_hash: str) -> dict[str, Any]:
        """The user table's columns for this row."""
        values = self.account.row(password_hash, is_admin=self.is_admin)
        if self.id is not None:
            values["id"] = self.id
        if self.created_at is not None:
            values["created_at"] = self.created_at
        return values


@dataclass
class ImportPlan:
    """The checked file: rows to write, rows already known to be bad, and how many data rows
    the file has (``total``, for a progress bar)."""

    rows: list[ImportRow]
    bad: list[BadRow]
    total: int


def parse_is_admin(value: str) -> bool | None:
    """true/false, 1/0, yes/no in any case, or empty (false); None for anything else."""
    word = value.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    return None


def parse_created_at(value: str) -> datetime | None:
    """ISO 8601 (``Z`` or an offset; none means UTC) as naive UTC, as it is stored; None for
    an empty cell. Raises ValueError for anything else."""
    if not value.strip():
        return None
    moment = datetime.fromisoformat(value.strip())
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    if moment.year < 1000:  # before what MySQL's DATETIME holds
        raise ValueError(value)
    return moment


class RowChecker:
    """Checks data rows in file order, remembering which line first used each username (by its
    key), e-mail address and id, so that a repeat is reported as such."""

    def __init__(self, *, new_ids: bool, hash_column: bool) -> None:
        self.new_ids = new_ids
        self.hash_column = hash_column  # rows may bring a hash instead of a password
        self.rows: list[ImportRow] = []
        self.bad: list[BadRow] = []
        self.total = 0
        self.username_lines: dict[str, int] = {}
        self.email_lines: dict[str, int] = {}
        self.id_lines: dict[int, int] = {}

    def plan(self) -> ImportPlan:
        return ImportPlan(rows=self.rows, bad=self.bad, total=self.total)

    def bad_row(self, line: int, reason: str) -> None:
        self.total += 1
        self.bad.append(BadRow(line, reason))

    def check(self, line: int, fields: dict[str, str], problems: Sequence[str] = ()) -> None:
        self.total += 1
        problems = list(problems)
        username, password = fields.get("username", ""), fields.get("password", "")
        password_hash = fields.get("password_hash", "").strip()
        if password_hash and password:
            problems.append(BOTH_GIVEN)
        elif password_hash:
            if reason := hash_problem(password_hash):
                problems.append(reason)
        elif not password and self.hash_column:
            problems.append(NEITHER_GIVEN)
        plain = None if password_hash or (not password and self.hash_column) else password
        account: AccountValues | None = None
        try:
            account = check_new_account(
                username,
                plain,
                display_name=_blank_is_none(fields.get("display_name", "")),
                email=_blank_is_none(fields.get("email", "")),
            )
        except InvalidUserInput as exc:
            problems[:0] = [message for messages in exc.errors.values() for message in messages]
        is_admin = parse_is_admin(fields.get("is_admin", ""))
        if is_admin is None:
            problems.append(IS_ADMIN_PROBLEM)
        row_id = self._id(line, fields.get("id", ""), problems)
        created_at = None
        try:
            created_at = parse_created_at(fields.get("created_at", ""))
        except (ValueError, OverflowError):  # OverflowError: an offset past year 1 or 9999
            problems.append(CREATED_AT_PROBLEM)
        problems[:0] = self._repeats(line, username, fields.get("email", ""), account)
        if problems:
            self.bad.append(BadRow(line, _sentences(problems)))
        elif account is not None and is_admin is not None:
            self.rows.append(
                ImportRow(
                    line,
                    account,
                    is_admin,
                    password=plain,
                    password_hash=password_hash or None,
                    id=row_id,
                    created_at=created_at,
                )
            )

    def _id(self, line: int, cell: str, problems: list[str]) -> int | None:
        """The row's id, unless ids are not kept or the cell is empty; a repeat is a problem."""
        cell = cell.strip()
        if self.new_ids or not cell:
            return None
        if not (cell.isascii() and cell.isdigit() and 1 <= int(cell) <= ID_MAX):
            problems.append(ID_PROBLEM)
            return None
        row_id = int(cell)
        first = self.id_lines.setdefault(row_id, line)
        if first != line:
            problems.append(f"id {row_id} is also the id of line {first}.")
        return row_id

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
