"""Configuration: defaults, ``USERHUB_*`` environment variables, modes.

Every setting a deployer may change is one row of ``SETTINGS``; the table in
docs/configuration.md lists the same rows (a test keeps the two in step). Nothing here runs at
import time: ``load_config`` is called by ``create_app``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
from dotenv import dotenv_values

from .instance import default_database_url, default_limit_storage_url, shared_development_secret
from .values import (
    SERVERS,
    WholeMessage,
    one_of,
    parse_address,
    parse_allowed_hosts,
    parse_bool,
    parse_count,
    parse_database_url,
    parse_http_url,
    parse_limit_storage,
    parse_mail_url,
    parse_metrics_token,
    parse_origins,
    parse_public_url,
    parse_rate_limit,
    parse_rate_limits,
)

# OWASP Password Storage Cheat Sheet: the weakest argon2id parameters it accepts.
ARGON2_MIN_MEMORY_KIB = 19 * 1024
ARGON2_MIN_TIME_COST = 2
ARGON2_MIN_PARALLELISM = 1

MIN_SECRET_KEY_LENGTH = 32
# Set in app.config when RATELIMIT_STORAGE_URI is the default file, not a deployer's choice.
LIMIT_STORAGE_BY_DEFAULT = "USERHUB_RATELIMIT_STORAGE_BY_DEFAULT"
# Set when USERHUB_PUBLIC_URL was worked out here: `flask check` asks the deployer to set it.
PUBLIC_URL_BY_DEFAULT = "USERHUB_PUBLIC_URL_BY_DEFAULT"
DEVELOPMENT_HOSTS = ("localhost", "127.0.0.1", "::1")


class ConfigError(click.ClickException, RuntimeError):
    """A setting is missing or unsafe; the message says which and what to do.

    A ClickException, so every ``flask --app userhub ...`` command (``check`` included) prints
    the message as ``Error: ...`` and exits 1, instead of a traceback."""


def available_cores() -> int:
    """The CPU cores this process may run on (its affinity, where the OS tells): what "one per
    core" means for workers and hashing threads."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


