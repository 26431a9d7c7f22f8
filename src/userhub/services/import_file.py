"""Reading an import file (``import-users``), before anything is written.

The import reads a UTF-8 file in two steps; this is the first. ``read_import_file`` decodes the
whole file and hands each row to ``import_rows.RowChecker`` without touching the database: a
file that cannot be imported at all (not UTF-8, a missing or unknown column, not CSV or not a
JSON array) raises ``ImportFileError`` before anything is written. The result, an
``ImportPlan``, is what ``bulk_import.import_users`` writes.

The file is what ``export-users`` writes, so that accounts move between databases: CSV with a
header (``username``, and ``password`` or ``password_hash``, and optionally ``is_admin``,
``display_name``, ``email``, ``id``, ``created_at``), or the JSON array of ``--format json``
(an object per account, with the same names). A file is read as JSON when its name ends in
``.json`` or its first character (after spaces) is ``[``, which no CSV header starts with. In
CSV, the export's spreadsheet guard is undone on the text columns (``restore_csv_cell``); JSON
values become the cells that say the same, so both are checked alike.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .bulk_export import restore_csv_cell
from .import_rows import (
    ID_PROBLEM,
    IMPORT_COLUMNS,
    OPTIONAL_COLUMNS,
    PASSWORD_COLUMNS,
    ImportPlan,
    RowChecker,
)

TEXT_COLUMNS = ("username", "display_name", "email")  # the export guards these from formulas
NO_HASH_OR_PLAIN_COLUMN = (
    'missing column "password" or "password_hash" (export-users writes password_hash with '
    "--with-hashes)"
)
_HEADER = f"username,password|password_hash[,{','.join(OPTIONAL_COLUMNS)}]"
JSON_KINDS = {
    list: "an array",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "true or false",
}
_JSON_SPACE = re.compile(r"[ \t\n\r]*")  # JSON's whitespace, as the json module skips it


class ImportFileError(Exception):
    """The file cannot be imported at all (unreadable, not UTF-8, wrong header); nothing was
    written."""


def read_import_file(path: Path, *, new_ids: bool = False) -> ImportPlan:
    """Decode (UTF-8, with or without a BOM) and check a whole import file, CSV or JSON.
    ``new_ids``: ignore the file's ids, so the database gives every account a new one."""
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
    if path.suffix.lower() == ".json" or text.lstrip().startswith("["):
        return parse_import_json(text, new_ids=new_ids)
    return parse_import_csv(text, new_ids=new_ids)


def parse_import_csv(text: str, *, new_ids: bool = False) -> ImportPlan:
    """Check the header and every row; raises ImportFileError for a wrong header.

    Line numbers are those an editor shows: a record is reported at the line it starts on (a
    quoted field may span lines). Blank lines are ignored."""
    reader = csv.reader(io.StringIO(text, newline=""))
    columns: list[str] | None = None
    checker: RowChecker | None = None
    lines_read = 0
    try:
        for record in reader:
            line, lines_read = lines_read + 1, reader.line_num
            if not record:
                continue
            if columns is None or checker is None:
                columns = _check_header(record, line)
                checker = RowChecker(new_ids=new_ids, hash_column="password_hash" in columns)
            elif len(record) != len(columns):
                checker.bad_row(line, f"expected {len(columns)} fields, found {len(record)}")
            else:
                fields = dict(zip(columns, record, strict=True))
                for name in TEXT_COLUMNS:
                    if name in fields:
                        fields[name] = restore_csv_cell(fields[name])
                checker.check(line, fields)
    except csv.Error as exc:
        raise ImportFileError(f"line {reader.line_num}: not valid CSV ({exc})") from None
    if checker is None:
        raise ImportFileError(f"the file is empty; its first line must be the header {_HEADER}")
    return checker.plan()


