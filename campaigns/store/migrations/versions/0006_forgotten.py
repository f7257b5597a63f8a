"""Keyed hashes of forgotten addresses and clients (rebook forget).

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "forgotten",
        sa.Column("hash", sa.String(64), nullable=False, comment="hex HMAC-SHA256 of 'kind:value'"),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("forgotten_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("kind IN ('address', 'client')", name=op.f("ck_forgotten_kind")),
        sa.PrimaryKeyConstraint("hash", name=op.f("pk_forgotten")),
    )


def downgrade() -> None:
    """Dropping the hashes would make forgotten addresses mailable again: refuse."""
    raise RuntimeError("0006 cannot be undone: it holds the addresses clients asked to forget")
