"""Account mail: verified and pending addresses, mailed links, the outbox.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("user") as batch:
        batch.add_column(sa.Column("email_verified_at", sa.DateTime, nullable=True))
        batch.add_column(sa.Column("pending_email", sa.String(254), nullable=True))
    op.create_table(
        "email_link",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("user_id", sa.Integer, nullable=False),
        sa.Column("purpose", sa.String(20), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("email", sa.String(254), nullable=True),
        sa.Column("password_stamp", sa.String(64), nullable=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("expires_at", sa.DateTime, nullable=False),
        sa.Column("used_at", sa.DateTime, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_email_link"),
        sa.ForeignKeyConstraint(
            ["user_id"], ["user.id"], name="fk_email_link_user_id_user", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("token_hash", name="uq_email_link_token_hash"),
        mysql_engine="InnoDB",
        mysql_charset="utf8mb4",
    )
    op.create_index("ix_email_link_user_id", "email_link", ["user_id"])
    op.create_index("ix_email_link_expires_at", "email_link", ["expires_at"])
    op.create_table(
        "mail_outbox",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("recipient", sa.String(254), nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column(
            "message",
            sa.LargeBinary().with_variant(mysql.MEDIUMBLOB(), "mysql", "mariadb"),
            nullable=True,
        ),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", sa.DateTime, nullable=False),
        sa.Column("claimed_by", sa.String(64), nullable=True),
        sa.Column("last_error", sa.String(500), nullable=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("sent_at", sa.DateTime, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_mail_outbox"),
        mysql_engine="InnoDB",
        mysql_charset="utf8mb4",
    )
    op.create_index("ix_mail_outbox_due", "mail_outbox", ["status", "next_attempt_at"])


def downgrade() -> None:
    op.drop_table("mail_outbox")
    op.drop_table("email_link")
    with op.batch_alter_table("user") as batch:
        batch.drop_column("pending_email")
        batch.drop_column("email_verified_at")
