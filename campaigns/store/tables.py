"""The database schema as SQLAlchemy Core tables.

Every time is stored in UTC. Migrations under ``campaigns/store/migrations`` create
and change these tables; a test checks that the two agree.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.types import TypeDecorator

VISIT_STATUSES = ("booked", "attended", "cancelled", "no-show")
SUPPRESSION_REASONS = ("unsubscribed", "bounced", "manual", "forgotten")


class UTCDateTime(TypeDecorator):
    """An aware datetime in, an aware UTC datetime out, stored as UTC on every backend.

    SQLite has no time zones: it stores the naive UTC text, which sorts and
    compares correctly as long as every value is UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def bind_processor(self, dialect):
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)
        # One C-level call per value instead of two layers of Python processors:
        # the text is exactly SQLite DATETIME's storage format, so it sorts.
        return _sqlite_text

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        return _check_aware(value).astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _check_aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r}: rebook stores aware UTC times only")
    return value


def _sqlite_text(value: datetime | None) -> str | None:
    if value is None:
        return None
    return _check_aware(value).astimezone(UTC).isoformat(" ", "microseconds")[:26]


metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

clients = Table(
    "clients",
    metadata,
    Column("id", String(64), primary_key=True, comment="the practice software's id"),
    Column("email", String(320), nullable=False, index=True, comment="lower case"),
    Column("first_name", String(200), nullable=False, server_default=""),
    Column("last_name", String(200), nullable=False, server_default=""),
    Column("marketing_consent", Boolean, nullable=False, server_default="0"),
    Column("tags", Text, nullable=False, server_default="", comment="sorted, ';'-separated"),
    Column("timezone", String(64)),
    Column("updated_at", UTCDateTime, nullable=False),
)

client_tags = Table(
    "client_tags",
    metadata,
    Column("client_id", ForeignKey("clients.id", ondelete="CASCADE"), primary_key=True),
    Column("tag", String(100), primary_key=True),
    Index(None, "tag", "client_id"),
)

visits = Table(
    "visits",
    metadata,
    Column("id", String(64), primary_key=True, comment="the practice software's id"),
    Column("client_id", ForeignKey("clients.id", ondelete="CASCADE"), nullable=False),
    Column("starts_at", UTCDateTime, nullable=False),
    Column("service", String(200), nullable=False),
    Column("status", String(16), nullable=False),
    Column("therapist", String(200), nullable=False, server_default=""),
    Column("updated_at", UTCDateTime, nullable=False),
    # Set by the import that inserted the visit, never by a later one: a booking
    # first seen after an email "follows" it (campaigns.outcomes). NULL: imported
    # before rebook kept this, so it cannot be dated.
    Column("first_seen_at", UTCDateTime),
    CheckConstraint("status IN ('booked', 'attended', 'cancelled', 'no-show')", name="status"),
    # Serves every segment rule: per client, per status, by service, by time.
    Index(None, "client_id", "status", "service", "starts_at"),
    # Serves the report: a recipient's bookings first seen within the window.
    Index(None, "client_id", "first_seen_at", "status"),
)

suppressions = Table(
    "suppressions",
    metadata,
    Column("address", String(320), primary_key=True, comment="lower case"),
    Column("reason", String(16), nullable=False),
    Column("detail", Text, nullable=False, server_default=""),
    Column("created_at", UTCDateTime, nullable=False),
    CheckConstraint(
        "reason IN ('unsubscribed', 'bounced', 'manual', 'forgotten', 'complained')", name="reason"
    ),
)

# An opt-out follows the client, not only the address: an unsubscribe is kept
# here by client id too, so a later export that changes the client's address
# does not bring them back into marketing. (A hard bounce is the address's
# alone: the client's new address may work.)
client_suppressions = Table(
    "client_suppressions",
    metadata,
    Column("client_id", String(64), primary_key=True, comment="the practice software's id"),
    Column("reason", String(16), nullable=False),
    Column("detail", Text, nullable=False, server_default=""),
    Column("created_at", UTCDateTime, nullable=False),
    CheckConstraint(
        "reason IN ('unsubscribed', 'manual', 'forgotten', 'complained')", name="reason"
    ),
)

# A forgotten client leaves only keyed hashes (HMAC-SHA256 with the forget key
# kept in app_state): of every address they had, so no later import or send
# reaches it, and of their id, so their visits in a later export are left out
# quietly. Nobody can read an address back out of a hash; anyone holding the
# key and an address can tell whether it was forgotten, which is the point.
FORGOTTEN_KINDS = ("address", "client")
forgotten = Table(
    "forgotten",
    metadata,
    Column("hash", String(64), primary_key=True, comment="hex HMAC-SHA256 of 'kind:value'"),
    Column("kind", String(8), nullable=False),
    Column("forgotten_at", UTCDateTime, nullable=False),
    CheckConstraint("kind IN ('address', 'client')", name="kind"),
)

