"""``flask --app userhub check``: names every unsafe setting and exits non-zero, run as a
deploy script would run it (a real ``flask`` process, configured by the environment)."""

from __future__ import annotations

import os
import secrets
import subprocess
from pathlib import Path

import pytest

from tests.live_server import BIN

MYSQL = "mysql+pymysql://app:pw@db.internal:3306/userhub?charset=utf8mb4"
SAFE = {
    "USERHUB_ENV": "production",
    "USERHUB_SECRET_KEY": secrets.token_hex(32),
    "USERHUB_ALLOWED_HOSTS": "userhub.example.com",
    "USERHUB_DATABASE_URL": MYSQL,
    "USERHUB_RATELIMIT_STORAGE_URI": "redis://127.0.0.1:6379/0",
    "USERHUB_WORKERS": "4",
    "USERHUB_MAIL_URL": "smtp://userhub:pw@smtp.example.com:587?starttls=require",
    "USERHUB_PUBLIC_URL": "https://userhub.example.com",
}


def run_check(tmp_path: Path, **settings: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("USERHUB_", "FLASK_"))}
    env.update({**SAFE, "USERHUB_INSTANCE_PATH": str(tmp_path / "instance"), **settings})
    env = {k: v for k, v in env.items() if v != ""}  # "" means: leave this one unset
    return subprocess.run(
        [str(BIN / "flask"), "--app", "userhub", "check"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_safe_production_configuration_passes(tmp_path: Path) -> None:
    result = run_check(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK: nothing unsafe" in result.stdout
    assert "WARNING" not in result.stdout


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"FLASK_DEBUG": "1"}, "Debug mode is on"),
        (
            {"USERHUB_ENV": "development", "USERHUB_COOKIE_SECURE": "true"},
            "USERHUB_ENV is not production",
        ),
        ({"USERHUB_SECRET_KEY": "change-me-change-me-change-me-change-me"}, "looks made up"),
        ({"USERHUB_SECRET_KEY": "a" * 40}, "looks made up"),
        ({"USERHUB_DATABASE_URL": ""}, "embedded SQLite"),
        ({"USERHUB_COOKIE_SECURE": "false"}, "Cookies are not Secure"),
        ({"USERHUB_RATELIMIT_STORAGE_URI": "memory://"}, "processes: each counts on its own"),
        # The default file is shared by this host's workers; the database, by other hosts too.
        ({"USERHUB_RATELIMIT_STORAGE_URI": ""}, "if several hosts serve, each counts on its own"),
        ({"USERHUB_RATELIMIT_ENABLED": "false"}, "Rate limits are off"),
        ({"USERHUB_RATELIMIT_ACCOUNT": "10 per minute"}, "allows 600 failed log-ins an hour"),
        ({"USERHUB_ALLOWED_HOSTS": "userhub.example.com,.com"}, "every name under .com"),
        # Connections: fewer than the threads that use them, more than the server accepts.
        ({"USERHUB_DB_POOL_SIZE": "2", "USERHUB_THREADS": "8"}, "requests would wait"),
        ({"USERHUB_THREADS": "64", "USERHUB_WORKERS": "4"}, "up to 260 database connections"),
    ],
)
def test_each_unsafe_setting_is_named_and_fails_the_check(
    tmp_path: Path, settings: dict[str, str], expected: str
) -> None:
    result = run_check(tmp_path, **settings)
    assert result.returncode == 1
    unsafe = [line for line in result.stdout.splitlines() if line.startswith("UNSAFE: ")]
    assert len(unsafe) == 1 and expected in unsafe[0], result.stdout


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"USERHUB_MAIL_URL": ""}, "USERHUB_MAIL_URL is not set: account mail"),
        (
            {"USERHUB_MAIL_URL": "", "USERHUB_REQUIRE_VERIFIED_EMAIL": "true"},
            "nobody with an unverified address can log in meanwhile",
        ),
        (
            {"USERHUB_MAIL_URL": "file:///var/mail/userhub"},
            "Account mail is written into /var/mail/userhub as .eml files",
        ),
        # Derived from the first allowed host: https://userhub.example.com, right or not.
        (
            {"USERHUB_PUBLIC_URL": ""},
            "USERHUB_PUBLIC_URL is not set: links in mail start with https://userhub.example.com",
        ),
    ],
)
def test_mail_that_reaches_nobody_is_a_warning_that_passes_the_check(
    tmp_path: Path, settings: dict[str, str], expected: str
) -> None:
    """Everything else works without mail, so a deploy script is not stopped; the deployer
    is told all the same."""
    result = run_check(tmp_path, **settings)
    assert result.returncode == 0, result.stdout
    warnings = [line for line in result.stdout.splitlines() if line.startswith("WARNING: ")]
    assert len(warnings) == 1 and expected in warnings[0], result.stdout
    assert "OK: nothing unsafe" in result.stdout


