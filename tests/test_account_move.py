"""Moving accounts between databases: ``export-users --with-hashes``, then ``import-users``
(``services/import_file.py``, ``import_rows.py``, ``bulk_import.py``,
``passwords.hash_problem``).

The move itself runs as a user runs it, in child processes, from a SQLite database to another
SQLite file and to MariaDB; the accounts then log in through the API with their passwords.
The rest (ids, hashes, JSON) goes through the command in-process, on both backends.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher, Type, extract_parameters
from flask import Flask
from flask.testing import FlaskCliRunner

from tests.helpers import (
    PASSWORD,
    TOKENS,
    ApiActions,
    AppBuilder,
    drop_mysql_database,
    mysql_url,
    needs_mysql,
    recreate_mysql_database,
)
from userhub.services import bulk_export, users
from userhub.services.passwords import passwords

# username, password, is_admin, display_name, email; "gone" is deleted, leaving a gap in the ids.
SOURCE_USERS = [
    ("alice", "alice-password-1", True, "=SUM(1)", "Alice@Example.com"),
    ("gone", "gone-password-2", False, None, None),
    ("张三", "zhangsan-password-3", False, "'quoted", "zhangsan@example.com"),
    ("bob", "bob-password-4", False, '<script>alert("x")</script>', None),
    ("-carol", "carol-password-5", False, "@carol", None),
]
MOVED = [user for user in SOURCE_USERS if user[0] != "gone"]


def flask_command(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``flask --app userhub ARGS`` in a child process, on the database ``url``."""
    return subprocess.run(  # noqa: S603 (our own command)
        [sys.executable, "-m", "flask", "--app", "userhub", *args],
        env={**os.environ, "USERHUB_DATABASE_URL": url},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def succeeded(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture
def source(build_app: AppBuilder, migrated_template: dict[str, str], tmp_path: Path) -> str:
    """A SQLite database, the default, with the accounts of ``SOURCE_USERS``."""
    path = tmp_path / "source.sqlite3"
    shutil.copy(migrated_template["sqlite_file"], path)
    url = f"sqlite:///{path}"
    app = build_app(url)
    with app.app_context():
        made = {
            name: users.register_user(
                name, password, is_admin=admin, display_name=display, email=email
            )
            for name, password, admin, display, email in SOURCE_USERS
        }
        users.delete_user(made["gone"], by_admin=made["alice"])
    return url


@pytest.fixture(params=["sqlite", pytest.param("mysql", marks=needs_mysql)])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database, neither migrated nor touched: a SQLite file, or a MariaDB database
    of its own, dropped after the test."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'target.sqlite3'}"
        return
    url = mysql_url("_move")
    recreate_mysql_database(url)
    yield url
    drop_mysql_database(url)


def records(app: Flask) -> list[dict[str, Any]]:
    with app.app_context():
        return list(bulk_export.iter_user_records(with_hashes=True))


def same_moment(moved: str, original: str, *, whole_seconds: bool) -> bool:
    """Whether a moved ``created_at`` is the original: exactly, or on MySQL, whose DATETIME
    keeps whole seconds (MariaDB cuts the fraction off, MySQL rounds it), within a second."""
    if not whole_seconds:
        return moved == original
    difference = datetime.fromisoformat(moved) - datetime.fromisoformat(original)
    return datetime.fromisoformat(moved).microsecond == 0 and abs(difference.total_seconds()) < 1


@pytest.mark.real_hashing
@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_accounts_move_with_their_passwords(
    build_app: AppBuilder, source: str, target: str, tmp_path: Path, fmt: str
) -> None:
    """The README's move: export with the old settings, ``db upgrade`` on the new database,
    import there; everyone logs in with the password they had."""
    exported = tmp_path / f"users.{fmt}"
    succeeded(
        flask_command(source, "export-users", "--with-hashes", "--format", fmt, "-o", str(exported))
    )
    succeeded(flask_command(target, "db", "upgrade"))
    imported = flask_command(target, "import-users", str(exported))
    assert succeeded(imported) == "created 4, skipped 0 (already exist), bad 0\n"
    assert "$argon2" not in imported.stdout + imported.stderr

    before = records(build_app(source))
    moved_app = build_app(target)
    after = records(moved_app)
    mysql = target.startswith("mysql")
    for moved, original in zip(after, before, strict=True):
        assert same_moment(moved.pop("created_at"), original.pop("created_at"), whole_seconds=mysql)
    assert after == before  # ids (with their gap), names, hashes, times, flags: all kept
    assert [record["id"] for record in after] == [1, 3, 4, 5]
    assert [record["display_name"] for record in after][:2] == ["=SUM(1)", "'quoted"]

    client = moved_app.test_client()
    for username, password, *_ in MOVED:
        response = client.post(TOKENS, json={"username": username, "password": password})
        assert response.status_code == 201, (username, response.get_json())
    wrong = client.post(TOKENS, json={"username": "alice", "password": "bob-password-4"})
    assert wrong.status_code == 401
    hashes = [record["password_hash"] for record in after]
    assert [record["password_hash"] for record in records(moved_app)] == hashes  # none replaced
    admin = client.post(TOKENS, json={"username": "alice", "password": "alice-password-1"})
    listing = client.get(
        "/api/v1/users", headers={"Authorization": f"Bearer {admin.get_json()['token']}"}
    )
    assert [user["id"] for user in listing.get_json()["items"]] == [1, 3, 4, 5]

    registered = client.post("/api/v1/users", json={"username": "newcomer", "password": PASSWORD})
    assert registered.status_code == 201, registered.get_json()
    assert registered.get_json()["id"] > 5  # after the highest imported id, never a clash

    again = flask_command(target, "import-users", str(exported))
    assert succeeded(again) == "created 0, skipped 4 (already exist), bad 0\n"


# --- ids ------------------------------------------------------------------------------------


def import_text(runner: FlaskCliRunner, tmp_path: Path, text: str, *options: str) -> Any:
    path = tmp_path / "users.csv"
    path.write_text(text, encoding="utf-8")
    return runner.invoke(args=["import-users", str(path), *options])


def test_ids_are_kept_and_registration_carries_on_after_them(
    runner: FlaskCliRunner, api: ApiActions, tmp_path: Path
) -> None:
    text = "id,username,password\n7,seven,password-seven\n42,answer,password-answer\n"
    result = import_text(runner, tmp_path, text + ",fresh,password-fresh\n")
    assert result.exit_code == 0, result.output
    assert result.stdout == "created 3, skipped 0 (already exist), bad 0\n"
    ids = {row["username"]: row["id"] for row in api.rows("user")}
    assert (ids["seven"], ids["answer"]) == (7, 42)
    assert ids["fresh"] not in {7, 42}
    assert api.token("answer", "password-answer")
    registered = api.register("later")
    assert registered.status_code == 201
    assert registered.get_json()["id"] > max(ids.values())


def test_an_id_another_account_has_is_a_bad_row_unless_new_ids(
    app: Flask, runner: FlaskCliRunner, api: ApiActions, tmp_path: Path
) -> None:
    with app.app_context():
        existing = users.register_user("existing", PASSWORD).id
    text = (
        f"id,username,password\n{existing},newcomer,password-new\n"
        f"{existing + 5},EXISTING,password-x\n"
    )
    result = import_text(runner, tmp_path, text)
    assert result.exit_code == 1, result.output
    assert result.stdout.splitlines() == [
        "created 0, skipped 1 (already exist), bad 1",
        f"line 2: id {existing} belongs to another account. Import with --new-ids to give the "
        "file's accounts new ids (to add them to a database that has accounts of its own).",
    ]
    merged = import_text(runner, tmp_path, text, "--new-ids")
    assert merged.exit_code == 0, merged.output
    assert merged.stdout == "created 1, skipped 1 (already exist), bad 0\n"
    assert api.user_row("newcomer")["id"] != existing
    assert api.user_row("existing")["id"] == existing
    assert api.token("newcomer", "password-new")


def test_bad_ids_and_times_are_reported(
    runner: FlaskCliRunner, api: ApiActions, tmp_path: Path
) -> None:
    text = (
        "username,password,id,created_at\n"
        "a1,password-1,x,\n"
        "a2,password-2,0,\n"
        "a3,password-3,-3,\n"
        "a4,password-4,2147483648,\n"
        "a5,password-5,5,\n"
        "a6,password-6,5,\n"
        "a7,password-7,,yesterday\n"
        "a8,password-8,,2026-13-01T00:00:00Z\n"
        "a9,password-9,9,2026-12-01T11:51:06+08:00\n"
    )
    result = import_text(runner, tmp_path, text)
    assert result.exit_code == 1
    id_problem = "id must be a whole number from 1 to 2147483647, or empty for a new id."
    time_problem = (
        "created_at must be a date and time as export-users writes it, such as "
        "2026-12-01T03:51:06Z (UTC), or empty for now."
    )
    assert result.stdout.splitlines() == [
        "created 2, skipped 0 (already exist), bad 7",
        f"line 2: {id_problem}",
        f"line 3: {id_problem}",
        f"line 4: {id_problem}",
        f"line 5: {id_problem}",
        "line 7: id 5 is also the id of line 6.",
        f"line 8: {time_problem}",
        f"line 9: {time_problem}",
    ]
    a9 = api.user_row("a9")
    assert (a9["id"], a9["created_at"]) == (9, datetime(2026, 12, 1, 3, 51, 6))  # in UTC


# --- hashes ---------------------------------------------------------------------------------

CHEAP = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


def test_bad_hashes_are_reported_with_their_line_and_reason(
    app: Flask, runner: FlaskCliRunner, api: ApiActions, tmp_path: Path
) -> None:
    good = CHEAP.hash("good-password")
    argon2i = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1, type=Type.I).hash(
        "password-i"
    )
    rows = [  # from line 2
        ("fine", "", good),
        ("user3", "", "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW"),
        ("user4", "", "hunter2-plain-text"),
        ("user5", "", good[:-3]),  # cut short; still decodes, to a 30-byte hash
        ("user6", "", argon2i),
        ("user7", "password-7", good),
        ("user8", "", ""),
        ("user9", "", good[:-2] + "!!"),
        ("user10", "", "$argon2id$v=19$m=19456,t=2"),
    ]
    out = io.StringIO()
    csv.writer(out).writerows([("username", "password", "password_hash"), *rows])
    text = out.getvalue()
    result = import_text(runner, tmp_path, text)
    assert result.exit_code == 1
    again = "Export it again with export-users --with-hashes."
    fresh = (
        "Put a new password for this account in the password column instead (it is hashed on "
        "import; tell its owner), and leave password_hash empty."
    )
    assert result.stdout.splitlines() == [
        "created 1, skipped 0 (already exist), bad 8",
        f"line 3: password_hash is a bcrypt hash; only argon2id hashes are accepted. {fresh}",
        "line 4: password_hash is not a password hash (it does not start with $argon2id$); a "
        "plain password goes in the password column.",
        "line 5: password_hash is cut short: its salt has 16 bytes and its hash 30 (at least 8 "
        f"and 32 expected). {again}",
        f"line 6: password_hash is an argon2i hash; only argon2id hashes are accepted. {fresh}",
        "line 7: Give a password or a password_hash, not both.",
        "line 8: This row has neither a password nor a password_hash.",
        "line 9: password_hash is damaged: its salt or hash part is not base64 as argon2 "
        f"writes it. {again}",
        "line 10: password_hash is not a whole argon2id hash: its parameters cannot be read (was "
        f"it cut short or edited?). {again}",
    ]
    for *_, value in rows:  # no hash, nor a part of one, is shown
        for part in value.split("$")[-2:]:
            assert len(part) < 8 or part not in result.output
    assert [row["username"] for row in api.rows("user")] == ["fine"]
    assert api.user_row("fine")["password_hash"] == good
    assert api.token("fine", "good-password")


@pytest.mark.real_hashing
def test_an_imported_hash_of_other_parameters_is_replaced_at_the_next_log_in(
    app: Flask, runner: FlaskCliRunner, api: ApiActions, tmp_path: Path
) -> None:
    old = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=2).hash("an old password")
    result = import_text(runner, tmp_path, f'username,password_hash\nolder,"{old}"\n')
    assert result.exit_code == 0, result.output
    assert api.user_row("older")["password_hash"] == old  # stored as it came
    assert (
        api.client.post(TOKENS, json={"username": "older", "password": "wrong one"}).status_code
        == 401
    )
    assert api.user_row("older")["password_hash"] == old  # a wrong password changes nothing

    assert api.token("older", "an old password")
    renewed = api.user_row("older")["password_hash"]
    with app.app_context():
        configured = passwords().hasher
    parameters = extract_parameters(renewed)
    assert (parameters.time_cost, parameters.memory_cost, parameters.parallelism) == (
        configured.time_cost,
        configured.memory_cost,
        configured.parallelism,
    )
    assert api.token("older", "an old password")
    assert api.user_row("older")["password_hash"] == renewed  # replaced once, not at every log-in


