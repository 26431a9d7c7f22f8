"""Account status and roles: deactivation by an administrator (``deactivated_at``), deletion
asked for by the owner and due after a grace period (``deletion_due_at``), and the read-only
support role (``is_support``); and whose mail each outbox row is (``mail_outbox.user_id``).

Data: ``account-deleted`` events lose their details, which held the deleted account's
username; from now on such an event names the account by its id only (``account_deletion``).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-08
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("user", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.add_column(sa.Column("deactivated_at", sa.DateTime, nullable=True))
        batch.add_column(sa.Column("deletion_due_at", sa.DateTime, nullable=True))
        batch.add_column(
            sa.Column("is_support", sa.Boolean, nullable=False, server_default=sa.text("0"))
        )
        # What housekeeping looks for every hour: the accounts whose grace period is over.
        batch.create_index("ix_user_deletion_due_at", ["deletion_due_at"])
    with op.batch_alter_table("mail_outbox") as batch:
        # Whose mail it is, so an export and a deletion find it by account, not by an address
        # that may have changed hands.
        batch.add_column(sa.Column("user_id", sa.Integer, nullable=True))
        batch.create_index("ix_mail_outbox_user_id", ["user_id"])
    op.execute("UPDATE security_event SET details = NULL WHERE type = 'account-deleted'")


def downgrade() -> None:
    with op.batch_alter_table("mail_outbox") as batch:
        batch.drop_index("ix_mail_outbox_user_id")
        batch.drop_column("user_id")
    with op.batch_alter_table("user", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.drop_index("ix_user_deletion_due_at")
        batch.drop_column("is_support")
        batch.drop_column("deletion_due_at")
        batch.drop_column("deactivated_at")
