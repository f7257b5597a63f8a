"""The send ledger and the workers that write it.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sends",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("campaign", sa.String(100), nullable=False),
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column(
            "key",
            sa.String(200),
            nullable=False,
            comment="'once', the repeat period or the article",
        ),
        sa.Column("marketing", sa.Boolean(), nullable=False),
        sa.Column("email", sa.String(320), nullable=False, comment="the address it went to"),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("last_reply", sa.Text(), nullable=False, server_default=""),
        sa.Column("message_id", sa.String(255), nullable=True),
        sa.Column("worker", sa.String(32), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('queued', 'claimed', 'sending', 'sent', 'deferred', 'failed')",
            name=op.f("ck_sends_status"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sends")),
        sa.UniqueConstraint(
            "campaign", "client_id", "key", name=op.f("uq_sends_campaign_client_id_key")
        ),
    )
    op.create_index(
        op.f("ix_sends_campaign_status_next_attempt_at"),
        "sends",
        ["campaign", "status", "next_attempt_at"],
    )
    op.create_index(op.f("ix_sends_client_id_created_at"), "sends", ["client_id", "created_at"])
    op.create_index(op.f("ix_sends_email"), "sends", ["email"])
    op.create_table(
        "workers",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workers")),
    )


def downgrade() -> None:
    op.drop_table("workers")
    op.drop_index(op.f("ix_sends_email"), "sends")
    op.drop_index(op.f("ix_sends_client_id_created_at"), "sends")
    op.drop_index(op.f("ix_sends_campaign_status_next_attempt_at"), "sends")
    op.drop_table("sends")
