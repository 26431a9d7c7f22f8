"""``flask --app userhub check``: what is unsafe about the configuration this app runs with.

Starting the app already refuses what can never be right (production without a secret key,
argon2 below OWASP's floor). This check is stricter: it names what works but should not be
deployed as it is, so a deploy script can run it and stop on a non-zero exit. Mail that
reaches nobody is a warning, not a failure: everything else works, and a deployment may not
mail at all yet.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from limits import parse

from .. import limit_storage
from ..config import (
    LIMIT_STORAGE_BY_DEFAULT,
    MIN_SECRET_KEY_LENGTH,
    PUBLIC_URL_BY_DEFAULT,
    available_cores,
)
from ..database import MAIL_SENDER_CONNECTIONS, connections_per_worker
from ..services.mail_transport import FileTransport, transport_for

ACCOUNT_FAILURES_PER_HOUR_MAX = 100  # OWASP ASVS 2.2.1
MYSQL_DEFAULT_MAX_CONNECTIONS = 151
SECRET_MIN_DISTINCT_CHARACTERS = 12
# Words of six letters or more: a random key (hex or base64) practically never contains one.
PLACEHOLDER_SECRETS = ("change", "secret", "example", "default", "password", "placeholder")


def unsafe_settings(config: Mapping[str, Any], *, debug: bool) -> list[str]:
    """Each unsafe setting, in words that say what to change (empty: nothing found)."""
    problems = []
    if debug:
        problems.append(
            "Debug mode is on: the debugger runs code for anyone who can reach it. "
            "Unset FLASK_DEBUG and serve with `userhub serve`."
        )
    if config["USERHUB_ENV"] != "production":
        problems.append(
            "USERHUB_ENV is not production: cookies are not Secure by default and the secret "
            "key comes from a file in the instance folder. Set USERHUB_ENV=production."
        )
    problems += _secret_key_problems(str(config["SECRET_KEY"]))
    problems += _allowed_host_problems(config["TRUSTED_HOSTS"])
    if str(config["SQLALCHEMY_DATABASE_URI"]).startswith("sqlite"):
        problems.append(
            "The database is the embedded SQLite file: one machine, no replication, no "
            "backups. Set USERHUB_DATABASE_URL to a MySQL/MariaDB server."
        )
    else:
        problems += _pool_problems(config)
    if not config["SESSION_COOKIE_SECURE"]:
        problems.append(
            "Cookies are not Secure: the session cookie would travel over plain http. Serve "
            "over HTTPS and unset USERHUB_COOKIE_SECURE (or set it to true)."
        )
    problems += _rate_limit_problems(config)
    return problems


def _secret_key_problems(secret: str) -> list[str]:
    if len(secret) < MIN_SECRET_KEY_LENGTH:
        return [f"USERHUB_SECRET_KEY is shorter than {MIN_SECRET_KEY_LENGTH} characters."]
    if len(set(secret)) < SECRET_MIN_DISTINCT_CHARACTERS or any(
        word in secret.lower() for word in PLACEHOLDER_SECRETS
    ):
        return [
            "USERHUB_SECRET_KEY looks made up by hand (a placeholder word or few distinct "
            'characters). Generate one: python -c "import secrets; print(secrets.token_hex(32))"'
        ]
    return []


def _pool_problems(config: Mapping[str, Any]) -> list[str]:
    """Settings under which requests would wait for database connections, or the server
    would refuse some (each worker keeps its own pool)."""
    threads, pool_size = config["USERHUB_THREADS"], config["USERHUB_DB_POOL_SIZE"]
    if 0 < pool_size < threads:
        return [
            f"USERHUB_DB_POOL_SIZE={pool_size} is below USERHUB_THREADS={threads}: requests "
            "would wait for a database connection while threads stand idle. Unset it (one "
            "connection per thread)."
        ]
    workers = config["USERHUB_WORKERS"] or available_cores()
    per_worker = connections_per_worker(config)
    connections = workers * per_worker
    if connections > MYSQL_DEFAULT_MAX_CONNECTIONS - 1:
        return [
            f"userhub serve would open up to {connections} database connections "
            f"({workers} workers x {per_worker}{_sender_share(pool_size)}), more than MySQL's "
            "and MariaDB's "
            f"default max_connections ({MYSQL_DEFAULT_MAX_CONNECTIONS}, one kept for an "
            "administrator): the rest would be refused. Raise max_connections on the server "
            "(with every host counted), or lower USERHUB_THREADS or USERHUB_WORKERS."
        ]
    return []


def _sender_share(pool_size: int) -> str:
    """How a worker's connections are shared, when the mail sender has one of its own."""
    return "" if pool_size else f", {MAIL_SENDER_CONNECTIONS} of them the mail sender's"


