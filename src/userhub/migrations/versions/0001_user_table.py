"""The user table: created new, or adopted in place from the tutorial's own table.

The tutorial (§5) creates ``user`` with ``id``, ``username VARCHAR(20)`` and a plaintext
``password VARCHAR(20)``. Found such a table, this revision keeps every row and makes it a
userhub table: it adds the new columns, hashes each plaintext password with argon2id, drops the
plaintext column, and gives every username a case-insensitive key. Usernames that collide
case-insensitively (the tutorial inserts duplicates happily) are renamed ``<name>_<id>`` and
reported, so the UNIQUE index can exist; no row is ever dropped. Each step can be repeated, so
an upgrade interrupted half-way (MySQL commits every ALTER) finishes when run again.

Revision ID: 0001
Revises:
Create Date: 2026-12-01
"""

import logging
import secrets
import unicodedata
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

log = logging.getLogger("alembic.userhub")

USERNAME_LENGTH = 20
KEY_LENGTH = 255
TUTORIAL_COLUMNS = {"id", "username", "password"}
NEW_COLUMNS = (
    "username_key",
    "password_hash",
    "is_admin",
    "session_version",
    "created_at",
    "updated_at",
)

user_rows = sa.table(
    "user",
    sa.column("id", sa.Integer),
    sa.column("username", sa.String),
    sa.column("username_key", sa.String),
    sa.column("password", sa.String),
    sa.column("password_hash", sa.String),
    sa.column("created_at", sa.DateTime),
    sa.column("updated_at", sa.DateTime),
)


def key_type() -> sa.types.TypeEngine:
    """A byte-wise comparison for the key: binary collation on MySQL, SQLite's default."""
    if op.get_bind().dialect.name in {"mysql", "mariadb"}:
        return mysql.VARCHAR(KEY_LENGTH, charset="utf8mb4", collation="utf8mb4_bin")
    return sa.String(KEY_LENGTH)


def new_columns(nullable: bool) -> dict[str, sa.Column]:
    return {
        "username_key": sa.Column("username_key", key_type(), nullable=nullable),
        "password_hash": sa.Column("password_hash", sa.String(255), nullable=nullable),
        "is_admin": sa.Column(
            "is_admin", sa.Boolean(), nullable=False, server_default=sa.text("0")
        ),
        "session_version": sa.Column(
            "session_version", sa.Integer(), nullable=False, server_default=sa.text("1")
        ),
        "created_at": sa.Column("created_at", sa.DateTime(), nullable=nullable),
        "updated_at": sa.Column("updated_at", sa.DateTime(), nullable=nullable),
    }


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    if not inspector.has_table("user"):
        create_user_table()
        return
    columns = {column["name"] for column in inspector.get_columns("user")}
    known = TUTORIAL_COLUMNS | set(NEW_COLUMNS)
    if not {"id", "username"} <= columns or not columns <= known:
        raise RuntimeError(
            "A table named `user` exists but is not the tutorial's table (its columns are "
            f"{sorted(columns)}). Point USERHUB_DATABASE_URL at another database, or rename "
            "that table, then run `flask --app userhub db upgrade` again."
        )
    adopt_tutorial_table(columns)


def create_user_table() -> None:
    columns = new_columns(nullable=False)
    op.create_table(
        "user",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("username", sa.String(USERNAME_LENGTH), nullable=False),
        *(columns[name] for name in NEW_COLUMNS),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user")),
        sa.UniqueConstraint("username_key", name=op.f("uq_user_username_key")),
        mysql_engine="InnoDB",
        mysql_charset="utf8mb4",
        sqlite_autoincrement=True,
    )


def adopt_tutorial_table(columns: set[str]) -> None:
    log.info("Found the tutorial's `user` table: upgrading it in place, keeping every row.")
    missing = [column for name, column in new_columns(nullable=True).items() if name not in columns]
    if missing:
        with op.batch_alter_table("user") as batch:
            for column in missing:
                batch.add_column(column)
    if "password" in columns:
        fill_new_columns()
    # SQLite rebuilds the table here; AUTOINCREMENT keeps ids of deleted users from coming back
    # (a session cookie names an id, and must never fit a later account).
    with op.batch_alter_table("user", table_kwargs={"sqlite_autoincrement": True}) as batch:
        for name, column in new_columns(nullable=False).items():
            # MySQL's MODIFY COLUMN restates the whole column: a default not restated is lost.
            default = column.server_default.arg if column.server_default is not None else None
            batch.alter_column(
                name, existing_type=column.type, existing_server_default=default, nullable=False
            )
        if "password" in columns:
            batch.drop_column("password")
    inspector = sa.inspect(op.get_bind())
    unique = {c["name"] for c in inspector.get_unique_constraints("user")}
    if op.f("uq_user_username_key") not in unique:
        with op.batch_alter_table("user") as batch:
            batch.create_unique_constraint(op.f("uq_user_username_key"), ["username_key"])


def fill_new_columns() -> None:
    """Hash the plaintext passwords, compute the keys, rename case-insensitive duplicates."""
    from userhub.services.passwords import passwords  # the app's hasher, with its configured cost

    bind = op.get_bind()
    hasher = passwords()
    now = datetime.now(UTC).replace(tzinfo=None)
    rows = bind.execute(
        sa.select(
            user_rows.c.id, user_rows.c.username, user_rows.c.password, user_rows.c.password_hash
        ).order_by(user_rows.c.id)
    ).all()
    taken: dict[str, int] = {}
    hashed = 0
    for row in rows:
        username, key = unique_username(row.username or "", row.id, taken)
        taken[key] = row.id
        values = {"username": username, "username_key": key, "created_at": now, "updated_at": now}
        if row.password_hash is None:
            plaintext = row.password if row.password is not None else secrets.token_hex(16)
            values["password_hash"] = hasher.hash(plaintext)
            hashed += 1
        values["password"] = ""  # the plaintext is gone from the row before the column is
        bind.execute(user_rows.update().where(user_rows.c.id == row.id).values(**values))
    log.info("Upgraded %d users; hashed %d plaintext passwords.", len(rows), hashed)


def unique_username(username: str, row_id: int, taken: dict[str, int]) -> tuple[str, str]:
    """The row's username, or ``<name>_<id>`` if an earlier row has the same name (ignoring
    case and Unicode width), with its key."""
    key = username_key(username)
    if key not in taken:
        return username, key
    suffix = f"_{row_id}"
    candidate = username[: USERNAME_LENGTH - len(suffix)] + suffix
    while username_key(candidate) in taken:
        suffix += "_"
        candidate = username[: USERNAME_LENGTH - len(suffix)] + suffix
    log.warning(
        "Username %r (id %d) collides case-insensitively with user id %d: renamed to %r. "
        "Tell its owner, or rename it again with SQL.",
        username,
        row_id,
        taken[key],
        candidate,
    )
    return candidate, username_key(candidate)


def username_key(username: str) -> str:
    # Frozen copy of services.account_rules.username_key: a revision must not change with the app.
    return unicodedata.normalize("NFKC", username).casefold()


def downgrade() -> None:
    raise RuntimeError("This revision cannot be undone: plaintext passwords are not kept.")
