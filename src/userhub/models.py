"""Database tables, as typed SQLAlchemy models."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Boolean, DateTime, ForeignKey, Integer, LargeBinary, String, Text
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .extensions import db

USERNAME_MAX_LENGTH = 20  # the tutorial's VARCHAR(20)
USERNAME_KEY_MAX_LENGTH = 255  # NFKC and case folding can lengthen a name
DISPLAY_NAME_MAX_LENGTH = 50
EMAIL_MAX_LENGTH = 254  # RFC 5321's limit on a forward path
TOKEN_HASH_LENGTH = 64  # hex SHA-256
DIGEST_LENGTH = 64  # hex SHA-256 or HMAC-SHA-256


# Case-insensitive uniqueness is decided in Python (NFKC + casefold), so the database must
# compare the key byte for byte: a binary collation on MySQL (SQLite already is binary).
def binary_string(length: int) -> String:
    """A VARCHAR compared byte for byte everywhere (MySQL's default collation ignores case)."""
    return String(length).with_variant(
        mysql.VARCHAR(length, charset="utf8mb4", collation="utf8mb4_bin"), "mysql", "mariadb"
    )


UsernameKey = binary_string(USERNAME_KEY_MAX_LENGTH)


def utcnow() -> datetime:
    """Naive UTC, stored the same way on SQLite and MySQL."""
    return datetime.now(UTC).replace(tzinfo=None)


def utc_iso(value: datetime) -> str:
    """A stored (naive UTC) time as RFC 3339 with an explicit ``Z``, as clients and exports
    show it."""
    return value.replace(tzinfo=UTC).isoformat().replace("+00:00", "Z")


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
    display_name: Mapped[str | None] = mapped_column(String(DISPLAY_NAME_MAX_LENGTH))
    # Stored normalised and in lower case, so the UNIQUE index compares addresses as people do.
    email: Mapped[str | None] = mapped_column(binary_string(EMAIL_MAX_LENGTH), unique=True)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    # Bumped to end every session of this user at once (log out everywhere, new password).
    session_version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)

    tokens: Mapped[list[ApiToken]] = relationship(
        back_populates="user", cascade="all, delete-orphan", passive_deletes=True
    )

    # Flask-Login protocol: every user we load is an active, authenticated account.
    is_active = True
    is_authenticated = True
    is_anonymous = False

    def get_id(self) -> str:
        """The session identifier: id and session version, so a bump logs every session out."""
        return f"{self.id}:{self.session_version}"

    def __repr__(self) -> str:
        return f"<User {self.id} {self.username!r}>"


class ApiToken(db.Model):  # type: ignore[name-defined,misc]
    """An API token. Only its SHA-256 is stored: the token itself is shown once, at issue.

    SHA-256 rather than argon2 because a token is 256 random bits (nothing to guess) and must be
    found by lookup on every request; the index on ``token_hash`` makes that one B-tree probe.
    """

    __tablename__ = "api_token"
    __table_args__ = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"}

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(TOKEN_HASH_LENGTH), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime, index=True)

    user: Mapped[User] = relationship(back_populates="tokens")

    def __repr__(self) -> str:
        return f"<ApiToken {self.id} of user {self.user_id}>"


class IdempotencyRecord(db.Model):  # type: ignore[name-defined,misc]
    """The first answer to a POST sent with an ``Idempotency-Key``, so a retry gets it again.

    Nothing the client sent is stored in the clear: ``lookup`` is a SHA-256 of the operation and
    the key, ``fingerprint`` an HMAC of the request (which holds a password), and ``body`` the
    response encrypted with a key derived from that request (it may hold a new API token).
    See ``services/idempotency.py``.
    """

    __tablename__ = "idempotency_record"
    __table_args__ = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"}

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    lookup: Mapped[str] = mapped_column(String(DIGEST_LENGTH), unique=True)
    fingerprint: Mapped[str] = mapped_column(String(DIGEST_LENGTH))
    status_code: Mapped[int] = mapped_column(Integer)
    headers: Mapped[str] = mapped_column(Text)  # JSON object
    body: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)

    def __repr__(self) -> str:
        return f"<IdempotencyRecord {self.id} {self.status_code}>"
