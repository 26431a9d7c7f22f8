"""Profile fields (display name, e-mail) and API tokens.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

EMAIL_LENGTH = 254
# SQLite's ALTER is a table copy; keep AUTOINCREMENT, so a deleted user's id is never reused.
USER_TABLE_KWARGS = {"sqlite_autoincrement": True}


def email_type() -> sa.types.TypeEngine:
    """Compared byte for byte (addresses are stored in lower case), as ``models.binary_string``."""
    if op.get_bind().dialect.name in {"mysql", "mariadb"}:
        return mysql.VARCHAR(EMAIL_LENGTH, charset="utf8mb4", collation="utf8mb4_bin")
    return sa.String(EMAIL_LENGTH)


def upgrade() -> None:
    with op.batch_alter_table("user", table_kwargs=USER_TABLE_KWARGS) as batch:
        batch.add_column(sa.Column("display_name", sa.String(50), nullable=True))
        batch.add_column(sa.Column("email", email_type(), nullable=True))
        batch.create_unique_constraint("uq_user_email", ["email"])

    op.create_table(
        "api_token",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "user_id",
            sa.Integer,
            sa.ForeignKey("user.id", name="fk_api_token_user_id_user", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("expires_at", sa.DateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_api_token"),
        sa.UniqueConstraint("token_hash", name="uq_api_token_token_hash"),
        mysql_engine="InnoDB",
        mysql_charset="utf8mb4",
    )
    op.create_index("ix_api_token_user_id", "api_token", ["user_id"])
    op.create_index("ix_api_token_expires_at", "api_token", ["expires_at"])


def downgrade() -> None:
    op.drop_table("api_token")
    with op.batch_alter_table("user", table_kwargs=USER_TABLE_KWARGS) as batch:
        batch.drop_constraint("uq_user_email", type_="unique")
        batch.drop_column("email")
        batch.drop_column("display_name")