def test_a_mail_warning_does_not_hide_an_unsafe_setting(tmp_path: Path) -> None:
    result = run_check(tmp_path, USERHUB_MAIL_URL="", USERHUB_COOKIE_SECURE="false")
    assert result.returncode == 1
    assert "UNSAFE: Cookies are not Secure" in result.stdout
    assert "WARNING: USERHUB_MAIL_URL is not set" in result.stdout
    assert "OK:" not in result.stdout


def test_in_memory_limits_are_fine_for_a_single_worker(tmp_path: Path) -> None:
    result = run_check(tmp_path, USERHUB_RATELIMIT_STORAGE_URI="memory://", USERHUB_WORKERS="1")
    assert result.returncode == 0, result.stdout


def test_a_limits_file_named_on_purpose_says_one_host(tmp_path: Path) -> None:
    """With MySQL, the deployer of a single host names the file, and the check is satisfied."""
    limits_file = tmp_path / "limits" / "ratelimits.sqlite3"
    result = run_check(tmp_path, USERHUB_RATELIMIT_STORAGE_URI=f"sqlite:///{limits_file}")
    assert result.returncode == 0, result.stdout
    assert limits_file.is_file()  # the check tried it


def test_a_limits_file_that_cannot_be_written_fails_the_check(tmp_path: Path) -> None:
    """Limits would lapse on every request (failing open): the check says so before."""
    (tmp_path / "not-a-folder").write_text("")
    result = run_check(
        tmp_path,
        USERHUB_RATELIMIT_STORAGE_URI=f"sqlite:///{tmp_path}/not-a-folder/ratelimits.sqlite3",
    )
    assert result.returncode == 1
    assert "UNSAFE: Rate limits cannot be counted" in result.stdout


def test_the_development_defaults_list_everything_at_once(tmp_path: Path) -> None:
    result = run_check(
        tmp_path,
        USERHUB_ENV="",
        USERHUB_SECRET_KEY="",
        USERHUB_DATABASE_URL="",
        USERHUB_RATELIMIT_STORAGE_URI="",
        USERHUB_MAIL_URL="",
        USERHUB_PUBLIC_URL="",
        USERHUB_WORKERS="2",
    )
    assert result.returncode == 1
    assert result.stdout.count("UNSAFE: ") == 3, result.stdout  # mode, SQLite, cookies
    # The default limits file is shared by the 2 workers, and SQLite means one host.
    assert "Rate limits" not in result.stdout
    # Development mail goes to instance/mail/ on purpose, its links to 127.0.0.1.
    assert "WARNING" not in result.stdout


@pytest.mark.parametrize("missing", ["USERHUB_SECRET_KEY", "USERHUB_ALLOWED_HOSTS"])
def test_a_setting_the_app_refuses_is_a_clear_error_not_a_traceback(
    tmp_path: Path, missing: str
) -> None:
    result = run_check(tmp_path, **{missing: ""})
    assert result.returncode == 1
    assert f"Error: {missing} is required" in result.stderr
    assert "Traceback" not in result.stderr
