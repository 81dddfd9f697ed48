"""Whether a subscriber may get a message on a channel, decided the same way everywhere.

No consent, an address the verifier found invalid, or a channel that told us to stop (a
blocked bot, a rejected mailbox) means the message is recorded as ``skipped`` with the reason
and not sent. Unknown and catch-all addresses are tried: the verifier could not say no.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from market_platform.outreach import subscribers as subscriber_store
from market_platform.outreach.subscribers import Subscriber
from market_platform.outreach.tables import channel_status_table, verifications_table


def address_hash(address: str) -> str:
    """The key of an address in ``email_verifications``: its SHA-256, not the address."""
    return hashlib.sha256(address.encode("utf-8")).hexdigest()


@dataclass
class Audience:
    subscribers: dict[str, Subscriber]
    channel_status: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)
    email_status: dict[str, tuple[str, str]] = field(default_factory=dict)

    def skip_reason(self, subscriber_id: str, channel: str) -> str | None:
        subscriber = self.subscribers.get(subscriber_id)
        if subscriber is None:
            return "subscriber no longer in the list"
        if subscriber.consent_at is None:
            return "no consent"
        if not subscriber.address(channel):
            return f"no {channel} address"
        told = self.channel_status.get((subscriber_id, channel))
        if told:
            return f"{channel} {told[0]}: {told[1]}"
        if channel == "email":
            status = self.email_status.get(address_hash(subscriber.email or ""))
            if status and status[0] == "invalid":
                return f"email invalid: {status[1]}"
        return None


def load(engine: Engine) -> Audience:
    people = {s.subscriber_id: s for s in subscriber_store.read_all(engine)}
    with engine.connect() as conn:
        told = {
            (r.subscriber_id, r.channel): (r.status, r.reason)
            for r in conn.execute(sa.select(channel_status_table))
        }
        checked = {
            r.address_hash: (r.status, r.reason)
            for r in conn.execute(sa.select(
                verifications_table.c.address_sha256.label("address_hash"),
                verifications_table.c.status, verifications_table.c.reason))
        }
    return Audience(people, told, checked)
