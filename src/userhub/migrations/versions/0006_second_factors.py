"""Second factors and passkeys: TOTP (secret encrypted), recovery codes (keyed digests),
WebAuthn credentials, short-lived authentication challenges, and when a session or token last
proved who is using it (re-authentication).

Sessions and tokens from before count as authenticated when they were created.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

INNODB = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"}


def user_fk(table: str, *, nullable: bool = False) -> list[sa.schema.SchemaItem]:
    """``user_id``, a foreign key to the account that goes with it."""
    return [
        sa.Column("user_id", sa.Integer, nullable=nullable),
        sa.ForeignKeyConstraint(
            ["user_id"], ["user.id"], name=f"fk_{table}_user_id_user", ondelete="CASCADE"
        ),
    ]


def upgrade() -> None:
    with op.batch_alter_table("user", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.add_column(sa.Column("passkey_handle", sa.String(88), nullable=True))
    for table in ("user_session", "api_token"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("authenticated_at", sa.DateTime, nullable=True))
    with op.batch_alter_table("user_session", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.alter_column(  # room for the methods of a log-in in two steps
            "auth_method", type_=sa.String(40), existing_type=sa.String(20), existing_nullable=False
        )
    op.execute(
        "UPDATE user_session SET authenticated_at = created_at WHERE authenticated_at IS NULL"
    )
    op.execute(
        "UPDATE api_token SET authenticated_at = created_at "
        "WHERE authenticated_at IS NULL AND name IS NULL"
    )
    op.create_table(
        "totp_factor",
        *user_fk("totp_factor"),
        sa.Column("secret", sa.LargeBinary, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("confirmed_at", sa.DateTime, nullable=True),
        sa.Column("last_step", sa.Integer, nullable=True),
        sa.PrimaryKeyConstraint("user_id", name="pk_totp_factor"),
        **INNODB,
    )
    op.create_table(
        "recovery_code",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        *user_fk("recovery_code"),
        sa.Column("code_hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("used_at", sa.DateTime, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_recovery_code"),
        sa.UniqueConstraint("code_hash", name="uq_recovery_code_code_hash"),
        **INNODB,
    )
    op.create_index("ix_recovery_code_user_id", "recovery_code", ["user_id"])
    op.create_table(
        "passkey",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        *user_fk("passkey"),
        sa.Column("credential_key", sa.String(64), nullable=False),
        sa.Column("credential_id", sa.LargeBinary, nullable=False),
        sa.Column("public_key", sa.LargeBinary, nullable=False),
        sa.Column("sign_count", sa.Integer, nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("transports", sa.String(100), nullable=True),
        sa.Column("backed_up", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("last_used_at", sa.DateTime, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_passkey"),
        sa.UniqueConstraint("credential_key", name="uq_passkey_credential_key"),
        sqlite_autoincrement=True,
        **INNODB,
    )
    op.create_index("ix_passkey_user_id", "passkey", ["user_id"])
    op.create_table(
        "auth_challenge",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("purpose", sa.String(20), nullable=False),
        *user_fk("auth_challenge", nullable=True),
        sa.Column("known_device", sa.Boolean, nullable=False),
        sa.Column("webauthn_challenge", sa.String(128), nullable=True),
        sa.Column("failures", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("expires_at", sa.DateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_auth_challenge"),
        sa.UniqueConstraint("key_hash", name="uq_auth_challenge_key_hash"),
        **INNODB,
    )
    op.create_index("ix_auth_challenge_user_id", "auth_challenge", ["user_id"])
    op.create_index("ix_auth_challenge_expires_at", "auth_challenge", ["expires_at"])


def downgrade() -> None:
    for table in ("auth_challenge", "passkey", "recovery_code", "totp_factor"):
        op.drop_table(table)
    for table in ("api_token", "user_session"):
        with op.batch_alter_table(table, table_kwargs={"sqlite_autoincrement": True}) as batch:
            batch.drop_column("authenticated_at")
    with op.batch_alter_table("user_session", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.alter_column(
            "auth_method", type_=sa.String(20), existing_type=sa.String(40), existing_nullable=False
        )
    with op.batch_alter_table("user", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.drop_column("passkey_handle")
