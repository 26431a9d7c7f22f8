"""Database tables, as typed SQLAlchemy models."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    inspect,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import Mapped, defer, joinedload, mapped_column, relationship
from sqlalchemy.orm.strategy_options import _AbstractLoad

from .extensions import db

USERNAME_MAX_LENGTH = 20  # the tutorial's VARCHAR(20)
USERNAME_KEY_MAX_LENGTH = 255  # NFKC and case folding can lengthen a name
DISPLAY_NAME_MAX_LENGTH = 50
EMAIL_MAX_LENGTH = 254  # RFC 5321's limit on a forward path
TOKEN_HASH_LENGTH = 64  # hex SHA-256
DIGEST_LENGTH = 64  # hex SHA-256 or HMAC-SHA-256
API_KEY_NAME_MAX_LENGTH = 100
IP_MAX_LENGTH = 45  # the longest IPv6 text form
USER_AGENT_MAX_LENGTH = 100  # a summary ("Chrome 156 on Linux"), not the header
DETAILS_MAX_LENGTH = 500
PASSKEY_HANDLE_LENGTH = 88  # base64url of 64 bytes, WebAuthn's longest user handle
PASSKEY_NAME_MAX_LENGTH = 100
CREDENTIAL_ID_MAX_LENGTH = 1023  # WebAuthn's longest credential id, in bytes


# Case-insensitive uniqueness is decided in Python (NFKC + casefold), so the database must
# compare the key byte for byte: a binary collation on MySQL (SQLite already is binary).
def binary_string(length: int) -> String:
    """A VARCHAR compared byte for byte everywhere (MySQL's default collation ignores case)."""
    return String(length).with_variant(
        mysql.VARCHAR(length, charset="utf8mb4", collation="utf8mb4_bin"), "mysql", "mariadb"
    )


def never_reused_ids() -> dict[str, object]:
    """The table arguments of a table whose ids are named elsewhere after the row is gone (the
    security log, a mailed link): InnoDB, and AUTOINCREMENT on SQLite, which would otherwise give
    a deleted highest id to the next row."""
    return {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4", "sqlite_autoincrement": True}


UsernameKey = binary_string(USERNAME_KEY_MAX_LENGTH)
# A whole mail with both parts: over BLOB's 64 KiB on MySQL would fail, so MEDIUMBLOB (16 MiB).
MailBody = LargeBinary().with_variant(mysql.MEDIUMBLOB(), "mysql", "mariadb")


def utcnow() -> datetime:
    """Naive UTC, stored the same way on SQLite and MySQL."""
    return datetime.now(UTC).replace(tzinfo=None)


def utc_iso(value: datetime) -> str:
    """A stored (naive UTC) time as RFC 3339 with an explicit ``Z``, as clients and exports
    show it."""
    return value.replace(tzinfo=UTC).isoformat().replace("+00:00", "Z")


def utc_minute(value: datetime) -> str:
    """A stored (naive UTC) time as a person reads it in a mail or on a page, to the minute:
    ``2026-12-07 09:14 UTC`` (the reader's time zone is not known)."""
    return value.strftime("%Y-%m-%d %H:%M UTC")


def stored_id(row: Any) -> int | None:
    """A loaded row's id, read from its identity rather than from the row: an expired row
    (after a commit) whose row was deleted meanwhile cannot be read, but keeps its identity."""
    if row is None:
        return None
    identity = inspect(row).identity
    return int(identity[0]) if identity else None


class User(db.Model):  # type: ignore[name-defined,misc]
    """An account. The table keeps the tutorial's name and columns ``id`` and ``username``."""

    __tablename__ = "user"
    # AUTOINCREMENT: SQLite never reuses a deleted user's id (sessions name users by id).
    __table_args__ = never_reused_ids()

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(USERNAME_MAX_LENGTH))
    username_key: Mapped[str] = mapped_column(UsernameKey, unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    display_name: Mapped[str | None] = mapped_column(String(DISPLAY_NAME_MAX_LENGTH))
    # Stored normalised and in lower case, so the UNIQUE index compares addresses as people do.
    email: Mapped[str | None] = mapped_column(binary_string(EMAIL_MAX_LENGTH), unique=True)
    # When the owner followed the link mailed to ``email``; None: not (yet) verified. Changing
    # the address verifies the new one by the same link, so it is never unverified meanwhile.
    email_verified_at: Mapped[datetime | None] = mapped_column(DateTime)
    # An address asked for and not confirmed yet: ``email`` stays in use until its link is followed.
    pending_email: Mapped[str | None] = mapped_column(String(EMAIL_MAX_LENGTH))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    # The read-only role: sees the admin pages and the API's user and event reads, changes
    # nothing (``services/roles.py``).
    is_support: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    # Set by an administrator: no log-in by any route, data kept (``services/account_status.py``).
    deactivated_at: Mapped[datetime | None] = mapped_column(DateTime)
    # The owner asked for the account's deletion: it cannot log in, and is deleted for good at
    # this time unless they cancel (``services/account_deletion.py``).
    deletion_due_at: Mapped[datetime | None] = mapped_column(DateTime, index=True)
    # The WebAuthn user handle every passkey of the account carries (random, base64url; no
    # personal data reaches an authenticator). Made with the first passkey.
    passkey_handle: Mapped[str | None] = mapped_column(String(PASSKEY_HANDLE_LENGTH))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)

    tokens: Mapped[list[ApiToken]] = relationship(
        back_populates="user", cascade="all, delete-orphan", passive_deletes=True
    )

    @property
    def email_verified(self) -> bool:
        return self.email is not None and self.email_verified_at is not None

    @property
    def email_unverified(self) -> bool:
        """An address its owner has not confirmed yet (False without an address)."""
        return self.email is not None and self.email_verified_at is None

    def confirm_address(self) -> None:
        """The owner proved the address is theirs (a mailed link reached it)."""
        if self.email_unverified:
            self.email_verified_at = utcnow()

    def set_address(self, email: str | None, *, verified: bool) -> None:
        """Make ``email`` the account's address (None: no address), confirmed now or not; a
        pending change ends."""
        self.email, self.pending_email = email, None
        self.email_verified_at = utcnow() if verified and email is not None else None

    @property
    def is_active(self) -> bool:
        """Whether the account may log in and use its sessions, tokens and keys: neither
        deactivated by an administrator nor waiting to be deleted (Flask-Login reads it too)."""
        return self.deactivated_at is None and self.deletion_due_at is None

    # Flask-Login protocol: every user we load is an authenticated account.
    is_authenticated = True
    is_anonymous = False

    def bind_session(self, key: str) -> None:
        """This object stands for the browser session whose cookie carries ``key``
        (``services/sessions.py``)."""
        self._session_key = key

    def get_id(self) -> str | None:
        """Flask-Login's identifier: the browser session's key, not the account's id, so a
        session ends server-side when its row is deleted."""
        key: str | None = getattr(self, "_session_key", None)
        return key

    def __repr__(self) -> str:
        return f"<User {self.id} {self.username!r}>"


def with_its_account(relationship_attribute: Any) -> _AbstractLoad:
    """Load a credential's account in the same query (a session's or a token's, on every
    request), without the columns that only a log-in, a password change or a passkey read:
    the password hash and the passkey handle load then, with a query of their own. Every column
    a row brings costs its parsing on each request (PyMySQL reads each column's description)."""
    return joinedload(relationship_attribute).options(
        defer(User.password_hash), defer(User.passkey_handle)
    )


class ApiToken(db.Model):  # type: ignore[name-defined,misc]
    """An API token. Only its SHA-256 is stored: the token itself is shown once, at issue.

    SHA-256 rather than argon2 because a token is 256 random bits (nothing to guess) and must be
    found by lookup on every request; the index on ``token_hash`` makes that one B-tree probe.
    """

    __tablename__ = "api_token"
    # AUTOINCREMENT: SQLite never gives a revoked token's id again (the security log and the
    # new-device mail's revoke link name tokens by id).
    __table_args__ = never_reused_ids()

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(TOKEN_HASH_LENGTH), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    # A personal API key has a name and scopes (``services/api_keys.py``); a log-in token
    # (``POST /api/v1/tokens``) has neither and may do whatever its user may.
    name: Mapped[str | None] = mapped_column(String(API_KEY_NAME_MAX_LENGTH))
    scopes: Mapped[str | None] = mapped_column(String(40))  # space-separated, e.g. "read write"
    prefix: Mapped[str | None] = mapped_column(String(16))  # the key's start, to recognise it
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime)
    # When its holder last proved who they are: a log-in token's issue, or a re-authentication
    # with it (``services/reauthentication.py``); None: never (a key as created).
    authenticated_at: Mapped[datetime | None] = mapped_column(DateTime)

    user: Mapped[User] = relationship(back_populates="tokens")

    @property
    def is_key(self) -> bool:
        return self.name is not None

    @property
    def scope_set(self) -> frozenset[str] | None:
        """A key's scopes; None for a log-in token (everything its user may do)."""
        return None if self.scopes is None else frozenset(self.scopes.split())

    def __repr__(self) -> str:
        return f"<ApiToken {self.id} of user {self.user_id}>"