@dataclass(frozen=True)
class Setting:
    """One ``USERHUB_*`` variable: where it goes in ``app.config`` and how it is read."""

    env: str
    key: str
    parse: Callable[[str], Any]
    default: Any
    help: str


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "USERHUB_ENV",
        "USERHUB_ENV",
        one_of("development", "production"),
        "development",
        "`development` or `production` (requires a secret key, Secure cookies).",
    ),
    Setting(
        "USERHUB_SECRET_KEY",
        "SECRET_KEY",
        str,
        None,
        "Signs sessions and CSRF tokens. Required in production (32+ characters); in "
        "development one is generated once into the instance folder.",
    ),
    Setting(
        "USERHUB_ALLOWED_HOSTS",
        "TRUSTED_HOSTS",
        parse_allowed_hosts,
        None,
        "Comma-separated host names this site answers to, e.g. `userhub.example.com`; "
        "`.example.com` allows it and its subdomains; the port is not compared. Any other "
        "`Host` (or trusted `X-Forwarded-Host`) gets 400. Required in production; in "
        "development `localhost,127.0.0.1,::1`.",
    ),
    Setting(
        "USERHUB_DATABASE_URL",
        "SQLALCHEMY_DATABASE_URI",
        parse_database_url,
        None,
        "SQLAlchemy URL. Default: SQLite file `userhub.sqlite3` in the instance folder. "
        "MySQL: `mysql+pymysql://user:pass@127.0.0.1:3306/db?charset=utf8mb4`.",
    ),
    Setting(
        "USERHUB_COOKIE_SECURE",
        "SESSION_COOKIE_SECURE",
        parse_bool,
        None,
        "Send cookies over HTTPS only. Default: `true` in production, `false` in development.",
    ),
    Setting(
        "USERHUB_MAX_CONTENT_LENGTH",
        "MAX_CONTENT_LENGTH",
        int,
        1024 * 1024,
        "Largest accepted request body in bytes; larger bodies get 413.",
    ),
    Setting(
        "USERHUB_DB_POOL_SIZE",
        "USERHUB_DB_POOL_SIZE",
        int,
        0,
        "MySQL connections one worker process keeps; 0 means one per request thread "
        "(`USERHUB_THREADS`) and one for the mail sender. Set, the sender takes its turn with "
        "the requests; under another server with more threads, requests take turns.",
    ),
    Setting(
        "USERHUB_ARGON2_TIME_COST", "ARGON2_TIME_COST", int, 2, "argon2id iterations (minimum 2)."
    ),
    Setting(
        "USERHUB_ARGON2_MEMORY_KIB",
        "ARGON2_MEMORY_KIB",
        int,
        ARGON2_MIN_MEMORY_KIB,
        "argon2id memory per hash in KiB (minimum 19456 = 19 MiB).",
    ),
    Setting(
        "USERHUB_ARGON2_PARALLELISM", "ARGON2_PARALLELISM", int, 1, "argon2id lanes (minimum 1)."
    ),
    Setting(
        "USERHUB_INSTANCE_PATH",
        "USERHUB_INSTANCE_PATH",
        str,
        None,
        "Folder for the SQLite file and the development secret. Default: `instance/` in "
        "the checkout.",
    ),
    Setting(
        "USERHUB_LOG_LEVEL", "USERHUB_LOG_LEVEL", str, "INFO", "Log level of the `userhub` logger."
    ),
    Setting(
        "USERHUB_OTEL_ENDPOINT",
        "USERHUB_OTEL_ENDPOINT",
        parse_http_url,
        None,
        "OTLP/HTTP traces endpoint, e.g. `http://127.0.0.1:4318/v1/traces` (a bare "
        "`http://host:4318` gets `/v1/traces`): set, each request "
        "and its SQL statements are traced with OpenTelemetry (`pip install 'userhub[otel]'`). "
        "The standard `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or `OTEL_EXPORTER_OTLP_ENDPOINT` turn "
        "it on too; `OTEL_SDK_DISABLED=true` keeps it off. Default: off, nothing loaded.",
    ),
    Setting(
        "USERHUB_HOST", "USERHUB_HOST", str, "127.0.0.1", "Address `userhub serve` listens on."
    ),
    Setting("USERHUB_PORT", "USERHUB_PORT", int, 5000, "Port `userhub serve` listens on."),
    Setting(
        "USERHUB_TOKEN_TTL_SECONDS",
        "USERHUB_TOKEN_TTL_SECONDS",
        int,
        24 * 60 * 60,
        "Lifetime of an API token from `POST /api/v1/tokens`, in seconds (default 24 h).",
    ),
    Setting(
        "USERHUB_CORS_ORIGINS",
        "USERHUB_CORS_ORIGINS",
        parse_origins,
        (),
        "Comma-separated front-end origins allowed to call `/api/` from a browser "
        "(e.g. `http://localhost:5173`). Default: none.",
    ),
    Setting(
        "USERHUB_WORKERS",
        "USERHUB_WORKERS",
        int,
        0,
        "Worker processes of `userhub serve`; 0 means one per CPU core.",
    ),
    Setting(
        "USERHUB_THREADS",
        "USERHUB_THREADS",
        int,
        4,
        "Threads per worker of `userhub serve`: requests one worker runs at once (clients still "
        "sending wait without one).",
    ),
    Setting(
        "USERHUB_RECEIVE_TIMEOUT",
        "USERHUB_RECEIVE_TIMEOUT",
        int,
        10,
        "Seconds a client of `userhub serve` has to send a request's headers, and then its "
        "body; a body not in by then gets 408 and the connection is closed. Waiting clients "
        "hold no thread.",
    ),
    Setting(
        "USERHUB_HASHING_THREADS",
        "USERHUB_HASHING_THREADS",
        int,
        0,
        "Password hashes one process computes at once (each takes a core). `userhub serve` "
        "sets cores ÷ workers; 0 means no limit.",
    ),
    Setting(
        "USERHUB_SERVER",
        "USERHUB_SERVER",
        one_of(*SERVERS),
        "granian",
        "Server of `userhub serve`: `granian` (default, all platforms) or `gunicorn` "
        "(Linux/macOS, `pip install gunicorn`).",
    ),
    Setting(
        "USERHUB_RATELIMIT_ENABLED",
        "RATELIMIT_ENABLED",
        parse_bool,
        True,
        "Rate limits on log-in, register and token routes; `false` turns every limit off "
        "(load tests, benchmarks).",
    ),
    Setting(
        "USERHUB_RATELIMIT_STORAGE_URI",
        "RATELIMIT_STORAGE_URI",
        parse_limit_storage,
        None,
        "Where rate limits are counted. Default: SQLite file `ratelimits.sqlite3` in the "
        "instance folder, shared by every worker of this host. Several hosts: Redis, e.g. "
        "`redis://127.0.0.1:6379/0`. `memory://` counts in each process on its own. Another "
        "file: `sqlite:////var/lib/userhub/ratelimits.sqlite3` (four slashes for an absolute "
        "path, as in `USERHUB_DATABASE_URL`).",
    ),
    Setting(
        "USERHUB_RATELIMIT_LOGIN",
        "USERHUB_RATELIMIT_LOGIN",
        parse_rate_limits,
        "30 per minute",
        "Log-in attempts (form and `POST /api/v1/tokens`) per client IP.",
    ),
    Setting(
        "USERHUB_RATELIMIT_REGISTER",
        "USERHUB_RATELIMIT_REGISTER",
        parse_rate_limits,
        "30 per minute",
        "Registrations (`/register`, `/save_data_to_mysql`, `POST /api/v1/users`) per client IP.",
    ),
    Setting(
        "USERHUB_RATELIMIT_ACCOUNT",
        "USERHUB_RATELIMIT_ACCOUNT",
        parse_rate_limit,
        "10 per 6 minutes",
        "Wrong passwords per account (log-ins, and the current password for a new one), in any "
        "window of that length; each device that logged in to the account before has a budget "
        "of its own, all other clients share one (a right password empties the bucket it was "
        "tried in). The default allows at most 100 an hour from clients the account has never "
        "seen (OWASP ASVS 2.2.1).",
    ),
    Setting(
        "USERHUB_TRUSTED_PROXIES",
        "USERHUB_TRUSTED_PROXIES",
        parse_count,
        0,
        "Reverse proxies in front of userhub (nginx: 1) whose `X-Forwarded-For`/`-Proto`/"
        "`-Host`/`-Port` are believed: client IPs (and so rate limits) and URLs come from them. "
        "0 ignores those headers, which any client can forge.",
    ),
    Setting(
        "USERHUB_MAIL_URL",
        "USERHUB_MAIL_URL",
        parse_mail_url,
        None,
        "Where account mail goes: `smtp://user:password@host:587` (STARTTLS when the server "
        "offers it; add `?starttls=require` to refuse sending in clear), `smtps://…:465` (TLS "
        "from the start), or `file:///folder` (one `.eml` file per mail). Default in "
        "development: `instance/mail/`. In production, unset keeps mail queued "
        "(`flask --app userhub check` says so).",
    ),
    Setting(
        "USERHUB_MAIL_FROM",
        "USERHUB_MAIL_FROM",
        parse_address,
        None,
        "The From of account mail, e.g. `userhub <noreply@example.com>`. Default: "
        "`userhub <noreply@HOST>`, HOST from `USERHUB_PUBLIC_URL`.",
    ),
    Setting(
        "USERHUB_PUBLIC_URL",
        "USERHUB_PUBLIC_URL",
        parse_public_url,
        None,
        "The address people reach userhub at, which links in mail start with, e.g. "
        "`https://userhub.example.com`. Default: `http://127.0.0.1:PORT` in development; in "
        "production `https://` and the first of `USERHUB_ALLOWED_HOSTS`.",
    ),
    Setting(
        "USERHUB_MAIL_CLAIM_SECONDS",
        "USERHUB_MAIL_CLAIM_SECONDS",
        int,
        120,
        "How long a sender owns a mail it took from the outbox. If it dies meanwhile (a killed "
        "worker), another sends the mail after this; keep it above a slow SMTP conversation.",
    ),
    Setting(
        "USERHUB_REQUIRE_VERIFIED_EMAIL",
        "USERHUB_REQUIRE_VERIFIED_EMAIL",
        parse_bool,
        False,
        "Refuse log-in (form and API) to an account whose e-mail address is not verified yet, "
        "with a button that mails a new link. Accounts without an address are not affected.",
    ),
    Setting(
        "USERHUB_EMAIL_LINK_TTL_SECONDS",
        "USERHUB_EMAIL_LINK_TTL_SECONDS",
        int,
        48 * 60 * 60,
        "How long a link that verifies an address (or confirms a new one) works (default 48 h).",
    ),
    Setting(
        "USERHUB_PASSWORD_RESET_TTL_SECONDS",
        "USERHUB_PASSWORD_RESET_TTL_SECONDS",
        int,
        60 * 60,
        "How long a password-reset link works (default 1 h). It also dies once used, and when "
        "the password changes any other way.",
    ),
    Setting(
        "USERHUB_RATELIMIT_MAIL",
        "USERHUB_RATELIMIT_MAIL",
        parse_rate_limits,
        "10 per hour",
        "Requests that mail a link (password reset, a new verification link) per client IP.",
    ),
    Setting(
        "USERHUB_RATELIMIT_MAIL_ADDRESS",
        "USERHUB_RATELIMIT_MAIL_ADDRESS",
        parse_rate_limit,
        "5 per hour",
        "Mails of links to one address; past it the request is answered as usual and no mail "
        "goes (nobody can flood an inbox, and the answer tells nothing).",
    ),
    Setting(
        "USERHUB_RATELIMIT_EXPORT",
        "USERHUB_RATELIMIT_EXPORT",
        parse_rate_limits,
        "5 per hour",
        "Downloads of an account's data per account (`GET /api/v1/users/me/export` and the "
        "account page's \"Download my data\" share it), whatever the client's address.",
    ),
    Setting(
        "USERHUB_SESSION_IDLE_SECONDS",
        "USERHUB_SESSION_IDLE_SECONDS",
        int,
        7 * 24 * 60 * 60,
        "A browser session unused this long ends (default 7 days).",
    ),
    Setting(
        "USERHUB_SESSION_MAX_SECONDS",
        "USERHUB_SESSION_MAX_SECONDS",
        int,
        30 * 24 * 60 * 60,
        "A browser session ends this long after its log-in, however active (default 30 days).",
    ),
    Setting(
        "USERHUB_LAST_USED_INTERVAL_SECONDS",
        "USERHUB_LAST_USED_INTERVAL_SECONDS",
        int,
        5 * 60,
        'How often a session\'s "last seen" and an API key\'s "last used" are written '
        "(default 5 min): at most once per interval, so reads stay reads. Idle sessions end "
        "within this much of their idle lifetime.",
    ),
    Setting(
        "USERHUB_SECURITY_LOG_RETENTION_DAYS",
        "USERHUB_SECURITY_LOG_RETENTION_DAYS",
        int,
        365,
        "How long the security log keeps an event (default 1 year); older ones are pruned.",
    ),
    Setting(
        "USERHUB_DELETION_GRACE_DAYS",
        "USERHUB_DELETION_GRACE_DAYS",
        int,
        14,
        "How long an account whose owner asked for its deletion waits, unable to log in, "
        "before it is deleted for good (default 14 days); the owner may cancel meanwhile.",
    ),
    Setting(
        "USERHUB_REAUTHENTICATION_SECONDS",
        "USERHUB_REAUTHENTICATION_SECONDS",
        int,
        5 * 60,
        "How recent a log-in or re-authentication must be for what needs one (a new password "
        "or address, a second factor added or removed, an API key made; default 5 min).",
    ),
    Setting(
        "USERHUB_MFA_CHALLENGE_SECONDS",
        "USERHUB_MFA_CHALLENGE_SECONDS",
        int,
        5 * 60,
        "How long the second step of a log-in (a code, a passkey) may take after the password "
        "(default 5 min); then the log-in starts again.",
    ),
    Setting(
        "USERHUB_REQUIRE_MFA_FOR_ADMINS",
        "USERHUB_REQUIRE_MFA_FOR_ADMINS",
        parse_bool,
        False,
        "When true, an administrator or a support account (both see other people's data) must "
        "have a second factor (an authenticator app or a passkey) before any call of their "
        "role is answered (403 `mfa-enrolment-required` until then).",
    ),
    Setting(
        "USERHUB_METRICS_TOKEN",
        "USERHUB_METRICS_TOKEN",
        parse_metrics_token,
        None,
        "Turns on `/metrics` (Prometheus) for a scraper that sends this token as "
        "`Authorization: Bearer` (32+ characters); any other request gets 401. Unset: "
        "`/metrics` is 404 and requests are not timed.",
    ),
    Setting(
        "USERHUB_SHUTDOWN_TIMEOUT",
        "USERHUB_SHUTDOWN_TIMEOUT",
        int,
        30,
        "Seconds `userhub serve` lets requests in flight finish after SIGTERM.",
    ),
)

