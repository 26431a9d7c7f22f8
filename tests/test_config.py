"""Configuration: ``USERHUB_*`` variables, modes, the shared development secret."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import pytest

from userhub import create_app
from userhub.config import SETTINGS, ConfigError
from userhub.config.instance import shared_development_secret

CONFIGURATION_DOC = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"


def test_development_creates_one_secret_in_the_instance_folder(
    isolated_environment: Path,
) -> None:
    first = create_app()
    second = create_app()
    secret_file = isolated_environment / "secret_key"
    assert secret_file.is_file()
    assert first.secret_key == second.secret_key == secret_file.read_text().strip()
    assert len(first.secret_key or "") >= 32
    assert secret_file.stat().st_mode & 0o077 == 0, "secret readable by others"


def test_concurrent_first_starts_agree_on_one_secret(tmp_path: Path) -> None:
    results: list[str] = []
    threads = [
        threading.Thread(target=lambda: results.append(shared_development_secret(str(tmp_path))))
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(results)) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["secret_key"]


def test_production_requires_a_secret_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("USERHUB_ENV", "production")
    with pytest.raises(ConfigError, match="USERHUB_SECRET_KEY is required"):
        create_app()


def test_production_refuses_a_short_secret_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("USERHUB_ENV", "production")
    monkeypatch.setenv("USERHUB_SECRET_KEY", "too-short")
    with pytest.raises(ConfigError, match="at least 32"):
        create_app()


def test_production_requires_allowed_hosts(monkeypatch: pytest.MonkeyPatch) -> None:
    """As for the secret key: the message names the variable and shows a value to copy."""
    monkeypatch.setenv("USERHUB_ENV", "production")
    monkeypatch.setenv("USERHUB_SECRET_KEY", "x" * 64)
    with pytest.raises(ConfigError) as refused:
        create_app()
    assert "USERHUB_ALLOWED_HOSTS is required" in str(refused.value)
    assert "USERHUB_ALLOWED_HOSTS=userhub.example.com" in str(refused.value)
    monkeypatch.setenv("USERHUB_ALLOWED_HOSTS", " , ")
    with pytest.raises(ConfigError, match="USERHUB_ALLOWED_HOSTS"):
        create_app()


def test_allowed_hosts_are_development_names_unless_set(monkeypatch: pytest.MonkeyPatch) -> None:
    assert create_app().config["TRUSTED_HOSTS"] == ("localhost", "127.0.0.1", "::1")
    monkeypatch.setenv("USERHUB_ALLOWED_HOSTS", "Userhub.Example.com, .example.org,[::1]")
    hosts = create_app().config["TRUSTED_HOSTS"]
    assert hosts == ("userhub.example.com", ".example.org", "::1")


def test_production_cookies_are_secure_httponly_lax(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("USERHUB_ENV", "production")
    monkeypatch.setenv("USERHUB_SECRET_KEY", "x" * 64)
    monkeypatch.setenv("USERHUB_ALLOWED_HOSTS", "userhub.example.com")
    app = create_app()
    assert app.config["SESSION_COOKIE_SECURE"] is True
    assert app.config["SESSION_COOKIE_HTTPONLY"] is True
    assert app.config["SESSION_COOKIE_SAMESITE"] == "Lax"


def test_development_cookies_work_over_plain_http_unless_asked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert create_app().config["SESSION_COOKIE_SECURE"] is False
    monkeypatch.setenv("USERHUB_COOKIE_SECURE", "true")
    assert create_app().config["SESSION_COOKIE_SECURE"] is True


def test_database_defaults_to_sqlite_in_the_instance_folder(isolated_environment: Path) -> None:
    url = create_app().config["SQLALCHEMY_DATABASE_URI"]
    assert url == f"sqlite:///{isolated_environment / 'userhub.sqlite3'}"


def test_rate_limits_default_to_their_own_file_in_the_instance_folder(
    isolated_environment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file every worker of the host shares, apart from the database; a setting wins."""
    url = create_app().config["RATELIMIT_STORAGE_URI"]
    assert url == f"sqlite:///{isolated_environment / 'ratelimits.sqlite3'}"
    monkeypatch.setenv("USERHUB_RATELIMIT_STORAGE_URI", "memory://")
    assert create_app().config["RATELIMIT_STORAGE_URI"] == "memory://"


def test_dotenv_file_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("USERHUB_MAX_CONTENT_LENGTH=2048\n")
    assert create_app().config["MAX_CONTENT_LENGTH"] == 2048


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("USERHUB_ENV", "staging", "development or production"),
        ("USERHUB_COOKIE_SECURE", "maybe", "true or false"),
        ("USERHUB_MAX_CONTENT_LENGTH", "lots", "USERHUB_MAX_CONTENT_LENGTH"),
        ("USERHUB_MAX_CONTENT_LENGTH", "0", "positive"),
        ("USERHUB_ARGON2_MEMORY_KIB", "4096", "OWASP"),
        ("USERHUB_ARGON2_TIME_COST", "1", "OWASP"),
        ("USERHUB_TRUSTED_PROXIES", "-1", "0 or a positive whole number"),
        ("USERHUB_TRUSTED_PROXIES", "nginx", "USERHUB_TRUSTED_PROXIES"),
        ("USERHUB_RATELIMIT_STORAGE_URI", "sqlite:///", "sqlite:/// and the file's path"),
        ("USERHUB_RATELIMIT_STORAGE_URI", "sqlite://host/x", "sqlite:/// and the file's path"),
        ("USERHUB_RATELIMIT_STORAGE_URI", "mongodb://db:27017", "memory:// or a Redis URL"),
        ("USERHUB_ALLOWED_HOSTS", "userhub.example.com:8443", "no port"),
        ("USERHUB_ALLOWED_HOSTS", "*.example.com", "a leading dot allows the subdomains"),
        ("USERHUB_ALLOWED_HOSTS", "https://userhub.example.com", "not a host name"),
        ("USERHUB_ALLOWED_HOSTS", "fe80::1%eth0", "not a host name"),
    ],
)
def test_bad_settings_stop_start_up_with_a_clear_message(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=message):
        create_app()


def test_every_setting_is_documented_in_docs_configuration() -> None:
    text = CONFIGURATION_DOC.read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `(USERHUB_\w+)`", text, flags=re.M))
    assert {setting.env for setting in SETTINGS} <= documented
