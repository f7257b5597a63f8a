"""Clients, their tags and visits, and the suppression list.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "clients",
        sa.Column("id", sa.String(64), nullable=False, comment="the practice software's id"),
        sa.Column("email", sa.String(320), nullable=False, comment="lower case"),
        sa.Column("first_name", sa.String(200), nullable=False, server_default=""),
        sa.Column("last_name", sa.String(200), nullable=False, server_default=""),
        sa.Column("marketing_consent", sa.Boolean(), nullable=False, server_default="0"),
        sa.Column(
            "tags", sa.Text(), nullable=False, server_default="", comment="sorted, ';'-separated"
        ),
        sa.Column("timezone", sa.String(64), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_clients")),
    )
    op.create_index(op.f("ix_clients_email"), "clients", ["email"])
    op.create_table(
        "client_tags",
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("tag", sa.String(100), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["clients.id"],
            name=op.f("fk_client_tags_client_id_clients"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("client_id", "tag", name=op.f("pk_client_tags")),
    )
    op.create_index(op.f("ix_client_tags_tag_client_id"), "client_tags", ["tag", "client_id"])
    op.create_table(
        "visits",
        sa.Column("id", sa.String(64), nullable=False, comment="the practice software's id"),
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("service", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("therapist", sa.String(200), nullable=False, server_default=""),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('booked', 'attended', 'cancelled', 'no-show')",
            name=op.f("ck_visits_status"),
        ),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["clients.id"],
            name=op.f("fk_visits_client_id_clients"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_visits")),
    )
    op.create_index(
        op.f("ix_visits_client_id_status_service_starts_at"),
        "visits",
        ["client_id", "status", "service", "starts_at"],
    )
    op.create_table(
        "suppressions",
        sa.Column("address", sa.String(320), nullable=False, comment="lower case"),
        sa.Column("reason", sa.String(16), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False, server_default=""),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "reason IN ('unsubscribed', 'bounced', 'manual', 'forgotten')",
            name=op.f("ck_suppressions_reason"),
        ),
        sa.PrimaryKeyConstraint("address", name=op.f("pk_suppressions")),
    )


def downgrade() -> None:
    op.drop_table("suppressions")
    op.drop_index(op.f("ix_visits_client_id_status_service_starts_at"), "visits")
    op.drop_table("visits")
    op.drop_index(op.f("ix_client_tags_tag_client_id"), "client_tags")
    op.drop_table("client_tags")
    op.drop_index(op.f("ix_clients_email"), "clients")
    op.drop_table("clients")