# --- JSON -----------------------------------------------------------------------------------


def json_file(tmp_path: Path, content: Any, name: str = "users.json") -> Path:
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content), "utf-8")
    return path


def test_a_json_array_is_read_whatever_the_file_is_named(
    runner: FlaskCliRunner, api: ApiActions, tmp_path: Path
) -> None:
    accounts = [
        {"username": "json1", "password": "password-1", "is_admin": True, "email": None},
        {"username": "json2", "password_hash": CHEAP.hash("password-2"), "id": 20},
    ]
    path = json_file(tmp_path, "\n  " + json.dumps(accounts), "accounts.txt")
    result = runner.invoke(args=["import-users", str(path)])
    assert result.exit_code == 0, result.output
    assert result.stdout == "created 2, skipped 0 (already exist), bad 0\n"
    assert api.user_row("json1")["is_admin"]
    assert api.user_row("json2")["id"] == 20
    assert api.token("json2", "password-2")


def test_json_rows_with_wrong_values_are_reported_at_their_line(
    runner: FlaskCliRunner, api: ApiActions, tmp_path: Path
) -> None:
    text = (
        "[\n"
        '{"username": "ok", "password": "password-ok"},\n'
        "5,\n"
        '{"username": "admin?", "password": "password-2", "is_admin": "yes"},\n'
        '{"username": "idtext", "password": "password-3", "id": "3"},\n'
        '{"username": 7, "password": "password-4"},\n'
        '{"username": "nothing"}\n'
        "]"
    )
    result = runner.invoke(args=["import-users", str(json_file(tmp_path, text))])
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        "created 1, skipped 0 (already exist), bad 5",
        "line 3: expected an account (a JSON object), found a number",
        "line 4: is_admin must be true or false.",
        "line 5: id must be a whole number from 1 to 2147483647, or empty for a new id.",
        "line 6: Username is required. username must be a string.",
        "line 7: This row has neither a password nor a password_hash.",
    ]
    assert [row["username"] for row in api.rows("user")] == ["ok"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"username": "a"}', "the file is not a JSON array of accounts"),
        (
            '[{"username": "a", "password": "password-1", "role": "x"}]',
            'line 1: unknown field "role"',
        ),
        (
            '[\n{"username": "a", "password": "password-1"},\n{"username": \n',
            "line 4: not valid JSON",
        ),
        (
            '[{"username": "a", "password": "password-1"} {"username": "b"}]',
            "line 1: not valid JSON",
        ),
        ("[] []", "something follows the array"),
        ("", "the file is not a JSON array"),
    ],
)
def test_a_json_file_that_cannot_be_imported_writes_nothing(
    runner: FlaskCliRunner, api: ApiActions, tmp_path: Path, content: str, message: str
) -> None:
    result = runner.invoke(args=["import-users", str(json_file(tmp_path, content))])
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert "password-1" not in result.output
    assert api.count("user") == 0
