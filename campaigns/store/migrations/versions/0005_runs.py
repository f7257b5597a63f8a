"""Scheduled runs, claimed by the worker whose insert succeeds.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("campaign", sa.String(100), nullable=False),
        sa.Column("scheduled_for", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("worker", sa.String(300), nullable=False, comment="host:pid"),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False, server_default=""),
        *(
            sa.Column(name, sa.Integer(), nullable=False, server_default="0")
            for name in ("members", "enqueued", "sent", "deferred", "failed", "held")
        ),
        sa.CheckConstraint(
            "outcome IN ('running', 'done', 'failed', 'skipped')", name=op.f("ck_runs_outcome")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_runs")),
        sa.UniqueConstraint(
            "campaign", "scheduled_for", name=op.f("uq_runs_campaign_scheduled_for")
        ),
    )

    op.create_index(op.f("ix_sends_status_worker"), "sends", ["status", "worker"])


def downgrade() -> None:
    op.drop_index(op.f("ix_sends_status_worker"), "sends")
    op.drop_table("runs")
