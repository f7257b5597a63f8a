"""Unsubscribes kept by client id; send statuses that leave the key unspent.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_OLD_STATUSES = "'queued', 'claimed', 'sending', 'sent', 'deferred', 'failed'"
_NEW_STATUSES = _OLD_STATUSES + ", 'skipped', 'error'"


def upgrade() -> None:
    op.create_table(
        "client_suppressions",
        sa.Column("client_id", sa.String(64), nullable=False, comment="the practice software's id"),
        sa.Column("reason", sa.String(16), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False, server_default=""),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "reason IN ('unsubscribed', 'manual', 'forgotten')",
            name=op.f("ck_client_suppressions_reason"),
        ),
        sa.PrimaryKeyConstraint("client_id", name=op.f("pk_client_suppressions")),
    )
    _status_check(_NEW_STATUSES)


def downgrade() -> None:
    op.execute("DELETE FROM sends WHERE status IN ('skipped', 'error')")
    _status_check(_OLD_STATUSES)
    op.drop_table("client_suppressions")


def _status_check(statuses: str) -> None:
    """SQLite cannot alter a CHECK: batch mode copies the table with the new one."""
    with op.batch_alter_table("sends", recreate="auto") as batch:
        batch.drop_constraint(op.f("ck_sends_status"), type_="check")
        batch.create_check_constraint(op.f("ck_sends_status"), f"status IN ({statuses})")
