"""``flask --app userhub import-users`` and ``export-users`` (``services/import_file.py``,
``bulk_import.py``, ``bulk_export.py``).

Each hash costs ~20 ms, so every test imports only a handful of rows.
"""

from __future__ import annotations

import csv
import io
import json
import os
import pty
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import event
from sqlalchemy.exc import OperationalError

from tests.helpers import PASSWORD, ApiActions
from userhub.extensions import db
from userhub.models import User
from userhub.services import (
    account_rules,
    bulk_export,
    bulk_import,
    import_file,
    import_rows,
    users,
)
from userhub.services.passwords import passwords


def csv_file(tmp_path: Path, text: str, name: str = "users.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8"))
    return path


def import_users(runner: FlaskCliRunner, path: Path, *options: str) -> Result:
    return runner.invoke(args=["import-users", str(path), *options])


def login(app: Flask, username: str, password: str) -> User | None:
    with app.app_context():
        user = users.authenticate(username, password)
        db.session.expunge_all()
        return user


def assert_no_secrets(output: str, *passwords_used: str) -> None:
    assert "$argon2" not in output
    for password in passwords_used:
        assert password not in output


GOOD = (
    "username,password,is_admin,display_name,email\n"
    "alice,alice-password-1,yes,Alice,Alice@Example.com\n"
    "张三,zhangsan-password-2,,张三,\n"
    "bob,bob-password-3,FALSE,,\n"
)
GOOD_PASSWORDS = ("alice-password-1", "zhangsan-password-2", "bob-password-3")


# --- import: good rows, idempotency -------------------------------------------------------------


@pytest.mark.real_hashing
def test_import_creates_accounts_that_can_log_in(
    app: Flask, runner: FlaskCliRunner, api: ApiActions, tmp_path: Path
) -> None:
    result = import_users(runner, csv_file(tmp_path, GOOD), "--batch-size", "2")
    assert result.exit_code == 0, result.output
    assert result.stdout == "created 3, skipped 0 (already exist), bad 0\n"
    assert_no_secrets(result.output, *GOOD_PASSWORDS)
    alice = login(app, "alice", "alice-password-1")
    assert alice is not None and alice.is_admin
    assert (alice.display_name, alice.email) == ("Alice", "alice@example.com")
    zhang = login(app, "张三", "zhangsan-password-2")
    assert zhang is not None and not zhang.is_admin and zhang.email is None
    assert login(app, "bob", "bob-password-3") is not None
    assert login(app, "bob", "alice-password-1") is None
    rows = api.rows("user")
    assert [row["username"] for row in rows] == ["alice", "张三", "bob"]
    assert {row["pending_email"] for row in rows} == {None}
    assert all(row["created_at"] is not None for row in rows)
    with app.app_context():  # the app's configured parameters, so no rehash at first log-in
        assert not any(passwords().needs_rehash(row["password_hash"]) for row in rows)


