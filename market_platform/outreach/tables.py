"""The outreach tables in the market database (SQLAlchemy Core, SQLite or PostgreSQL).

* ``subscribers``: who gets what, as loaded from the CSV (or maintained elsewhere).
* ``subscriber_channels``: what the channels said about a subscriber (a blocked bot, a
  rejected mailbox); kept apart so that reloading the CSV does not forget it.
* ``email_verifications``: the verifier's result per address, keyed by the address's
  SHA-256 so that the cache itself holds no address, with an expiry time.
* ``outbox``: one row per message key ``<kind>:<period>:<subscriber>``, with its state.

Times are UTC (``DateTime(timezone=True)``; SQLite keeps the UTC wall time).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine

metadata = sa.MetaData()

subscribers_table = sa.Table(
    "subscribers",
    metadata,
    sa.Column("subscriber_id", sa.String(100), primary_key=True),
    sa.Column("email", sa.String(320)),
    sa.Column("telegram_chat_id", sa.String(32)),
    sa.Column("whatsapp_number", sa.String(20)),
    sa.Column("channel", sa.String(10), nullable=False),
    sa.Column("language", sa.String(2), nullable=False),
    # Site ids or OSM market ids ("node/123"), and AGS keys of Kreise or Länder ("DE" too),
    # separated by spaces.
    sa.Column("markets", sa.Text, nullable=False, default=""),
    sa.Column("regions", sa.Text, nullable=False, default=""),
    sa.Column("consent_at", sa.DateTime(timezone=True)),
)

channel_status_table = sa.Table(
    "subscriber_channels",
    metadata,
    sa.Column("subscriber_id", sa.String(100), primary_key=True),
    sa.Column("channel", sa.String(10), primary_key=True),
    # "blocked" (Telegram 403), "rejected" (mailbox 5xx), "invalid" (no such chat or number)
    sa.Column("status", sa.String(12), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

verifications_table = sa.Table(
    "email_verifications",
    metadata,
    sa.Column("address_sha256", sa.String(64), primary_key=True),
    sa.Column("domain", sa.String(255), nullable=False),
    # valid, invalid, unknown, catch-all
    sa.Column("status", sa.String(10), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("mx_host", sa.String(255)),
    sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
)

outbox_table = sa.Table(
    "outbox",
    metadata,
    sa.Column("message_key", sa.String(200), primary_key=True),
    sa.Column("subscriber_id", sa.String(100), nullable=False),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("period", sa.String(20), nullable=False),
    sa.Column("channel", sa.String(10), nullable=False),
    sa.Column("language", sa.String(2), nullable=False),
    sa.Column("subject", sa.Text, nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("attachment", sa.Text),
    # pending, sending, retry, delivered, failed, skipped, uncertain (see outbox.py)
    sa.Column("status", sa.String(10), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("parts_sent", sa.Integer, nullable=False, default=0),
    sa.Column("claim_token", sa.String(32)),
    sa.Column("claimed_at", sa.DateTime(timezone=True)),
    sa.Column("next_attempt_at", sa.DateTime(timezone=True)),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True)),
    sa.Column("provider_id", sa.String(200)),
    sa.Column("reason", sa.Text),
    sa.Index("outbox_kind_period", "kind", "period"),
    sa.Index("outbox_status", "status"),
)


def create_tables(engine: Engine) -> None:
    metadata.create_all(engine)