app_state = Table(
    "app_state",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

SEND_STATUSES = (
    "queued", "claimed", "sending", "sent", "deferred", "failed", "skipped", "error", "held_out",
)  # fmt: skip
# Rows that did not spend their key: the next run of the campaign queues them
# again for the clients still in its audience.
UNSPENT_STATUSES = ("skipped", "error")

# The send ledger: one row per (campaign, client, key), written before a
# message leaves. queued → claimed (by a worker, in a batch) → sending (one
# per SMTP connection, committed before the transaction starts) → sent,
# deferred (retried from next_attempt_at) or failed (refused: the key is
# spent). Two ends leave the key unspent: skipped (no longer allowed when it
# was about to leave: unsubscribed, bounced, consent withdrawn) and error (a
# failure of rebook's own making: a template, a header, a login). A client in a
# campaign's control group gets a held_out row instead of a queued one: never
# sent, and it spends the key as sent does, so the client stays in the control
# group at the next run and repeat_after spaces their turns alike.
sends = Table(
    "sends",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("campaign", String(100), nullable=False),
    Column("client_id", String(64), nullable=False),
    Column("key", String(200), nullable=False, comment="'once', the repeat period or the article"),
    Column("marketing", Boolean, nullable=False),
    Column("email", String(320), nullable=False, comment="the address it went to"),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("last_reply", Text, nullable=False, server_default=""),
    Column("message_id", String(255)),
    Column("worker", String(32)),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("sent_at", UTCDateTime),
    Column("next_attempt_at", UTCDateTime),
    UniqueConstraint("campaign", "client_id", "key"),
    CheckConstraint(
        "status IN ('queued', 'claimed', 'sending', 'sent', 'deferred', 'failed', 'skipped', "
        "'error', 'held_out')",
        name="status",
    ),
    Index(None, "campaign", "status", "next_attempt_at"),
    Index(None, "client_id", "created_at"),
    Index(None, "email"),
    Index(None, "status", "worker"),  # rows in flight, for recovery after a crash
)

# Processes running campaigns, so that a run can tell a crashed worker's
# claimed and in-flight rows from a live one's.
workers = Table(
    "workers",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("heartbeat_at", UTCDateTime, nullable=False),
)

# Scheduled runs, one row per (campaign, scheduled time): the database, not
# the scheduler's job store, decides who runs what. Every worker computes the
# schedule; the one whose INSERT succeeds runs it, the others help deliver.
RUN_OUTCOMES = ("running", "done", "failed", "skipped")
runs = Table(
    "runs",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("campaign", String(100), nullable=False),
    Column("scheduled_for", UTCDateTime, nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime),
    Column("worker", String(300), nullable=False, comment="host:pid"),
    Column("outcome", String(16), nullable=False),
    Column("detail", Text, nullable=False, server_default=""),
    Column("members", Integer, nullable=False, server_default="0"),
    Column("enqueued", Integer, nullable=False, server_default="0"),
    Column("sent", Integer, nullable=False, server_default="0"),
    Column("deferred", Integer, nullable=False, server_default="0"),
    Column("failed", Integer, nullable=False, server_default="0"),
    Column("held", Integer, nullable=False, server_default="0"),
    Column("held_out", Integer, nullable=False, server_default="0"),
    UniqueConstraint("campaign", "scheduled_for"),
    CheckConstraint("outcome IN ('running', 'done', 'failed', 'skipped')", name="outcome"),
)

# What came back of the messages rebook sent (campaigns/bounces): one row per returned
# message and recipient it names, so the same bounce read twice (a restart, a
# second worker, a provider's retry) changes nothing. Only returns that matched
# a ledger row, or a mailed unsubscribe's sender, are kept: they hold an address.
RETURN_KINDS = ("hard", "soft", "clinic-problem", "complaint", "unsubscribe")
returns = Table(
    "returns",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column(
        "fingerprint", String(64), nullable=False, comment="sha256 of the message, or an event id"
    ),
    Column("recipient", String(320), nullable=False, comment="the address the return is about"),
    Column("kind", String(16), nullable=False),
    Column("status", String(16), nullable=False, server_default="", comment="5.1.1, or ''"),
    Column("reason", Text, nullable=False, server_default=""),
    Column("domain", String(255), nullable=False, server_default="", comment="receiving domain"),
    Column("send_id", BigInteger().with_variant(Integer, "sqlite"), comment="the ledger row"),
    Column("client_id", String(64)),
    Column("matched_by", String(16), nullable=False, comment="verp, message-id, address, sender"),
    Column("source", String(16), nullable=False, comment="imap, maildir, pipe, file"),
    Column("action", String(300), nullable=False, server_default=""),
    Column("received_at", UTCDateTime, nullable=False),
    UniqueConstraint("fingerprint", "recipient"),
    CheckConstraint(
        "kind IN ('hard', 'soft', 'clinic-problem', 'complaint', 'unsubscribe')", name="kind"
    ),
    Index(None, "recipient", "kind", "received_at"),
    Index(None, "kind", "received_at"),
    Index(None, "send_id"),
    Index(None, "client_id"),
)