def _allowed_host_problems(hosts: list[str] | tuple[str, ...]) -> list[str]:
    """A leading dot on a single label (``.com``) allows every site under that top-level
    domain: anyone can point a name of their own at this server and have it believed."""
    whole_domains = [host for host in hosts if host.startswith(".") and "." not in host[1:]]
    if not whole_domains:
        return []
    return [
        f"USERHUB_ALLOWED_HOSTS allows every name under {', '.join(whole_domains)}: a host "
        "anyone can register would be believed. List this site's own names "
        "(userhub.example.com, or .example.com for it and its subdomains)."
    ]


def _rate_limit_problems(config: Mapping[str, Any]) -> list[str]:
    if not config["RATELIMIT_ENABLED"]:
        return [
            "Rate limits are off (USERHUB_RATELIMIT_ENABLED=false): passwords can be guessed "
            "as fast as the server answers."
        ]
    problems = _limit_storage_problems(config)
    account = parse(config["USERHUB_RATELIMIT_ACCOUNT"])
    per_hour = account.amount * 3600 / account.get_expiry()
    if per_hour > ACCOUNT_FAILURES_PER_HOUR_MAX:
        problems.append(
            f"USERHUB_RATELIMIT_ACCOUNT={account} allows {per_hour:.0f} failed log-ins an hour "
            f"per account; OWASP ASVS 2.2.1 asks for at most {ACCOUNT_FAILURES_PER_HOUR_MAX}."
        )
    return problems


def _limit_storage_problems(config: Mapping[str, Any]) -> list[str]:
    """Whether every process that serves counts in the same place."""
    storage = str(config["RATELIMIT_STORAGE_URI"])
    workers = config["USERHUB_WORKERS"] or available_cores()
    if storage.startswith("memory://") and workers > 1:
        return [
            f"Rate limits are counted in memory, but `userhub serve` runs {workers} worker "
            "processes: each counts on its own, so every limit is multiplied. Unset "
            "USERHUB_RATELIMIT_STORAGE_URI (the default, a SQLite file in the instance folder, "
            "is shared by the workers of one host), or set it to redis://<host>:6379/0."
        ]
    if not storage.startswith(limit_storage.URI_PREFIX):
        return []
    path = limit_storage.file_of(storage)
    if not limit_storage.SQLiteStorage(storage).check():
        return [
            f"Rate limits cannot be counted: {path} cannot be created or written, so no limit "
            "would hold. Make its folder writable by the server's user, or set "
            "USERHUB_RATELIMIT_STORAGE_URI to another file or to Redis."
        ]
    shared_database = not str(config["SQLALCHEMY_DATABASE_URI"]).startswith("sqlite")
    if shared_database and config.get(LIMIT_STORAGE_BY_DEFAULT):
        return [
            f"Rate limits are counted in a file on this host ({path}), but the database is a "
            "server other hosts may share: if several hosts serve, each counts on its own and "
            "every limit is multiplied. Several hosts: set "
            "USERHUB_RATELIMIT_STORAGE_URI=redis://<host>:6379/0. This host alone: set it to "
            f"the file (sqlite:///{path}) to say so."
        ]
    return []


def mail_warnings(config: Mapping[str, Any]) -> list[str]:
    """In production: account mail that would reach nobody, or carry links to a guessed
    address. (In development mail goes to ``instance/mail/`` on purpose.)"""
    if config["USERHUB_ENV"] != "production":
        return []
    warnings = []
    url = config.get("USERHUB_MAIL_URL")
    if not url:
        blocked = (
            " With USERHUB_REQUIRE_VERIFIED_EMAIL on, nobody with an unverified address can "
            "log in meanwhile."
            if config["USERHUB_REQUIRE_VERIFIED_EMAIL"]
            else ""
        )
        warnings.append(
            "USERHUB_MAIL_URL is not set: account mail (verification and password-reset links, "
            "notices) is queued in the database, not sent (flask --app userhub mail status "
            "counts it)." + blocked + " Set it to your SMTP relay, e.g. "
            "smtp://USER:PASSWORD@smtp.example.com:587?starttls=require."
        )
    elif isinstance(transport := transport_for(url), FileTransport):
        warnings.append(
            f"Account mail is written into {transport.folder} as .eml files "
            "(USERHUB_MAIL_URL=file://...), not sent: nobody receives it unless something "
            "delivers those files. Set USERHUB_MAIL_URL to your SMTP relay."
        )
    if config.get(PUBLIC_URL_BY_DEFAULT):
        warnings.append(
            f"USERHUB_PUBLIC_URL is not set: links in mail start with "
            f"{config['USERHUB_PUBLIC_URL']}, guessed from the first of USERHUB_ALLOWED_HOSTS. "
            "Set it to the address people open this site at, e.g. "
            "USERHUB_PUBLIC_URL=https://userhub.example.com."
        )
    return warnings
