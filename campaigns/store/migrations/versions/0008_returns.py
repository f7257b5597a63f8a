"""What came back: bounces, complaints and mailed unsubscribes matched to the ledger.

The suppression lists gain the reason ``complained``: a spam complaint keeps
the client and the address off marketing, as their own unsubscribe does, but
only the owner can undo it.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "returns",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("fingerprint", sa.String(64), nullable=False,
                  comment="sha256 of the message, or an event id"),
        sa.Column("recipient", sa.String(320), nullable=False,
                  comment="the address the return is about"),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False, server_default="",
                  comment="5.1.1, or ''"),
        sa.Column("reason", sa.Text(), nullable=False, server_default=""),
        sa.Column("domain", sa.String(255), nullable=False, server_default="",
                  comment="receiving domain"),
        sa.Column("send_id", _ID, comment="the ledger row"),
        sa.Column("client_id", sa.String(64)),
        sa.Column("matched_by", sa.String(16), nullable=False,
                  comment="verp, message-id, address, sender"),
        sa.Column("source", sa.String(16), nullable=False, comment="imap, maildir, pipe, file"),
        sa.Column("action", sa.String(300), nullable=False, server_default=""),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_returns")),
        sa.UniqueConstraint(
            "fingerprint", "recipient", name=op.f("uq_returns_fingerprint_recipient")
        ),
        sa.CheckConstraint(
            "kind IN ('hard', 'soft', 'clinic-problem', 'complaint', 'unsubscribe')",
            name=op.f("ck_returns_kind"),
        ),
    )  # fmt: skip
    op.create_index(op.f("ix_returns_recipient_kind_received_at"), "returns",
                    ["recipient", "kind", "received_at"])  # fmt: skip
    op.create_index(op.f("ix_returns_kind_received_at"), "returns", ["kind", "received_at"])
    op.create_index(op.f("ix_returns_send_id"), "returns", ["send_id"])
    op.create_index(op.f("ix_returns_client_id"), "returns", ["client_id"])

    _reasons("suppressions", _ADDRESS_REASONS + ", 'complained'")
    _reasons("client_suppressions", _CLIENT_REASONS + ", 'complained'")


def downgrade() -> None:
    for table in ("suppressions", "client_suppressions"):
        op.execute(f"UPDATE {table} SET reason = 'manual' WHERE reason = 'complained'")
    _reasons("suppressions", _ADDRESS_REASONS)
    _reasons("client_suppressions", _CLIENT_REASONS)
    op.drop_table("returns")


_ADDRESS_REASONS = "'unsubscribed', 'bounced', 'manual', 'forgotten'"
_CLIENT_REASONS = "'unsubscribed', 'manual', 'forgotten'"


def _reasons(table: str, reasons: str) -> None:
    """SQLite cannot alter a CHECK: batch mode copies the table with the new one."""
    with op.batch_alter_table(table, recreate="auto") as batch:
        batch.drop_constraint(op.f(f"ck_{table}_reason"), type_="check")
        batch.create_check_constraint(op.f(f"ck_{table}_reason"), f"reason IN ({reasons})")
