"""Bulk export of accounts (behind ``export-users``).

**Export** streams accounts in id order, ``EXPORT_CHUNK_SIZE`` rows per query (keyset
pagination: ``WHERE id > last``), as CSV or as one JSON array. Password hashes are left out
unless asked for. CSV cells are made safe to open in a spreadsheet: a text cell that begins
with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return (which Excel, LibreOffice and WPS would
run as a formula) gets a leading apostrophe, and so does one that already begins with an
apostrophe, so the rule is exactly reversible: strip one leading apostrophe
(``restore_csv_cell``, which ``import-users`` applies to the text columns, so an export imports
back exactly). JSON is exact, for programs.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from sqlalchemy import select

from ..extensions import db
from ..models import User, utc_iso

EXPORT_COLUMNS = ("id", "username", "display_name", "email", "is_admin", "created_at")
HASH_COLUMN = "password_hash"
EXPORT_CHUNK_SIZE = 1000
FORMATS = ("csv", "json")
# What makes a spreadsheet read a cell as a formula (OWASP "CSV Injection"), plus the apostrophe
# itself so that the escaping can be undone exactly.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "'")


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
    """The value ``neutralise_csv_cell`` was given: one leading apostrophe comes off where the
    guard put it, before one of ``FORMULA_STARTS``. Any other cell is left as it is, so a
    hand-made file's ``'; DROP TABLE`` stays whole (the export cannot have written it)."""
    if value.startswith("'") and value[1:].startswith(FORMULA_STARTS):
        return value[1:]
    return value


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
