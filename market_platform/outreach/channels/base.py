"""What channels share: the message handed to them, the outcome they return, the pause."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from market_platform.outreach.outbox import DELIVERED, FAILED, RETRY, UNCERTAIN

#: The outcome of a send whose claim another worker won: nothing was sent by this one.
LOST = "lost"

Claim = Callable[[], Awaitable[bool]]


@dataclass(frozen=True)
class Outbound:
    """A message ready for a channel: the row of the outbox plus the subscriber's address."""

    key: str
    subscriber_id: str
    recipient: str
    language: str
    subject: str
    body: str
    attachment: str | None = None
    parts_sent: int = 0


@dataclass(frozen=True)
class Outcome:
    status: str
    reason: str = ""
    claimed: bool = False
    retry_after: float | None = None
    provider_id: str | None = None
    parts_sent: int = 0
    # What the channel learnt about the subscriber, e.g. ("blocked", "403 bot was blocked").
    subscriber_status: tuple[str, str] | None = None
    # The channel cannot work at all (a wrong token): stop sending on it in this run.
    channel_down: bool = False

    @classmethod
    def delivered(cls, provider_id: str | None = None, parts_sent: int = 0) -> Outcome:
        return cls(DELIVERED, claimed=True, provider_id=provider_id, parts_sent=parts_sent)

    @classmethod
    def later(cls, reason: str, claimed: bool, after: float | None = None,
              parts_sent: int = 0, channel_down: bool = False) -> Outcome:
        return cls(RETRY, reason, claimed, after, parts_sent=parts_sent,
                   channel_down=channel_down)

    @classmethod
    def final(cls, reason: str, claimed: bool, subscriber_status=None,
              parts_sent: int = 0) -> Outcome:
        return cls(FAILED, reason, claimed, subscriber_status=subscriber_status,
                   parts_sent=parts_sent)

    @classmethod
    def uncertain(cls, reason: str, parts_sent: int = 0) -> Outcome:
        return cls(UNCERTAIN, reason, True, parts_sent=parts_sent)

    @classmethod
    def lost(cls) -> Outcome:
        return cls(LOST, "claimed by another worker")


@dataclass
class Pause:
    """A channel-wide pause: after a 429 every sender on the channel waits, not just one."""

    resume_at: float = 0.0
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)

    def hold(self, seconds: float) -> None:
        self.resume_at = max(self.resume_at, time.monotonic() + seconds)

    async def wait(self) -> float:
        waited = 0.0
        while (left := self.resume_at - time.monotonic()) > 0:
            await asyncio.sleep(left)
            waited += left
        return waited