DEFAULTS: dict[str, Any] = {
    "SESSION_COOKIE_HTTPONLY": True,
    "SESSION_COOKIE_SAMESITE": "Lax",
    "REMEMBER_COOKIE_HTTPONLY": True,
    "REMEMBER_COOKIE_SAMESITE": "Lax",
    "SQLALCHEMY_TRACK_MODIFICATIONS": False,
    # Flask-WTF: CSRF on every unsafe request; JSON routes that are not cookie-authenticated
    # are exempted one by one where they are defined.
    "WTF_CSRF_TIME_LIMIT": None,
    # APIFlask: we serve our own error format and our own docs page.
    "VALIDATION_ERROR_STATUS_CODE": 422,
}


def read_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The ``USERHUB_*`` variables: a ``.env`` file in the working directory, then the real
    environment on top of it."""
    source: dict[str, str] = {}
    dotenv = Path.cwd() / ".env"
    if dotenv.is_file():
        source.update({k: v for k, v in dotenv_values(dotenv).items() if v is not None})
    source.update(os.environ if environ is None else environ)
    return {k: v for k, v in source.items() if k.startswith("USERHUB_")}


def load_config(environ: Mapping[str, str]) -> dict[str, Any]:
    """Turn ``USERHUB_*`` variables into Flask config keys; a bad value is a ConfigError."""
    config = dict(DEFAULTS)
    for setting in SETTINGS:
        raw = environ.get(setting.env)
        if raw is None or raw == "":
            config[setting.key] = setting.default
            continue
        try:
            config[setting.key] = setting.parse(raw)
        except WholeMessage as exc:
            raise ConfigError(str(exc)) from None
        except ValueError as exc:
            raise ConfigError(f"{setting.env}={raw!r} is invalid: {exc}.") from exc
    return config


def finish_config(config: dict[str, Any], instance_path: str) -> None:
    """Fill in what depends on the mode and the instance folder, then refuse unsafe settings."""
    production = config["USERHUB_ENV"] == "production"
    if config.get("SESSION_COOKIE_SECURE") is None:
        config["SESSION_COOKIE_SECURE"] = production
    config["REMEMBER_COOKIE_SECURE"] = config["SESSION_COOKIE_SECURE"]
    if not config.get("SQLALCHEMY_DATABASE_URI"):
        config["SQLALCHEMY_DATABASE_URI"] = default_database_url(instance_path)
    if not config.get("RATELIMIT_STORAGE_URI"):
        config["RATELIMIT_STORAGE_URI"] = default_limit_storage_url(instance_path)
        config[LIMIT_STORAGE_BY_DEFAULT] = True  # `flask check` asks: one host, or several?
    if not config.get("SECRET_KEY"):
        if production:
            raise ConfigError(
                "USERHUB_SECRET_KEY is required when USERHUB_ENV=production. Generate one with: "
                'python -c "import secrets; print(secrets.token_hex(32))"'
            )
        config["SECRET_KEY"] = shared_development_secret(instance_path)
    if production and len(config["SECRET_KEY"]) < MIN_SECRET_KEY_LENGTH:
        raise ConfigError(
            f"USERHUB_SECRET_KEY must be at least {MIN_SECRET_KEY_LENGTH} characters in production."
        )
    if not config.get("TRUSTED_HOSTS"):
        if production:
            raise ConfigError(
                "USERHUB_ALLOWED_HOSTS is required when USERHUB_ENV=production: the host names "
                "this site is reached by, comma-separated, e.g. "
                "USERHUB_ALLOWED_HOSTS=userhub.example.com (a leading dot, .example.com, allows "
                "the subdomains too). Requests for any other host are refused with 400."
            )
        config["TRUSTED_HOSTS"] = DEVELOPMENT_HOSTS
    _check_argon2_floor(config)
    _finish_mail(config, instance_path, production)
    if config["MAX_CONTENT_LENGTH"] <= 0:
        raise ConfigError("USERHUB_MAX_CONTENT_LENGTH must be a positive number of bytes.")
    if config["USERHUB_RECEIVE_TIMEOUT"] <= 0:
        raise ConfigError("USERHUB_RECEIVE_TIMEOUT must be a positive number of seconds.")
    if config["USERHUB_TOKEN_TTL_SECONDS"] <= 0:
        raise ConfigError("USERHUB_TOKEN_TTL_SECONDS must be a positive number of seconds.")


def _finish_mail(config: dict[str, Any], instance_path: str, production: bool) -> None:
    """Where mail goes and what its links and From say, when the deployer did not say."""
    if not config.get("USERHUB_MAIL_URL") and not production:
        config["USERHUB_MAIL_URL"] = Path(instance_path, "mail").as_uri()
    if not config.get("USERHUB_PUBLIC_URL"):
        if production:
            first = config["TRUSTED_HOSTS"][0].removeprefix(".")
            host = f"[{first}]" if ":" in first else first
            config["USERHUB_PUBLIC_URL"] = f"https://{host}"
        else:
            config["USERHUB_PUBLIC_URL"] = f"http://127.0.0.1:{config['USERHUB_PORT']}"
        config[PUBLIC_URL_BY_DEFAULT] = True
    if not config.get("USERHUB_MAIL_FROM"):
        host = urlsplit(config["USERHUB_PUBLIC_URL"]).hostname or "localhost"
        config["USERHUB_MAIL_FROM"] = f"userhub <noreply@{host}>"
    for key in (
        "USERHUB_EMAIL_LINK_TTL_SECONDS",
        "USERHUB_PASSWORD_RESET_TTL_SECONDS",
        "USERHUB_MAIL_CLAIM_SECONDS",
        "USERHUB_SESSION_IDLE_SECONDS",
        "USERHUB_SESSION_MAX_SECONDS",
        "USERHUB_LAST_USED_INTERVAL_SECONDS",
        "USERHUB_SECURITY_LOG_RETENTION_DAYS",
        "USERHUB_DELETION_GRACE_DAYS",
        "USERHUB_REAUTHENTICATION_SECONDS",
        "USERHUB_MFA_CHALLENGE_SECONDS",
    ):
        if config[key] <= 0:
            unit = "days" if key.endswith("_DAYS") else "seconds"
            raise ConfigError(f"{key} must be a positive number of {unit}.")


def _check_argon2_floor(config: Mapping[str, Any]) -> None:
    floors = (
        ("ARGON2_TIME_COST", ARGON2_MIN_TIME_COST),
        ("ARGON2_MEMORY_KIB", ARGON2_MIN_MEMORY_KIB),
        ("ARGON2_PARALLELISM", ARGON2_MIN_PARALLELISM),
    )
    for key, floor in floors:
        if config[key] < floor:
            env = next(s.env for s in SETTINGS if s.key == key)
            raise ConfigError(
                f"{env}={config[key]} is below OWASP's minimum ({floor}); "
                "passwords would be too cheap to crack."
            )
