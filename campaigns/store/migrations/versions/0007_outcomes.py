"""Outcomes: when each visit was first seen, and control groups held out of a campaign.

``visits.first_seen_at`` is stamped by the import that inserts a visit and
never changed afterwards: it tells a booking made after an email from one
that was already there. Visits imported before this revision get ``NULL``:
their ``updated_at`` is when they last *changed* (a booking later attended,
say), which would date an old booking after the email and credit the email
with it. The report counts the visits it could not date instead.

``sends.status`` gains ``held_out`` (a control-group client: recorded, not
sent), and ``runs`` how many each run held out.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_OLD_STATUSES = "'queued', 'claimed', 'sending', 'sent', 'deferred', 'failed', 'skipped', 'error'"
_NEW_STATUSES = _OLD_STATUSES + ", 'held_out'"


def upgrade() -> None:
    with op.batch_alter_table("visits") as batch:
        batch.add_column(sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index(
        op.f("ix_visits_client_id_first_seen_at_status"),
        "visits",
        ["client_id", "first_seen_at", "status"],
    )
    _status_check(_NEW_STATUSES)
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("held_out", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("held_out")
    op.execute("DELETE FROM sends WHERE status = 'held_out'")
    _status_check(_OLD_STATUSES)
    op.drop_index(op.f("ix_visits_client_id_first_seen_at_status"), "visits")
    with op.batch_alter_table("visits") as batch:
        batch.drop_column("first_seen_at")


def _status_check(statuses: str) -> None:
    """SQLite cannot alter a CHECK: batch mode copies the table with the new one."""
    with op.batch_alter_table("sends", recreate="auto") as batch:
        batch.drop_constraint(op.f("ck_sends_status"), type_="check")
        batch.create_check_constraint(op.f("ck_sends_status"), f"status IN ({statuses})")