class BrowserSession(db.Model):  # type: ignore[name-defined,misc]
    """A logged-in browser: the cookie carries a random key, the table its SHA-256, so deleting
    the row logs that browser out wherever its cookie is (``services/sessions.py``)."""

    __tablename__ = "user_session"
    # AUTOINCREMENT: SQLite never gives an ended session's id again (the security log and the
    # new-device mail's end-session link name sessions by id).
    __table_args__ = never_reused_ids()

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"), index=True)
    key_hash: Mapped[str] = mapped_column(String(TOKEN_HASH_LENGTH), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    # The absolute end: no activity keeps a session alive past it.
    expires_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    ip: Mapped[str | None] = mapped_column(String(IP_MAX_LENGTH))
    user_agent: Mapped[str | None] = mapped_column(String(USER_AGENT_MAX_LENGTH))  # a summary
    # "password", "password+totp", "password+recovery-code", "password+passkey", "passkey"
    auth_method: Mapped[str] = mapped_column(String(40))
    # When the browser last proved who is using it: the log-in, or a re-authentication.
    authenticated_at: Mapped[datetime | None] = mapped_column(DateTime)

    user: Mapped[User] = relationship()

    def __repr__(self) -> str:
        return f"<BrowserSession {self.id} of user {self.user_id}>"


class SecurityEvent(db.Model):  # type: ignore[name-defined,misc]
    """One line of an account's security log: append-only, never a secret
    (``services/security_log.py``).

    ``user_id`` is not a foreign key: the log outlives what it tells of (a deleted session,
    key, or account)."""

    __tablename__ = "security_event"
    __table_args__ = (
        Index("ix_security_event_user_time", "user_id", "created_at"),
        {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(Integer)
    type: Mapped[str] = mapped_column(String(40), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    # Who did it when it was not the account's owner (an administrator), else None.
    actor_id: Mapped[int | None] = mapped_column(Integer)
    ip: Mapped[str | None] = mapped_column(String(IP_MAX_LENGTH))
    user_agent: Mapped[str | None] = mapped_column(String(USER_AGENT_MAX_LENGTH))
    session_id: Mapped[int | None] = mapped_column(Integer)
    api_key_id: Mapped[int | None] = mapped_column(Integer)
    details: Mapped[str | None] = mapped_column(String(DETAILS_MAX_LENGTH))  # a JSON object

    def __repr__(self) -> str:
        return f"<SecurityEvent {self.id} {self.type} of user {self.user_id}>"


class TotpFactor(db.Model):  # type: ignore[name-defined,misc]
    """An account's authenticator app (TOTP, RFC 6238): at most one. Its secret is stored
    encrypted (``services/factor_secrets.py``); the factor counts only once ``confirmed_at`` is
    set (the first right code). ``last_step`` is the time step of the last code accepted: no
    code of that step or before is accepted again (a replayed code fails)."""

    __tablename__ = "totp_factor"
    __table_args__ = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"}

    user_id: Mapped[int] = mapped_column(
        ForeignKey("user.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    secret: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    confirmed_at: Mapped[datetime | None] = mapped_column(DateTime)
    last_step: Mapped[int | None] = mapped_column(Integer)

    def __repr__(self) -> str:
        return f"<TotpFactor of user {self.user_id}>"


class RecoveryCode(db.Model):  # type: ignore[name-defined,misc]
    """One of an account's single-use recovery codes: only a keyed digest is stored
    (``services/recovery_codes.py``)."""

    __tablename__ = "recovery_code"
    __table_args__ = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"}

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(String(DIGEST_LENGTH), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    used_at: Mapped[datetime | None] = mapped_column(DateTime)

    def __repr__(self) -> str:
        return f"<RecoveryCode {self.id} of user {self.user_id}>"


class Passkey(db.Model):  # type: ignore[name-defined,misc]
    """A WebAuthn credential (a passkey) registered to an account: its public key, never a
    secret (``services/passkeys.py``). Found by ``credential_key``, the SHA-256 of its id."""

    __tablename__ = "passkey"
    # AUTOINCREMENT: the security log names passkeys by id.
    __table_args__ = never_reused_ids()

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"), index=True)
    credential_key: Mapped[str] = mapped_column(String(DIGEST_LENGTH), unique=True)
    credential_id: Mapped[bytes] = mapped_column(LargeBinary)
    public_key: Mapped[bytes] = mapped_column(LargeBinary)
    sign_count: Mapped[int] = mapped_column(Integer, default=0)
    name: Mapped[str] = mapped_column(String(PASSKEY_NAME_MAX_LENGTH))
    transports: Mapped[str | None] = mapped_column(String(100))  # space-separated hints
    backed_up: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime)

    def __repr__(self) -> str:
        return f"<Passkey {self.id} of user {self.user_id}>"


class AuthChallenge(db.Model):  # type: ignore[name-defined,misc]
    """A short-lived step of an authentication in progress (``services/challenges.py``): the
    second step of a log-in after the password, or a WebAuthn ceremony's challenge. The client
    holds a random key, the table its SHA-256; spent once (deleted), and dead at ``expires_at``."""

    __tablename__ = "auth_challenge"
    __table_args__ = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"}

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key_hash: Mapped[str] = mapped_column(String(TOKEN_HASH_LENGTH), unique=True)
    purpose: Mapped[str] = mapped_column(String(20))
    # None: a passwordless passkey log-in, whose account is not known until the passkey answers.
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("user.id", ondelete="CASCADE"), index=True
    )
    # What the log-in knew when it began: whether this client is a device the account knows.
    known_device: Mapped[bool] = mapped_column(Boolean, default=False)
    # A WebAuthn ceremony's challenge (base64url): public, sent to the browser as well.
    webauthn_challenge: Mapped[str | None] = mapped_column(String(128))
    failures: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime, index=True)

    def __repr__(self) -> str:
        return f"<AuthChallenge {self.id} {self.purpose}>"


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


class EmailLink(db.Model):  # type: ignore[name-defined,misc]
    """A link mailed to an account's owner: verify an address, reset the password, confirm or
    undo a change of address, unlock the account. Only its SHA-256 is stored (like an API
    token's); ``used_at`` makes it single-use. See ``services/email_links.py``."""

    __tablename__ = "email_link"
    __table_args__ = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"}

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"), index=True)
    purpose: Mapped[str] = mapped_column(String(20))
    token_hash: Mapped[str] = mapped_column(String(TOKEN_HASH_LENGTH), unique=True)
    # The address the link was sent to and is about (verify, change) or restores (undo).
    email: Mapped[str | None] = mapped_column(String(EMAIL_MAX_LENGTH))
    # A digest of the password hash when the link was made: a reset link dies when the password
    # changes any other way.
    password_stamp: Mapped[str | None] = mapped_column(String(DIGEST_LENGTH))
    # What an end-session link ends: the session's or the token's id.
    target_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    used_at: Mapped[datetime | None] = mapped_column(DateTime)

    def __repr__(self) -> str:
        return f"<EmailLink {self.id} {self.purpose} of user {self.user_id}>"


class OutboxMessage(db.Model):  # type: ignore[name-defined,misc]
    """A mail the app promised, written in the transaction of the change that caused it and
    delivered by the background sender (``services/outbox.py``). The whole message is stored
    ready to send; once sent, its body is erased (it may hold a live link)."""

    __tablename__ = "mail_outbox"
    __table_args__ = (
        Index("ix_mail_outbox_due", "status", "next_attempt_at"),  # what the senders poll
        {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    recipient: Mapped[str] = mapped_column(String(EMAIL_MAX_LENGTH))
    # The account the mail is about (not a foreign key: a mail in flight outlives nothing, and
    # the account's deletion removes its mail itself); None: from before revision 0007.
    user_id: Mapped[int | None] = mapped_column(Integer, index=True)
    kind: Mapped[str] = mapped_column(String(40))
    message: Mapped[bytes | None] = mapped_column(MailBody)
    status: Mapped[str] = mapped_column(String(10), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # When a sender may next take it: due now, after a backoff, or when a claim's lease ends.
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    last_error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime)

    def __repr__(self) -> str:
        return f"<OutboxMessage {self.id} {self.kind} {self.status}>"
