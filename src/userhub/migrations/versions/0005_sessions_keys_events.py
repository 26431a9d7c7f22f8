"""Server-side browser sessions, named API keys with scopes, the security log.

The session version on ``user`` goes: a session now ends when its row is deleted. Every cookie
issued before this revision names a version, not a session key, so it no longer logs anyone in
(users log in once more after the upgrade).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# SQLite rebuilds a table to drop a column: ``user`` keeps AUTOINCREMENT, and ``api_token`` (rebuilt
# for it) and ``user_session`` get it, so no id of a deleted row comes back. The security log
# names accounts, sessions and tokens by id and outlives them; the new-device mail's links name
# a session or a token.
AUTOINCREMENT = {"sqlite_autoincrement": True}


def upgrade() -> None:
    with op.batch_alter_table("user", table_kwargs=AUTOINCREMENT) as batch:
        batch.drop_column("session_version")
    rebuild = "always" if op.get_bind().dialect.name == "sqlite" else "auto"
    with op.batch_alter_table("api_token", recreate=rebuild, table_kwargs=AUTOINCREMENT) as batch:
        batch.add_column(sa.Column("name", sa.String(100), nullable=True))
        batch.add_column(sa.Column("scopes", sa.String(40), nullable=True))
        batch.add_column(sa.Column("prefix", sa.String(16), nullable=True))
        batch.add_column(sa.Column("last_used_at", sa.DateTime, nullable=True))
    with op.batch_alter_table("email_link") as batch:
        batch.add_column(sa.Column("target_id", sa.Integer, nullable=True))
    op.create_table(
        "user_session",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("user_id", sa.Integer, nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("last_seen_at", sa.DateTime, nullable=False),
        sa.Column("expires_at", sa.DateTime, nullable=False),
        sa.Column("ip", sa.String(45), nullable=True),
        sa.Column("user_agent", sa.String(100), nullable=True),
        sa.Column("auth_method", sa.String(20), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_user_session"),
        sa.ForeignKeyConstraint(
            ["user_id"], ["user.id"], name="fk_user_session_user_id_user", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("key_hash", name="uq_user_session_key_hash"),
        mysql_engine="InnoDB",
        mysql_charset="utf8mb4",
        sqlite_autoincrement=True,
    )
    op.create_index("ix_user_session_user_id", "user_session", ["user_id"])
    op.create_index("ix_user_session_expires_at", "user_session", ["expires_at"])
    op.create_table(
        "security_event",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("user_id", sa.Integer, nullable=False),
        sa.Column("type", sa.String(40), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("actor_id", sa.Integer, nullable=True),
        sa.Column("ip", sa.String(45), nullable=True),
        sa.Column("user_agent", sa.String(100), nullable=True),
        sa.Column("session_id", sa.Integer, nullable=True),
        sa.Column("api_key_id", sa.Integer, nullable=True),
        sa.Column("details", sa.String(500), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_security_event"),
        mysql_engine="InnoDB",
        mysql_charset="utf8mb4",
    )
    op.create_index("ix_security_event_user_time", "security_event", ["user_id", "created_at"])
    op.create_index("ix_security_event_type", "security_event", ["type"])
    op.create_index("ix_security_event_created_at", "security_event", ["created_at"])


def downgrade() -> None:
    op.drop_table("security_event")
    op.drop_table("user_session")
    with op.batch_alter_table("email_link") as batch:
        batch.drop_column("target_id")
    # A personal key would lose its scopes and become a token that may do anything: it goes.
    op.execute("DELETE FROM api_token WHERE name IS NOT NULL")
    with op.batch_alter_table("api_token") as batch:
        batch.drop_column("last_used_at")
        batch.drop_column("prefix")
        batch.drop_column("scopes")
        batch.drop_column("name")
    with op.batch_alter_table("user", table_kwargs=AUTOINCREMENT) as batch:
        batch.add_column(
            sa.Column("session_version", sa.Integer, nullable=False, server_default=sa.text("1"))
        )
