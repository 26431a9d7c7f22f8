"""The first hour with a database setting: each mistake a learner makes with
``USERHUB_DATABASE_URL`` stops ``flask --app userhub db upgrade`` (and the other commands) and
``userhub serve`` with one sentence that names the variable and what to do, in the reader's
language, never a traceback (unless ``--debug``) and never the password. One server per port.
Run as a user runs them: the installed commands, in subprocesses, against the real MariaDB."""

from __future__ import annotations

import logging
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa
from flask_migrate import downgrade, upgrade
from sqlalchemy.engine import make_url

from tests.helpers import (
    MYSQL_URL,
    WORKER,
    AppBuilder,
    dispose,
    make_app,
    mysql_url,
    needs_mysql,
    recreate_mysql_database,
)
from tests.live_server import BIN, free_port, running_server, server_environment, upgrade_schema
from userhub.config import ConfigError, load_config
from userhub.config.language import reader_locale

SECRET = "s3cr3t-Wrong-pw"  # a password that must never be printed


def command(
    args: list[str], url: str, workdir: Path, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``args`` (``flask --app userhub ...`` or ``userhub serve ...``) as a user would."""
    environ = {**server_environment(url, workdir / "instance", "development"), **(env or {})}
    environ.setdefault("LANG", "C.UTF-8")
    environ.pop("LANGUAGE", None)
    return subprocess.run(
        [str(BIN / args[0]), *args[1:]],
        env=environ,
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def db_upgrade(url: str, workdir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return command(["flask", "--app", "userhub", "db", "upgrade"], url, workdir, env)


def serve(url: str, workdir: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``userhub serve`` on a free port (unless ``args`` name one): it must stop by itself."""
    port = [] if "--port" in args else ["--port", str(free_port())]
    return command(["userhub", "serve", "--workers", "1", *port, *args], url, workdir, env)


def assert_one_clear_line(result: subprocess.CompletedProcess[str], *words: str) -> str:
    """The command failed with one line (stderr; stdout empty) naming each of ``words``."""
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "Traceback" not in output and "sqlalche.me" not in output, output
    assert len(output.strip().splitlines()) == 1, output
    assert SECRET not in output
    for word in words:
        assert word in output, output
    return output


def server_part() -> tuple[str, int]:
    url = make_url(MYSQL_URL)
    return url.host or "127.0.0.1", url.port or 3306


def mysql(user: str, password: str = "", database: str = "x", scheme: str = "mysql+pymysql") -> str:
    host, port = server_part()
    secret = f":{password}" if password else ""
    return f"{scheme}://{user}{secret}@{host}:{port}/{database}"


@pytest.fixture
def mysql_user() -> Iterator[str]:
    """A MySQL user of this test's own, created without rights, dropped afterwards."""
    name = f"userhub_t{WORKER or 'x'}"
    server = sa.create_engine(make_url(MYSQL_URL).set(database=""))
    with server.begin() as connection:
        connection.exec_driver_sql(f"DROP USER IF EXISTS '{name}'@'%%'")
        connection.exec_driver_sql(f"CREATE USER '{name}'@'%%' IDENTIFIED BY 'right-pw-1'")
    yield name
    with server.begin() as connection:
        connection.exec_driver_sql(f"DROP USER IF EXISTS '{name}'@'%%'")
    server.dispose()


# --- a wrong URL: refused before anything connects ----------------------------------------------


@pytest.mark.parametrize(
    ("url", "words"),
    [
        (
            f"mysql://root:{SECRET}@127.0.0.1:3306/userhub",
            ["USERHUB_DATABASE_URL=mysql://root:***@", "mysql+pymysql://root:***@127.0.0.1"],
        ),
        (f"postgresql://me:{SECRET}@db/userhub", ["USERHUB_DATABASE_URL", "postgresql", "MySQL"]),
        (f"root:{SECRET}@127.0.0.1/userhub", ["USERHUB_DATABASE_URL is not a database URL"]),
        (f"mysql+pymysql://root:{SECRET}@127.0.0.1:3306", ["names no database"]),
    ],
)
def test_a_url_userhub_cannot_use_is_refused_with_what_to_write(
    url: str, words: list[str], tmp_path: Path
) -> None:
    assert_one_clear_line(db_upgrade(url, tmp_path), "Error: ", *words)
    assert_one_clear_line(serve(url, tmp_path), "userhub: ", *words)
    with pytest.raises(ConfigError) as refused:
        load_config({"USERHUB_DATABASE_URL": url})
    assert SECRET not in str(refused.value)


def test_sqlite_urls_of_any_file_are_accepted() -> None:
    for url in ("sqlite:///relative.db", "sqlite:////abs/path.db", "sqlite://"):
        assert load_config({"USERHUB_DATABASE_URL": url})["SQLALCHEMY_DATABASE_URI"] == url


# --- a URL that leads nowhere: the driver's reason, in words ----------------------------------


def test_an_unknown_host_is_named(tmp_path: Path) -> None:
    url = f"mysql+pymysql://root:{SECRET}@no-such-host.invalid:3306/userhub"
    assert_one_clear_line(db_upgrade(url, tmp_path), "'no-such-host.invalid' is unknown")


def test_a_server_that_is_not_running_is_named_with_how_to_start_it(tmp_path: Path) -> None:
    url = f"mysql+pymysql://root:{SECRET}@127.0.0.1:{free_port()}/userhub"
    for result in (db_upgrade(url, tmp_path), serve(url, tmp_path)):
        assert_one_clear_line(result, "nothing answers", "connection refused", "Start MySQL")


@needs_mysql
def test_a_wrong_password_is_named_and_never_printed(tmp_path: Path) -> None:
    url = mysql("root", SECRET, make_url(MYSQL_URL).database or "")
    words = ["USERHUB_DATABASE_URL", "refused user 'root'", "password is wrong", "1045"]
    assert_one_clear_line(db_upgrade(url, tmp_path), *words)
    assert_one_clear_line(serve(url, tmp_path), *words)
    for other in (["create-admin", "--username", "x", "--password-stdin"], ["export-users"]):
        result = command(["flask", "--app", "userhub", *other], url, tmp_path)
        assert_one_clear_line(result, *words)


@needs_mysql
def test_a_missing_database_is_named_with_the_statement_that_creates_it(tmp_path: Path) -> None:
    url = mysql("root", database="userhub_no_such_database")
    assert_one_clear_line(
        db_upgrade(url, tmp_path),
        "'userhub_no_such_database' does not exist",
        "CREATE DATABASE `userhub_no_such_database` CHARACTER SET utf8mb4",
    )


@needs_mysql
def test_a_user_without_rights_on_the_database_is_told_the_grant(
    tmp_path: Path, mysql_user: str
) -> None:
    url = mysql(mysql_user, "right-pw-1", make_url(MYSQL_URL).database or "")
    assert_one_clear_line(db_upgrade(url, tmp_path), "1044", f"TO '{mysql_user}'@'%'")


@needs_mysql
def test_a_user_that_does_not_exist_is_told_how_to_make_one(tmp_path: Path) -> None:
    url = mysql("userhub_nobody")
    assert_one_clear_line(db_upgrade(url, tmp_path), "1698", "CREATE USER 'userhub'@")


@needs_mysql
def test_a_log_in_method_pymysql_cannot_speak_is_named(tmp_path: Path, mysql_user: str) -> None:
    """MariaDB's ed25519 (PyMySQL needs PyNaCl for it), as MySQL 8's newer methods once were."""
    server = sa.create_engine(make_url(MYSQL_URL).set(database=""))
    with server.begin() as connection:
        installed = connection.exec_driver_sql(
            "SELECT 1 FROM information_schema.plugins WHERE plugin_name = 'ed25519'"
        ).first()
        if not installed:
            connection.exec_driver_sql("INSTALL SONAME 'auth_ed25519'")
        connection.exec_driver_sql(
            f"ALTER USER '{mysql_user}'@'%%' IDENTIFIED VIA ed25519 USING PASSWORD('right-pw-1')"
        )
    server.dispose()
    url = mysql(mysql_user, "right-pw-1", make_url(MYSQL_URL).database or "")
    assert_one_clear_line(db_upgrade(url, tmp_path), "PyMySQL", "ALTER USER")


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    url = f"mysql+pymysql://root@127.0.0.1:{free_port()}/userhub"
    result = command(["flask", "--app", "userhub", "--debug", "db", "upgrade"], url, tmp_path)
    assert result.returncode != 0
    assert "Traceback" in result.stderr and "Connection refused" in result.stderr


def test_the_message_is_in_chinese_for_a_chinese_terminal(tmp_path: Path) -> None:
    url = f"mysql+pymysql://root@127.0.0.1:{free_port()}/userhub"
    output = assert_one_clear_line(db_upgrade(url, tmp_path, LANG="zh_CN.UTF-8"))
    assert "连接被拒绝" in output and "USERHUB_DATABASE_URL" in output


@pytest.mark.parametrize(
    ("environ", "locale"),
    [
        ({"LANG": "zh_CN.UTF-8"}, "zh_Hans_CN"),
        ({"LANG": "en_US.UTF-8", "LANGUAGE": "zh_SG:en"}, "zh_Hans_CN"),
        ({"LC_ALL": "C", "LANG": "zh_CN.UTF-8"}, "en"),
        ({"LANG": "zh_TW.UTF-8"}, "en"),  # Traditional characters: not our Chinese
        ({"LANG": "de_DE.UTF-8"}, "en"),
        ({"LANG": "nonsense!"}, "en"),
        ({}, "en"),
    ],
)
def test_the_command_line_reads_the_language_of_the_locale(
    environ: dict[str, str], locale: str
) -> None:
    assert reader_locale(environ) == locale


# --- the schema: a server refuses to start on tables it cannot use ----------------------------


def test_serve_and_the_commands_before_db_upgrade_say_to_run_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
    export = command(["flask", "--app", "userhub", "export-users"], url, tmp_path)
    for result in (serve(url, tmp_path), export):
        assert_one_clear_line(result, "no userhub tables", "flask --app userhub db upgrade")


def test_serve_on_an_older_schema_says_to_upgrade(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
    app = make_app(url)
    with app.app_context():
        upgrade()
        downgrade(revision="-1")
    dispose(app)
    assert_one_clear_line(serve(url, tmp_path), "older schema", "flask --app userhub db upgrade")


def test_a_sqlite_folder_that_cannot_be_made_is_named(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    url = f"sqlite:///{blocker / 'userhub.sqlite3'}"
    assert_one_clear_line(db_upgrade(url, tmp_path), "cannot create the folder", str(blocker))


# --- at run time: the log names the cause, never the password ----------------------------------


@needs_mysql
def test_a_database_lost_at_run_time_is_logged_with_its_cause(
    build_app: AppBuilder, caplog: pytest.LogCaptureFixture
) -> None:
    url = mysql("root", SECRET, make_url(MYSQL_URL).database or "")
    app = build_app(url)
    with caplog.at_level(logging.ERROR, logger="userhub"):
        response = app.test_client().post("/api/v1/tokens", json={"username": "a", "password": "b"})
    assert response.status_code == 503
    logged = [r.getMessage() for r in caplog.records if "database unavailable" in r.getMessage()]
    assert logged and "1045 Access denied for user 'root'" in logged[0]
    assert SECRET not in caplog.text and SECRET not in response.get_data(as_text=True)


# --- one server per port -----------------------------------------------------------------------


@pytest.mark.parametrize("second", ["granian", "gunicorn"])
def test_a_second_server_on_a_port_in_use_fails_at_once(tmp_path: Path, second: str) -> None:
    url = f"sqlite:///{tmp_path / 'first.sqlite3'}"
    with running_server("production", url, tmp_path) as first:
        port = first.base.rsplit(":", 1)[1]
        started = time.monotonic()
        result = command(
            ["userhub", "serve", "--port", port, "--server", second],
            url,
            tmp_path,
            {"USERHUB_ENV": "production", "USERHUB_SECRET_KEY": "k" * 64},
        )
        assert time.monotonic() - started < 15
        assert_one_clear_line(result, f"port {port}", "already in use", "Ctrl+C")
        # The first server still answers every request alone.
        for _ in range(6):
            assert requests.get(first.base + "/test_get?user_name=a", timeout=5).text == "Hello,a"
    # Once it has stopped, the port is free again at once.
    env = server_environment(url, tmp_path / "instance", "development")
    upgrade_schema(env, tmp_path)
    process = subprocess.Popen(
        [str(BIN / "userhub"), "serve", "--port", port, "--workers", "1"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                answer = requests.get(f"http://127.0.0.1:{port}/test_get?user_name=b", timeout=2)
                assert answer.text == "Hello,b"
                break
            except requests.ConnectionError:
                assert process.poll() is None, "the restarted server exited"
                time.sleep(0.2)
        else:
            pytest.fail("the restarted server did not answer")
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


def test_an_address_not_of_this_machine_is_named(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.sqlite3'}"
    result = serve(url, tmp_path, "--host", "192.0.2.1", "--port", str(free_port()))
    assert_one_clear_line(result, "cannot listen on 192.0.2.1")


@needs_mysql
def test_a_good_mysql_url_still_upgrades_and_serves(tmp_path: Path) -> None:
    """The checks refuse only what is wrong: the tests' own MariaDB database works as before."""
    url = mysql_url("_settings")
    recreate_mysql_database(url)
    result = db_upgrade(url, tmp_path)
    assert result.returncode == 0, result.stderr
    with running_server("production", url, tmp_path) as server:
        assert requests.get(server.base + "/api/v1/health", timeout=5).status_code == 200
