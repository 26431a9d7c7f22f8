"""The instance folder: where the embedded SQLite files and the development secret live."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

SECRET_KEY_FILE = "secret_key"  # noqa: S105 (a file name, not a secret)


def default_instance_path() -> str | None:
    """``instance/`` at the top of a source checkout (where ``make run`` runs), so data and the
    development secret live beside the code; elsewhere Flask's default (None)."""
    checkout = Path(__file__).resolve().parents[3]
    if (checkout / "pyproject.toml").is_file() and (checkout / "src" / "userhub").is_dir():
        return str(checkout / "instance")
    return None


def default_database_url(instance_path: str) -> str:
    """The embedded default: one SQLite file in the instance folder."""
    return _sqlite_url(instance_path, "userhub.sqlite3")


def default_limit_storage_url(instance_path: str) -> str:
    """Where rate limits are counted by default: a SQLite file of their own, beside the
    database, which every worker of this host shares (``limit_storage.py``)."""
    return _sqlite_url(instance_path, "ratelimits.sqlite3")


def _sqlite_url(instance_path: str, name: str) -> str:
    return "sqlite:///" + str(Path(instance_path) / name)


def shared_development_secret(instance_path: str) -> str:
    """Read the development secret, creating it once if missing.

    Created atomically (written to a private temporary file, then hard-linked into place, which
    fails if another process won the race), so every worker of a server reads the same secret.
    """
    folder = Path(instance_path)
    target = folder / SECRET_KEY_FILE
    if not target.exists():
        folder.mkdir(parents=True, exist_ok=True)
        candidate = folder / f".{SECRET_KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(secrets.token_hex(32))
        try:
            os.link(candidate, target)
        except FileExistsError:
            pass
        finally:
            candidate.unlink()
    return target.read_text(encoding="ascii").strip()