def parse_import_json(text: str, *, new_ids: bool = False) -> ImportPlan:
    """Check a JSON array of accounts, each reported at the line its object starts on (as
    ``export-users --format json`` writes it, one per line); raises ImportFileError for what
    is not such an array, or for a field no account has."""
    decoder = json.JSONDecoder()
    checker = RowChecker(new_ids=new_ids, hash_column=True)
    position = _skip_space(text, 0)
    if not text.startswith("[", position):
        raise ImportFileError(
            "the file is not a JSON array of accounts (it must start with [, as export-users "
            "--format json writes it)"
        )
    position = _skip_space(text, position + 1)
    line, counted = 1, 0  # the line at ``counted``, counted as the reading goes on
    if text.startswith("]", position):
        position += 1
    else:
        while True:
            line, counted = line + text.count("\n", counted, position), position
            try:
                value, position = decoder.raw_decode(text, position)
            except json.JSONDecodeError as exc:
                raise ImportFileError(f"line {exc.lineno}: not valid JSON ({exc.msg})") from None
            _check_object(checker, line, value)
            position = _skip_space(text, position)
            if text.startswith(",", position):
                position = _skip_space(text, position + 1)
            elif text.startswith("]", position):
                position += 1
                break
            else:
                raise ImportFileError(
                    f"line {_line_at(text, position)}: not valid JSON (expected , or ] after "
                    f"the account of line {line})"
                )
    if text[position:].strip(" \t\n\r"):
        raise ImportFileError(
            f"line {_line_at(text, position)}: not valid JSON (something follows the array)"
        )
    return checker.plan()


def _skip_space(text: str, position: int) -> int:
    """The position of the first character at or after ``position`` that is not JSON's space."""
    match = _JSON_SPACE.match(text, position)
    return match.end() if match else position


def _line_at(text: str, position: int) -> int:
    return text.count("\n", 0, position) + 1


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
    if "username" not in columns:
        problems.append(f"missing {_columns(['username'])}")
    if not set(PASSWORD_COLUMNS) & set(columns):
        problems.append(NO_HASH_OR_PLAIN_COLUMN)
    if repeated := sorted({name for name in columns if columns.count(name) > 1}):
        problems.append(f"{_columns(repeated)} given more than once")
    if problems:
        raise ImportFileError(
            f"line {line}: {'; '.join(problems)}. The first line must be the header "
            f"{_HEADER}, in any order."
        )
    return columns


def _columns(names: Sequence[str], word: str = "column") -> str:
    """``column "a"`` or ``columns "a", "b"`` (each cut to 30 characters)."""
    quoted = ", ".join(f'"{name[:30]}"' for name in names)
    return f"{word} {quoted}" if len(names) == 1 else f"{word}s {quoted}"


def _json_cells(account: dict[str, Any]) -> tuple[dict[str, str], list[str]]:
    """A JSON account's values as the CSV cells that say the same, and what has a wrong type."""
    cells: dict[str, str] = {}
    problems = []
    for name, value in account.items():
        if value is None:
            cells[name] = ""
        elif name == "is_admin":
            if isinstance(value, bool):
                cells[name] = "true" if value else "false"
            else:
                problems.append("is_admin must be true or false.")
        elif name == "id":
            if isinstance(value, int) and not isinstance(value, bool):
                cells[name] = str(value)
            else:
                problems.append(ID_PROBLEM)
        elif isinstance(value, str):
            cells[name] = value
        else:
            problems.append(f"{name} must be a string.")
    return cells, problems


def _check_object(checker: RowChecker, line: int, value: Any) -> None:
    """One element of a JSON array."""
    if not isinstance(value, dict):
        kind = JSON_KINDS.get(type(value), "something else")
        checker.bad_row(line, f"expected an account (a JSON object), found {kind}")
        return
    if unknown := [name for name in value if name not in IMPORT_COLUMNS]:
        raise ImportFileError(
            f"line {line}: unknown {_columns(unknown, 'field')}. An account's fields are "
            f"{', '.join(IMPORT_COLUMNS)}."
        )
    cells, problems = _json_cells(value)
    checker.check(line, cells, problems)