def test_import_again_creates_nothing_and_hashes_nothing(
    app: Flask,
    runner: FlaskCliRunner,
    api: ApiActions,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = csv_file(tmp_path, GOOD)
    assert import_users(runner, path).exit_code == 0
    with app.app_context():
        hasher = passwords()
    hashed: list[str] = []
    real_hash = hasher.hash

    def fake_hash(password: str) -> str:
        hashed.append(password)
        return ""

    monkeypatch.setattr(hasher, "hash", fake_hash)
    for _ in range(2):
        again = import_users(runner, path)
        assert again.exit_code == 0, again.output
        assert again.stdout == "created 0, skipped 3 (already exist), bad 0\n"
    assert hashed == []
    monkeypatch.setattr(hasher, "hash", real_hash)
    # Compared as usernames are: ignoring case and width.
    variants = csv_file(tmp_path, "username,password\nALICE,other-password\nｂｏｂ,other-pass\n")
    assert import_users(runner, variants).stdout == "created 0, skipped 2 (already exist), bad 0\n"
    assert api.count("user") == 3
    assert login(app, "alice", "other-password") is None


def test_an_empty_file_with_a_header_imports_nothing(
    runner: FlaskCliRunner, api: ApiActions, tmp_path: Path
) -> None:
    result = import_users(runner, csv_file(tmp_path, "password,username\r\n\r\n"))
    assert result.exit_code == 0, result.output
    assert result.stdout == "created 0, skipped 0 (already exist), bad 0\n"
    assert api.count("user") == 0


# --- import: bad rows -------------------------------------------------------------------------

BAD_EMAIL = "not-an-email"
BAD_FILE = (
    "username,password,is_admin,email\n"  # 1
    "good1,good-password-1,,good1@example.com\n"  # 2
    "short,1234567,,\n"  # 3
    ",empty-name-password,,\n"  # 4
    f"bademail,bad-email-password,,{BAD_EMAIL}\n"  # 5
    "badadmin,bad-admin-password,maybe,\n"  # 6
    "toomany,too-many-password,,,extra\n"  # 7
    "\n"  # 8: blank lines are ignored
    "GOOD1,repeat-password,,\n"  # 9
    "mailrepeat,mail-repeat-password,,GOOD1@example.COM\n"  # 10
    "mailtaken,mail-taken-password,,existing@example.com\n"  # 11
    '"two\n'  # 12: a quoted field over two lines is reported at the line it starts on
    'lines",two-lines-password,,\n'  # 13
    "toofew\n"  # 14
    "good2,good-password-2,no,\n"  # 15
)
BAD_PASSWORDS = (
    "1234567",
    "empty-name-password",
    "bad-email-password",
    "bad-admin-password",
    "too-many-password",
    "repeat-password",
    "mail-repeat-password",
    "mail-taken-password",
    "two-lines-password",
    "good-password-1",
    "good-password-2",
)


def test_bad_rows_are_reported_with_their_line_and_reason(
    app: Flask, runner: FlaskCliRunner, api: ApiActions, tmp_path: Path
) -> None:
    with app.app_context():
        users.register_user("existing", PASSWORD, email="existing@example.com")
        email_problem = account_rules.normalise_email(BAD_EMAIL)[1][0]
    result = import_users(runner, csv_file(tmp_path, BAD_FILE), "--batch-size", "3")
    assert result.exit_code == 1, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "created 2, skipped 0 (already exist), bad 10"
    assert lines[1:] == [
        "line 3: Password must be at least 8 characters.",
        "line 4: Username is required.",
        f"line 5: {email_problem}",
        "line 6: is_admin must be true/false, 1/0, yes/no or empty.",
        "line 7: expected 4 fields, found 5",
        "line 9: duplicate of line 2",
        "line 10: This e-mail address is already used by line 2.",
        "line 11: This e-mail address is already used by another account.",
        "line 12: Username must not contain control or invisible characters.",
        "line 14: expected 4 fields, found 1",
    ]
    assert_no_secrets(result.output, *BAD_PASSWORDS)
    # The good rows are in, the bad ones are not; every row is one or the other.
    assert sorted(row["username"] for row in api.rows("user")) == ["existing", "good1", "good2"]
    assert login(app, "good2", "good-password-2") is not None
    again = import_users(runner, csv_file(tmp_path, BAD_FILE))
    assert again.exit_code == 1
    assert again.stdout.splitlines()[0] == "created 0, skipped 2 (already exist), bad 10"
    assert again.stdout.splitlines()[1:] == lines[1:]


def test_every_problem_of_a_row_is_reported(runner: FlaskCliRunner, tmp_path: Path) -> None:
    text = (
        "username,password,is_admin,display_name\n"
        "fine,password-1,,\n"
        " fine ,short,2,\t\n"
        "FINE,tiny,,\n"
    )
    result = import_users(runner, csv_file(tmp_path, text))
    assert result.exit_code == 1
    assert result.stdout.splitlines()[1:] == [
        "line 3: Username must not start or end with spaces. "
        "Password must be at least 8 characters. "
        "is_admin must be true/false, 1/0, yes/no or empty.",
        "line 4: duplicate of line 2. Password must be at least 8 characters.",
    ]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("true", True),
        ("TRUE", True),
        ("Yes", True),
        ("1", True),
        (" yes ", True),
        ("false", False),
        ("No", False),
        ("0", False),
        ("", False),
        ("maybe", None),
        ("2", None),
        ("y", None),
        ("on", None),
    ],
)
def test_is_admin_words(value: str, expected: bool | None) -> None:
    assert import_rows.parse_is_admin(value) is expected


