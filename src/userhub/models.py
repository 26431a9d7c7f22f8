"""Database tables, as typed SQLAlchemy models."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Boolean, DateTime, Integer, String
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import Mapped, mapped_column

from .extensions import db

USERNAME_MAX_LENGTH = 20  # the tutorial's VARCHAR(20)
USERNAME_KEY_MAX_LENGTH = 255  # NFKC and case folding can lengthen a name

# Case-insensitive uniqueness is decided in Python (NFKC + casefold), so the database must
# compare the key byte for byte: a binary collation on MySQL (SQLite already is binary).
UsernameKey = String(USERNAME_KEY_MAX_LENGTH).with_variant(
    mysql.VARCHAR(USERNAME_KEY_MAX_LENGTH, charset="utf8mb4", collation="utf8mb4_bin"),
    "mysql",
    "mariadb",
)


def utcnow() -> datetime:
    """Naive UTC, stored the same way on SQLite and MySQL."""
    return datetime.now(UTC).replace(tzinfo=None)


class User(db.Model):  # type: ignore[name-defined,misc]
    """An account. The table keeps the tutorial's name and columns ``id`` and ``username``."""

    __tablename__ = "user"
    # AUTOINCREMENT: SQLite never reuses a deleted user's id (sessions name users by id).
    __table_args__ = {
        "mysql_engine": "InnoDB",
        "mysql_charset": "utf8mb4",
        "sqlite_autoincrement": True,
    }

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(USERNAME_MAX_LENGTH))
    username_key: Mapped[str] = mapped_column(UsernameKey, unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    # Bumped to end every session of this user at once (log out everywhere, new password).
    session_version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)

    # Flask-Login protocol: every user we load is an active, authenticated account.
    is_active = True
    is_authenticated = True
    is_anonymous = False

    def get_id(self) -> str:
        """The session identifier: id and session version, so a bump logs every session out."""
        return f"{self.id}:{self.session_version}"

    def __repr__(self) -> str:
        return f"<User {self.id} {self.username!r}>"
