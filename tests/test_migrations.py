"""``flask db upgrade``: a new database, and the tutorial's own ``user`` table upgraded in place.

Each test gets empty databases of its own: a SQLite file in ``tmp_path``, or on MySQL/MariaDB a
sibling of the test database (``<test db>_upgrade``, ``<test db>_upgrade_fresh``), dropped and
created for the test. The migrations run through the real command, as a deployer runs them.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher
from click.testing import Result
from flask import Flask

from tests.helpers import (
    AppBuilder,
    AuthActions,
    bearer,
    drop_mysql_database,
    mysql_url,
    recreate_mysql_database,
)
from userhub.extensions import db
from userhub.models import User
from userhub.services import api_keys, tokens, users
from userhub.services.tokens import token_hash

# The upgrade hashes the tutorial's plaintext passwords with the app's hasher: the real one.
pytestmark = pytest.mark.real_hashing

# The tutorial's §5 statement, with the table named `user` as its INSERTs expect.
TUTORIAL_TABLE = {
    "mysql": (
        "CREATE TABLE user(id INT NOT NULL AUTO_INCREMENT, username VARCHAR(20) NOT NULL, "
        "password VARCHAR(20) NOT NULL, PRIMARY KEY ( id ))ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;"
    ),
    "sqlite": (
        "CREATE TABLE user (id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, "
        "username VARCHAR(20) NOT NULL, password VARCHAR(20) NOT NULL)"
    ),
}
# What an interrupted upgrade (0001) leaves behind: the new columns added, still nullable
# (``session_version`` among them: 0001 adds it, 0005 drops it).
NEW_COLUMNS_NULLABLE = {
    "mysql": [
        "username_key VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL",
        "password_hash VARCHAR(255) NULL",
        "is_admin BOOL NOT NULL DEFAULT 0",
        "session_version INTEGER NOT NULL DEFAULT 1",
        "created_at DATETIME NULL",
        "updated_at DATETIME NULL",
    ],
    "sqlite": [
        "username_key VARCHAR(255)",
        "password_hash VARCHAR(255)",
        "is_admin BOOLEAN NOT NULL DEFAULT 0",
        "session_version INTEGER NOT NULL DEFAULT 1",
        "created_at DATETIME",
        "updated_at DATETIME",
    ],
}
USERHUB_COLUMNS = {
    "id",
    "username",
    "username_key",
    "password_hash",
    "display_name",
    "email",
    "email_verified_at",
    "pending_email",
    "is_admin",
    "is_support",
    "deactivated_at",
    "deletion_due_at",
    "passkey_handle",
    "created_at",
    "updated_at",
}
HEAD = "0007"  # the newest revision
TUTORIAL_USERS = [("张三", "123456"), ("lisi", "li-si-secret"), ("Wang Wu", "密码 with spaces")]
LONG_PASSWORD = "a long enough password"
AN_HOUR = datetime(2026, 1, 1, 12)


# --- databases ------------------------------------------------------------------------------


@pytest.fixture
def new_database(backend: str, tmp_path: Path) -> Iterator[Callable[[str], str]]:
    """Make an empty database for this test: ``new_database("upgrade")`` → its URL."""
    made: list[str] = []

    def make(name: str) -> str:
        if backend == "sqlite":
            return f"sqlite:///{tmp_path / f'{name}.sqlite3'}"
        url = mysql_url(f"_{name}")  # never the test database itself, nor `test`
        recreate_mysql_database(url)
        made.append(url)
        return url

    yield make
    for url in made:
        drop_mysql_database(url)


@contextmanager
def connect(url: str) -> Iterator[sa.Connection]:
    """A connection of our own (not the app's), in a transaction committed at the end."""
    engine = sa.create_engine(url)
    try:
        with engine.begin() as connection:
            yield connection
    finally:
        engine.dispose()


def backend_of(url: str) -> str:
    return "sqlite" if url.startswith("sqlite") else "mysql"


def create_tutorial_table(url: str, users: list[tuple[str, str]]) -> list[int]:
    """The tutorial's table with its users inserted as §5 does; returns their ids."""
    with connect(url) as connection:
        connection.exec_driver_sql(TUTORIAL_TABLE[backend_of(url)])
        for username, password in users:
            connection.execute(
                sa.text("INSERT INTO user (username, password) VALUES (:username, :password)"),
                {"username": username, "password": password},
            )
    return [row["id"] for row in table_rows(url)]


def table_rows(url: str) -> list[dict[str, Any]]:
    with connect(url) as connection:
        result = connection.execute(sa.text("SELECT * FROM user ORDER BY id"))
        return [dict(row._mapping) for row in result]


def stamped_version(url: str) -> list[str]:
    """The revisions ``alembic_version`` records (none if the table is missing)."""
    with connect(url) as connection:
        if not sa.inspect(connection).has_table("alembic_version"):
            return []
        return list(
            connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalars()
        )


def schema(url: str) -> dict[str, Any]:
    """The ``user`` table as the database describes it."""
    engine = sa.create_engine(url)
    try:
        inspector = sa.inspect(engine)
        columns = sorted(
            (
                column["name"],
                str(column["type"].compile(dialect=engine.dialect)),
                "NULL" if column["nullable"] else "NOT NULL",
                f"DEFAULT {column['default']}",
                "AUTO_INCREMENT" if column.get("autoincrement") is True else "",
            )
            for column in inspector.get_columns("user")
        )
        options = inspector.get_table_options("user")
        return {
            "tables": sorted(inspector.get_table_names()),
            "columns": columns,
            "primary key": inspector.get_pk_constraint("user")["constrained_columns"],
            "unique": sorted(
                (unique["name"], tuple(unique["column_names"]))
                for unique in inspector.get_unique_constraints("user")
            ),
            "engine": options.get("mysql_engine"),
            "charset": options.get("mysql_default charset"),
        }
    finally:
        engine.dispose()


def user_table(url: str) -> dict[str, Any]:
    """``schema`` without the list of tables."""
    return {key: value for key, value in schema(url).items() if key != "tables"}


def assert_same_user_table(url: str, expected_url: str) -> None:
    """The ``user`` tables of two databases agree (SQLite may keep ``sqlite_sequence`` too)."""
    actual, expected = user_table(url), user_table(expected_url)
    for key in expected:
        assert actual[key] == expected[key], key


# --- the command and the app ----------------------------------------------------------------


def db_upgrade(app: Flask) -> Result:
    return app.test_cli_runner().invoke(args=["db", "upgrade"])


def assert_succeeded(result: Result) -> None:
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"


def flask_cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """The real command in a process of its own, as a deployer types it."""
    return subprocess.run(
        [sys.executable, "-m", "flask", "--app", "userhub", *args],
        env={**os.environ, "USERHUB_DATABASE_URL": url},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def greeting_after_login(app: Flask, username: str, password: str) -> str | None:
    """Log in through the tutorial's form; the /success page's greeting, or None if refused."""
    client = app.test_client()
    with AuthActions(client).login(username, password) as response:
        if response.status_code != 302:
            assert response.status_code == 200
            assert "Invalid username or password." in response.get_data(as_text=True)
            return None
        assert response.headers["Location"].startswith("/success")
    with client.get("/success") as page:
        assert page.status_code == 200
        match = re.search(r"<h1>(.*?)</h1>", page.get_data(as_text=True))
        assert match
        return match.group(1)


def save_user(app: Flask, username: str, password: str = LONG_PASSWORD) -> int:
    """§5's ``/save_data_to_mysql``; the status code."""
    body = {"username": username, "password": password}
    with app.test_client().post("/save_data_to_mysql", json=body) as response:
        return response.status_code


def assert_hashes_verify(rows: list[dict[str, Any]], passwords: dict[int, str]) -> None:
    for row in rows:
        assert row["password_hash"].startswith("$argon2id$"), row["password_hash"]
        assert PasswordHasher().verify(row["password_hash"], passwords[row["id"]])


def assert_no_plaintext(rows: list[dict[str, Any]], passwords: list[str]) -> None:
    for row in rows:
        for column, value in row.items():
            for password in passwords:
                assert password not in str(value), f"plaintext in {column} of user {row['id']}"


# --- a new database -------------------------------------------------------------------------


def test_upgrade_creates_the_user_table_and_a_second_run_changes_nothing(
    new_database: Callable[[str], str],
    build_app: AppBuilder,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="alembic")
    url = new_database("upgrade")
    app = build_app(url)

    assert_succeeded(db_upgrade(app))
    assert "Running upgrade  -> 0001" in caplog.text
    created = schema(url)
    assert {"user", "api_token", "alembic_version"} <= set(created["tables"])
    assert {column[0] for column in created["columns"]} == USERHUB_COLUMNS
    assert stamped_version(url) == [HEAD]
    assert save_user(app, "张三") == 200
    rows = table_rows(url)
    assert [row["username"] for row in rows] == ["张三"]

    caplog.clear()
    assert_succeeded(db_upgrade(app))
    assert "Running upgrade" not in caplog.text
    assert schema(url) == created
    assert table_rows(url) == rows
    assert stamped_version(url) == [HEAD]
    assert greeting_after_login(app, "张三", LONG_PASSWORD) == "Hello,张三"


# --- the tutorial's table -------------------------------------------------------------------


def test_upgrade_keeps_the_tutorials_users_and_replaces_their_passwords_by_hashes(
    new_database: Callable[[str], str], build_app: AppBuilder
) -> None:
    url = new_database("upgrade")
    ids = create_tutorial_table(url, TUTORIAL_USERS)
    passwords = {
        user_id: password for user_id, (_, password) in zip(ids, TUTORIAL_USERS, strict=True)
    }
    app = build_app(url)

    assert_succeeded(db_upgrade(app))

    rows = table_rows(url)
    assert [(row["id"], row["username"]) for row in rows] == [
        (user_id, username) for user_id, (username, _) in zip(ids, TUTORIAL_USERS, strict=True)
    ]
    assert set(rows[0]) == USERHUB_COLUMNS  # `password` is gone
    assert_no_plaintext(rows, list(passwords.values()))
    assert_hashes_verify(rows, passwords)
    assert stamped_version(url) == [HEAD]
    for username, password in TUTORIAL_USERS:
        assert greeting_after_login(app, username, password) == f"Hello,{username}"
        assert greeting_after_login(app, username, password + "x") is None

    assert_succeeded(db_upgrade(app))
    assert table_rows(url) == rows


def test_colliding_usernames_are_renamed_and_reported_never_dropped(
    new_database: Callable[[str], str],
    build_app: AppBuilder,
    caplog: pytest.LogCaptureFixture,
) -> None:
    users = [
        ("zhangsan", "first-secret"),
        ("ZhangSan", "second-secret"),
        ("zhangsan", "third-secret"),  # §5 sent twice
        ("ｚｈａｎｇｓａｎ", "fourth-secret"),  # full-width: the same name once NFKC-normalised
        ("lisi", "fifth-secret"),
    ]
    url = new_database("upgrade")
    ids = create_tutorial_table(url, users)
    app = build_app(url)

    assert_succeeded(db_upgrade(app))

    expected = [
        (ids[0], "zhangsan"),
        (ids[1], f"ZhangSan_{ids[1]}"),
        (ids[2], f"zhangsan_{ids[2]}"),
        (ids[3], f"ｚｈａｎｇｓａｎ_{ids[3]}"),
        (ids[4], "lisi"),
    ]
    rows = table_rows(url)
    assert [(row["id"], row["username"]) for row in rows] == expected
    assert_hashes_verify(rows, {ids[i]: password for i, (_, password) in enumerate(users)})
    reports = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    for (old_name, _), (user_id, new_name) in zip(users[1:4], expected[1:4], strict=True):
        assert any(
            f"{old_name!r} (id {user_id})" in report and f"renamed to {new_name!r}" in report
            for report in reports
        ), reports
    assert len(reports) == 3

    # Each owner logs in with the name they now have and their old password.
    for (_, password), (_, username) in zip(users, expected, strict=True):
        assert greeting_after_login(app, username, password) == f"Hello,{username}"
    assert greeting_after_login(app, "zhangsan", "third-secret") is None

    # The UNIQUE index is in place: case and width variants of any name are refused.
    assert ("uq_user_username_key", ("username_key",)) in schema(url)["unique"]
    assert save_user(app, "ZHANGSAN") == 409
    assert save_user(app, f"zhangsan_{ids[1]}") == 409
    assert save_user(app, "ＬＩＳＩ") == 409
    assert save_user(app, "wangwu") == 200


def test_the_real_command_prints_each_rename(new_database: Callable[[str], str]) -> None:
    url = new_database("upgrade")
    ids = create_tutorial_table(url, [("zhangsan", "first-secret"), ("ZHANGSAN", "second")])

    process = flask_cli(url, "db", "upgrade")

    assert process.returncode == 0, process.stderr
    assert f"'ZHANGSAN' (id {ids[1]})" in process.stderr
    assert f"renamed to 'ZHANGSAN_{ids[1]}'" in process.stderr
    assert [row["username"] for row in table_rows(url)] == ["zhangsan", f"ZHANGSAN_{ids[1]}"]


@pytest.mark.parametrize(
    "users", [TUTORIAL_USERS, [("zhangsan", "one-secret"), ("ZhangSan", "two-secret")], []]
)
def test_the_upgraded_table_is_the_table_a_new_database_gets(
    new_database: Callable[[str], str],
    build_app: AppBuilder,
    users: list[tuple[str, str]],
) -> None:
    fresh_url = new_database("upgrade_fresh")
    assert_succeeded(db_upgrade(build_app(fresh_url)))
    url = new_database("upgrade")
    create_tutorial_table(url, users)

    assert_succeeded(db_upgrade(build_app(url)))

    assert_same_user_table(url, fresh_url)


def test_the_upgraded_table_takes_rows_that_name_only_the_required_columns(
    new_database: Callable[[str], str], build_app: AppBuilder
) -> None:
    """Rows inserted by hand (SQL, another tool) get the column defaults a new table has."""
    url = new_database("upgrade")
    create_tutorial_table(url, TUTORIAL_USERS)
    app = build_app(url)
    assert_succeeded(db_upgrade(app))
    hashed = PasswordHasher().hash("typed-in-sql")

    with connect(url) as connection:
        connection.execute(
            sa.text(
                "INSERT INTO user (username, username_key, password_hash, created_at, updated_at)"
                " VALUES ('zhaoliu', 'zhaoliu', :hash, :at, :at)"
            ),
            {"hash": hashed, "at": AN_HOUR},
        )

    added = table_rows(url)[-1]
    assert (added["username"], bool(added["is_admin"])) == ("zhaoliu", False)
    assert (added["display_name"], added["email"], added["email_verified_at"]) == (None,) * 3
    assert greeting_after_login(app, "zhaoliu", "typed-in-sql") == "Hello,zhaoliu"


# --- tables the upgrade must not touch ------------------------------------------------------

FOREIGN_TABLES = {
    "id and email": (
        "CREATE TABLE user (id INTEGER NOT NULL PRIMARY KEY, email VARCHAR(100) NOT NULL)",
        "INSERT INTO user (id, email) VALUES (1, 'a@example.com'), (2, 'b@example.com')",
        "['email', 'id']",
    ),
    "the tutorial's columns and email": (
        "CREATE TABLE user (id INTEGER NOT NULL PRIMARY KEY, username VARCHAR(20) NOT NULL, "
        "password VARCHAR(20) NOT NULL, email VARCHAR(100))",
        "INSERT INTO user (id, username, password, email) "
        "VALUES (1, 'zhangsan', '123456', 'a@example.com'), (2, 'ZhangSan', '654321', NULL)",
        "['email', 'id', 'password', 'username']",
    ),
}


@pytest.mark.parametrize("shape", FOREIGN_TABLES)
def test_a_user_table_of_another_shape_stops_the_upgrade_and_is_left_untouched(
    new_database: Callable[[str], str],
    build_app: AppBuilder,
    caplog: pytest.LogCaptureFixture,
    shape: str,
) -> None:
    create, insert, listed = FOREIGN_TABLES[shape]
    url = new_database("upgrade")
    with connect(url) as connection:
        connection.exec_driver_sql(create)
        connection.exec_driver_sql(insert)
    before = (user_table(url), table_rows(url))
    app = build_app(url)

    for _ in range(2):  # and again: the failed attempt left nothing half-done
        caplog.clear()
        result = db_upgrade(app)
        assert result.exit_code == 1
        errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1, errors
        assert "A table named `user` exists but is not the tutorial's table" in errors[0]
        assert f"its columns are {listed}" in errors[0]
        assert "USERHUB_DATABASE_URL" in errors[0]
        assert (user_table(url), table_rows(url)) == before
        assert stamped_version(url) == []


def test_the_real_command_explains_a_foreign_user_table(
    new_database: Callable[[str], str],
) -> None:
    create, insert, listed = FOREIGN_TABLES["id and email"]
    url = new_database("upgrade")
    with connect(url) as connection:
        connection.exec_driver_sql(create)
        connection.exec_driver_sql(insert)

    process = flask_cli(url, "db", "upgrade")

    assert process.returncode == 1
    assert "A table named `user` exists but is not the tutorial's table" in process.stderr
    assert listed in process.stderr
    assert "Traceback" not in process.stderr
    assert len(table_rows(url)) == 2


# --- an interrupted upgrade -----------------------------------------------------------------


@pytest.mark.parametrize("rows_done", [0, 1, 3])
def test_an_upgrade_interrupted_half_way_completes_when_run_again(
    new_database: Callable[[str], str], build_app: AppBuilder, rows_done: int
) -> None:
    """MySQL commits each ALTER, so a crash can leave the new columns added (nullable) and
    some rows already converted (hash written, plaintext blanked) beside the old column."""
    fresh_url = new_database("upgrade_fresh")
    assert_succeeded(db_upgrade(build_app(fresh_url)))
    url = new_database("upgrade")
    ids = create_tutorial_table(url, TUTORIAL_USERS)
    passwords = {
        user_id: password for user_id, (_, password) in zip(ids, TUTORIAL_USERS, strict=True)
    }
    earlier_hashes: dict[int, str] = {}
    with connect(url) as connection:
        for column in NEW_COLUMNS_NULLABLE[backend_of(url)]:
            connection.exec_driver_sql(f"ALTER TABLE user ADD COLUMN {column}")
        converted = list(zip(ids, TUTORIAL_USERS, strict=True))[:rows_done]
        for user_id, (username, password) in converted:
            earlier_hashes[user_id] = PasswordHasher().hash(password)
            connection.execute(
                sa.text(
                    "UPDATE user SET password = '', password_hash = :hash, username_key = :key,"
                    " created_at = :at, updated_at = :at WHERE id = :id"
                ),
                {
                    "hash": earlier_hashes[user_id],
                    "key": username.casefold(),
                    "at": AN_HOUR,
                    "id": user_id,
                },
            )
    app = build_app(url)

    assert_succeeded(db_upgrade(app))

    rows = table_rows(url)
    assert [(row["id"], row["username"]) for row in rows] == [
        (user_id, username) for user_id, (username, _) in zip(ids, TUTORIAL_USERS, strict=True)
    ]
    assert set(rows[0]) == USERHUB_COLUMNS
    assert_no_plaintext(rows, list(passwords.values()))
    assert_hashes_verify(rows, passwords)
    for row in rows:
        if row["id"] in earlier_hashes:
            assert row["password_hash"] == earlier_hashes[row["id"]]
    assert_same_user_table(url, fresh_url)
    assert stamped_version(url) == [HEAD]
    for username, password in TUTORIAL_USERS:
        assert greeting_after_login(app, username, password) == f"Hello,{username}"


def test_the_migrated_schema_is_exactly_what_the_models_describe(
    new_database: Callable[[str], str], build_app: AppBuilder
) -> None:
    """`flask db check`: autogenerate finds nothing to add, drop or change after upgrading."""
    app = build_app(new_database("upgrade"))
    assert_succeeded(db_upgrade(app))
    result = app.test_cli_runner().invoke(args=["db", "check"])
    assert result.exit_code == 0, result.output


def test_downgrade_to_0001_removes_profiles_and_tokens_and_upgrade_restores_them(
    new_database: Callable[[str], str], build_app: AppBuilder
) -> None:
    url = new_database("upgrade")
    app = build_app(url)
    assert_succeeded(db_upgrade(app))
    assert save_user(app, "张三") == 200
    assert_succeeded(app.test_cli_runner().invoke(args=["db", "downgrade", "0001"]))
    assert "api_token" not in schema(url)["tables"]
    assert [row["username"] for row in table_rows(url)] == ["张三"]
    assert_succeeded(db_upgrade(app))
    assert stamped_version(url) == [HEAD]
    assert greeting_after_login(app, "张三", LONG_PASSWORD) == "Hello,张三"


# --- 0004 to 0005: server-side sessions, named API keys, the security log --------------------

OLD_TOKEN = "uh_" + "t" * 43  # a log-in token issued before the upgrade


def migrate_to(app: Flask, revision: str, command: str = "upgrade") -> None:
    assert_succeeded(app.test_cli_runner().invoke(args=["db", command, revision]))


def rows_of(url: str, table: str) -> list[dict[str, Any]]:
    with connect(url) as connection:
        result = connection.execute(sa.text(f"SELECT * FROM {table} ORDER BY id"))
        return [dict(row._mapping) for row in result]


def fill_0004(url: str) -> list[int]:
    """Two accounts at revision 0004 (one with its session version bumped), a log-in token and
    a mailed link; the accounts' ids."""
    hashed = PasswordHasher().hash(LONG_PASSWORD)
    with connect(url) as connection:
        for name, version in (("zhangsan", 1), ("lisi", 4)):
            connection.execute(
                sa.text(
                    "INSERT INTO user (username, username_key, password_hash, is_admin, "
                    "session_version, created_at, updated_at) "
                    "VALUES (:name, :name, :hash, 0, :version, :at, :at)"
                ),
                {"name": name, "hash": hashed, "version": version, "at": AN_HOUR},
            )
        ids = list(connection.execute(sa.text("SELECT id FROM user ORDER BY id")).scalars())
        connection.execute(
            sa.text(
                "INSERT INTO api_token (user_id, token_hash, created_at, expires_at) "
                "VALUES (:user, :hash, :at, :until)"
            ),
            {
                "user": ids[0],
                "hash": token_hash(OLD_TOKEN),
                "at": AN_HOUR,
                "until": datetime(2099, 1, 1),
            },
        )
        connection.execute(
            sa.text(
                "INSERT INTO email_link (user_id, purpose, token_hash, email, created_at, "
                "expires_at) VALUES (:user, 'verify', :hash, 'lisi@example.com', :at, :until)"
            ),
            {"user": ids[1], "hash": "ab" * 32, "at": AN_HOUR, "until": datetime(2099, 1, 1)},
        )
    return ids


def test_the_upgrade_from_0004_keeps_accounts_tokens_and_links(
    new_database: Callable[[str], str], build_app: AppBuilder
) -> None:
    """The session version goes, and nothing else: SQLite rebuilds ``user`` to drop it, which
    must neither delete what references it (tokens, links) nor lose AUTOINCREMENT."""
    url = new_database("upgrade")
    app = build_app(url)
    migrate_to(app, "0004")
    ids = fill_0004(url)
    users_before = table_rows(url)
    link_before = rows_of(url, "email_link")

    migrate_to(app, "head")

    assert stamped_version(url) == [HEAD]
    assert table_rows(url) == [
        {
            **{column: value for column, value in row.items() if column != "session_version"},
            "passkey_handle": None,  # 0006
            **{"deactivated_at": None, "deletion_due_at": None, "is_support": 0},  # 0007
        }
        for row in users_before
    ]
    [token] = rows_of(url, "api_token")
    assert token["user_id"] == ids[0] and token["token_hash"] == token_hash(OLD_TOKEN)
    assert [token[c] for c in ("name", "scopes", "prefix", "last_used_at")] == [None] * 4
    assert rows_of(url, "email_link") == [{**link_before[0], "target_id": None}]
    assert rows_of(url, "user_session") == rows_of(url, "security_event") == []
    check = app.test_cli_runner().invoke(args=["db", "check"])
    assert check.exit_code == 0, check.output

    # The token issued before still works, and a log-in makes a session of the new kind.
    me = app.test_client().get("/api/v1/users/me", headers=bearer(OLD_TOKEN))
    assert me.status_code == 200 and me.get_json()["username"] == "zhangsan"
    assert greeting_after_login(app, "lisi", LONG_PASSWORD) == "Hello,lisi"
    assert [row["user_id"] for row in rows_of(url, "user_session")] == [ids[1]]
    # Foreign keys are on again for the app: a deleted account takes its token and session.
    with app.app_context():
        db.session.execute(sa.delete(User).where(User.id.in_(ids)))
        db.session.commit()
    assert rows_of(url, "api_token") == rows_of(url, "user_session") == []
    assert rows_of(url, "email_link") == []
    # Ids of deleted accounts are not given again (the security log names accounts by id).
    assert save_user(app, "wangwu") == 200
    assert [row["id"] for row in table_rows(url)] == [ids[1] + 1]


def test_a_downgrade_to_0004_restores_session_versions_and_drops_the_personal_keys(
    new_database: Callable[[str], str], build_app: AppBuilder
) -> None:
    """0004 knows no scopes: a read-only key would become a token that may do anything, so the
    keys go; log-in tokens and accounts stay, and the upgrade after brings the tables back."""
    url = new_database("upgrade")
    app = build_app(url)
    assert_succeeded(db_upgrade(app))
    with app.app_context():
        user = users.register_user("zhangsan", LONG_PASSWORD)
        issued = tokens.issue(user)
        key = api_keys.create(user, "backup script", [api_keys.READ])
        key_id = key.row.id
    assert greeting_after_login(app, "zhangsan", LONG_PASSWORD) == "Hello,zhangsan"

    migrate_to(app, "0004", "downgrade")

    tables = schema(url)["tables"]
    assert "user_session" not in tables and "security_event" not in tables
    assert [row["session_version"] for row in table_rows(url)] == [1]
    remaining = rows_of(url, "api_token")
    assert [row["token_hash"] for row in remaining] == [token_hash(issued.token)]
    assert key_id not in {row["id"] for row in remaining}
    assert "name" not in remaining[0]

    assert_succeeded(db_upgrade(app))
    assert stamped_version(url) == [HEAD]
    me = app.test_client().get("/api/v1/users/me", headers=bearer(issued.token))
    assert me.status_code == 200
    assert greeting_after_login(app, "zhangsan", LONG_PASSWORD) == "Hello,zhangsan"


def test_the_upgrade_to_0007_erases_the_usernames_of_deleted_accounts(
    new_database: Callable[[str], str], build_app: AppBuilder
) -> None:
    """Before 0007 an account's deletion was logged with its username; the event now names the
    account by its id only, and the older ones lose the name too. Other events are untouched."""
    url = new_database("upgrade")
    app = build_app(url)
    migrate_to(app, "0006")
    with connect(url) as connection:
        for kind, details in (
            ("account-deleted", '{"username": "zhangsan"}'),
            ("account-updated", '{"fields": ["display_name"]}'),
        ):
            connection.execute(
                sa.text(
                    "INSERT INTO security_event (user_id, type, created_at, actor_id, details) "
                    "VALUES (7, :kind, :at, 1, :details)"
                ),
                {"kind": kind, "at": AN_HOUR, "details": details},
            )
    migrate_to(app, "head")
    assert [
        (row["type"], row["actor_id"], row["details"]) for row in rows_of(url, "security_event")
    ] == [
        ("account-deleted", 1, None),
        ("account-updated", 1, '{"fields": ["display_name"]}'),
    ]