def test_text_is_stored_verbatim(
    app: Flask, runner: FlaskCliRunner, api: ApiActions, tmp_path: Path
) -> None:
    text = (
        "username,display_name,password\n"
        '张三,"<script>alert(""x"")</script>",password-one\n'
        "'; DROP TABLE user--,\"Robert'); DROP TABLE user;--\",password-two\n"
        '=1+1,"=HYPERLINK(""http://evil"",""x"")",password-three\n'
    )
    result = import_users(runner, csv_file(tmp_path, text))
    assert result.exit_code == 0, result.output
    rows = {row["username"]: row["display_name"] for row in api.rows("user")}
    assert rows == {
        "张三": '<script>alert("x")</script>',
        "'; DROP TABLE user--": "Robert'); DROP TABLE user;--",
        "=1+1": '=HYPERLINK("http://evil","x")',
    }
    assert login(app, "'; DROP TABLE user--", "password-two") is not None


# --- import: files that cannot be imported -----------------------------------------------------


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"username\nalice\n", 'line 1: missing column "password"'),
        (b"user,pass,email\nalice,password-1,\n", 'unknown columns "user", "pass"'),
        # No header: the first user's password is not echoed as a column name.
        (b"alice,first-password\nbob,second-password\n", "line 1 is not a header"),
        (
            b"username,password,role\nalice,password-1,admin\n",
            'line 1: unknown column "role"',
        ),
        (b"username,password,username\na,password-1,b\n", 'column "username" given more'),
        (b"", "the file is empty"),
        (b"\n\n", "the file is empty"),
        # Bad bytes on the last line: the good rows before them are not written either.
        (
            b"username,password\nalice,password-1\nbob,password-2\n\xd5\xc5\xc8\xfd,password-3\n",
            "the file is not UTF-8 (line 4",
        ),
    ],
)
def test_a_file_that_cannot_be_imported_writes_nothing(
    runner: FlaskCliRunner, api: ApiActions, tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "users.csv"
    path.write_bytes(content)
    result = import_users(runner, path)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert "first-password" not in result.output
    assert result.stdout == ""
    assert api.count("user") == 0


def test_a_missing_file_is_a_usage_error(runner: FlaskCliRunner, tmp_path: Path) -> None:
    result = import_users(runner, tmp_path / "nowhere.csv")
    assert result.exit_code == 2
    assert "does not exist" in result.stderr


def test_a_byte_order_mark_is_accepted(app: Flask, runner: FlaskCliRunner, tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes("username,password\r\n张三,password-1\r\n".encode("utf-8-sig"))
    result = import_users(runner, path)
    assert result.exit_code == 0, result.output
    assert result.stdout == "created 1, skipped 0 (already exist), bad 0\n"
    assert login(app, "张三", "password-1") is not None


# --- import: nothing half-written ---------------------------------------------------------------


def test_a_registration_racing_the_import_is_skipped_or_reported(
    app: Flask, api: ApiActions, tmp_path: Path
) -> None:
    """Someone registers a name and an address of the file after the import checked them and
    before it inserts: the batch's commit fails, and each row still ends up in or reported."""
    path = csv_file(
        tmp_path,
        "username,password,email\n"
        "first,password-1,\n"
        "racer,password-2,\n"
        "mailer,password-3,race@example.com\n"
        "last,password-4,\n",
    )

    def register_concurrently(done: int) -> None:
        if done and api.count("user") == 0:
            users.register_user("RACER", PASSWORD)
            users.register_user("other", PASSWORD, email="race@example.com")

    with app.app_context():
        plan = import_file.read_import_file(path)
        result = bulk_import.import_users(plan, workers=2, progress=register_concurrently)
    assert (result.created, result.skipped) == (2, 1)
    assert [str(bad) for bad in result.bad] == [
        "line 4: This e-mail address is already used by another account."
    ]
    assert sorted(row["username"] for row in api.rows("user")) == [
        "RACER",
        "first",
        "last",
        "other",
    ]


def test_a_database_failure_keeps_what_was_committed_and_names_no_hash(
    app: Flask, api: ApiActions, tmp_path: Path
) -> None:
    """The connection is lost while the second batch (lines 4-5) is inserted."""
    rows = "".join(f"user{n},password-{n}\n" for n in range(1, 6))
    path = csv_file(tmp_path, "username,password\n" + rows)

    def lose_the_connection(*args: Any) -> None:
        statement, parameters = args[2], args[3]
        if statement.startswith("INSERT") and "user4" in repr(parameters):
            raise OperationalError(statement, parameters, ConnectionError("the server went away"))

    with app.app_context():
        event.listen(db.engine, "before_cursor_execute", lose_the_connection)
        try:
            with pytest.raises(bulk_import.ImportAborted) as aborted:
                bulk_import.import_users(
                    import_file.read_import_file(path), workers=2, batch_size=2
                )
        finally:
            event.remove(db.engine, "before_cursor_execute", lose_the_connection)
        db.session.remove()
    assert str(aborted.value).startswith(
        "the database failed at line 4 (the server went away). The 2 rows imported before "
        "that stay; nothing after them was written."
    )
    assert_no_secrets(str(aborted.value), *(f"password-{n}" for n in range(1, 6)))
    assert sorted(row["username"] for row in api.rows("user")) == ["user1", "user2"]
    with app.app_context():
        result = bulk_import.import_users(
            import_file.read_import_file(path), workers=2, batch_size=2
        )
    assert (result.created, result.skipped, result.bad) == (3, 2, [])


# --- import: the progress bar -----------------------------------------------------------------


def test_the_progress_bar_is_drawn_when_stderr_is_a_terminal(
    database_url: str, api: ApiActions, tmp_path: Path
) -> None:
    """The real command in a child process whose stderr is a pseudo-terminal."""
    rows = "".join(f"tty{n},password-{n}\n" for n in range(6))
    path = csv_file(tmp_path, "username,password\n" + rows)
    controller, terminal = pty.openpty()
    command = [sys.executable, "-m", "flask", "--app", "userhub", "import-users", str(path)]
    child = subprocess.Popen(  # noqa: S603 (our own command)
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=terminal,
        env={**os.environ, "USERHUB_DATABASE_URL": database_url},
    )
    os.close(terminal)
    drawn = b""
    while True:
        try:
            chunk = os.read(controller, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        drawn += chunk
    os.close(controller)
    stdout, _ = child.communicate(timeout=120)
    assert child.returncode == 0, (stdout, drawn)
    screen = drawn.decode()
    assert "Importing users  [------------------------------------]    0%" in screen
    assert "Importing users  [####################################]  100%" in screen
    assert stdout.decode() == "created 6, skipped 0 (already exist), bad 0\n"
    assert api.count("user") == 6


def test_no_progress_bar_when_stderr_is_not_a_terminal(
    runner: FlaskCliRunner, tmp_path: Path
) -> None:
    result = import_users(runner, csv_file(tmp_path, GOOD))
    assert result.exit_code == 0
    assert result.stderr == ""


# --- export ----------------------------------------------------------------------------------


@pytest.fixture
def imported(runner: FlaskCliRunner, tmp_path: Path) -> None:
    text = GOOD + (
        '=1+1,formula-password,,"=HYPERLINK(""http://evil"",""x"")",\n'
        "'quoted,quoted-password,,'tis me,\n"
    )
    result = import_users(runner, csv_file(tmp_path, text, "seed.csv"))
    assert result.exit_code == 0, result.output


def export(runner: FlaskCliRunner, *options: str) -> Result:
    result = runner.invoke(args=["export-users", *options])
    assert result.exit_code == 0, result.output
    return result


def expected_records(api: ApiActions, *, with_hashes: bool = False) -> list[dict[str, Any]]:
    """The user table's rows as an export should show them."""
    records = []
    for row in sorted(api.rows("user"), key=lambda row: row["id"]):
        record = {name: row[name] for name in bulk_export.export_columns(with_hashes)}
        record["is_admin"] = bool(record["is_admin"])
        record["created_at"] = row["created_at"].isoformat() + "Z"
        records.append(record)
    return records


def parse_csv(text: str) -> list[dict[str, Any]]:
    """The export's CSV back into values: cells restored, types as in JSON."""
    records: list[dict[str, Any]] = []
    for raw in csv.DictReader(io.StringIO(text, newline="")):
        record: dict[str, Any] = {
            name: bulk_export.restore_csv_cell(cell) for name, cell in raw.items()
        }
        record["id"] = int(record["id"])
        record["is_admin"] = {"true": True, "false": False}[record["is_admin"]]
        for name in ("display_name", "email"):
            record[name] = record[name] or None
        records.append(record)
    return records


@pytest.mark.usefixtures("imported")
def test_export_csv_matches_the_database(runner: FlaskCliRunner, api: ApiActions) -> None:
    result = export(runner)
    assert result.stdout_bytes.startswith(b"id,username,display_name,email,is_admin,created_at\r\n")
    assert "张三".encode() in result.stdout_bytes  # UTF-8, as is
    assert "password" not in result.stdout and "$argon2" not in result.stdout
    assert parse_csv(result.stdout) == expected_records(api)
    lines = result.stdout.splitlines()
    assert lines[1].startswith("1,alice,Alice,alice@example.com,true,")
    assert lines[2].startswith("2,张三,张三,,false,")
    # Formula-like cells are neutralised for spreadsheets; an apostrophe is doubled.
    assert lines[4].startswith('4,\'=1+1,"\'=HYPERLINK(""http://evil"",""x"")",,false,')
    assert lines[5].startswith("5,''quoted,''tis me,,false,")


@pytest.mark.usefixtures("imported")
def test_export_json_matches_the_database(runner: FlaskCliRunner, api: ApiActions) -> None:
    result = export(runner, "--format", "json")
    assert "张三" in result.stdout  # not \u5f20\u4e09
    assert "$argon2" not in result.stdout and "password_hash" not in result.stdout
    records = json.loads(result.stdout)
    assert records == expected_records(api)
    assert records[3]["username"] == "=1+1"  # JSON is exact
    assert records[0]["created_at"].endswith("Z")


@pytest.mark.usefixtures("imported")
@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_export_with_hashes(runner: FlaskCliRunner, api: ApiActions, fmt: str) -> None:
    result = export(runner, "--format", fmt, "--with-hashes")
    records = json.loads(result.stdout) if fmt == "json" else parse_csv(result.stdout)
    assert records == expected_records(api, with_hashes=True)
    assert all(record["password_hash"].startswith("$argon2id$") for record in records)


@pytest.mark.usefixtures("imported")
@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_export_to_a_file(
    runner: FlaskCliRunner, api: ApiActions, tmp_path: Path, fmt: str
) -> None:
    target = tmp_path / f"users.{fmt}"
    target.write_text("old content")
    result = export(runner, "--format", fmt, "--output", str(target))
    assert result.stdout == f"Exported 5 users to {target}.\n"
    text = target.read_bytes().decode("utf-8")
    records = json.loads(text) if fmt == "json" else parse_csv(text)
    assert records == expected_records(api)
    assert target.stat().st_mode & 0o077 == 0  # e-mail addresses: for its owner only
    assert [path.name for path in tmp_path.iterdir() if path.name.endswith(".tmp")] == []


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [("csv", b"id,username,display_name,email,is_admin,created_at\r\n"), ("json", b"[]\n")],
)
def test_export_of_no_users(runner: FlaskCliRunner, fmt: str, expected: bytes) -> None:
    assert export(runner, "--format", fmt).stdout_bytes == expected


def test_export_reads_in_chunks_in_id_order(
    app: Flask, runner: FlaskCliRunner, tmp_path: Path
) -> None:
    rows = "".join(f"chunk{n},password-{n}\n" for n in range(5))
    assert import_users(runner, csv_file(tmp_path, "username,password\n" + rows)).exit_code == 0
    with app.app_context():
        records = list(bulk_export.iter_user_records(chunk_size=2))
    assert [record["username"] for record in records] == [f"chunk{n}" for n in range(5)]
    assert [record["id"] for record in records] == sorted(record["id"] for record in records)


@pytest.mark.parametrize(
    "value", ["=SUM(A1)", "+1", "-1", "@x", "\tx", "\rx", "'x", "''", "plain", "", "a=b"]
)
def test_csv_cell_neutralising_is_reversible(value: str) -> None:
    cell = bulk_export.neutralise_csv_cell(value)
    assert bulk_export.restore_csv_cell(cell) == value
    assert not cell.startswith(("=", "+", "-", "@", "\t", "\r"))
