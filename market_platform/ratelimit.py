"""Rate limits that hold across processes and hosts, on the ``limits`` library.

With ``RATE_LIMIT_STORAGE_URL`` (or ``REDIS_URL``) set to a Redis URL, every worker shares one
moving window per key, so "20 per second" means 20 per second for the whole platform, not per
worker. Without it the windows live in this process's memory, which is right for a single
process and for tests. The moving window guarantees that no span of the window's length ever
holds more than the allowed number of calls; a fixed window would allow twice that at the
boundary between two windows.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass, field

from limits import RateLimitItem, parse, storage, strategies
from limits.aio import strategies as aio_strategies

NAMESPACE = "market_platform"


def storage_url() -> str:
    """Where the windows live: ``RATE_LIMIT_STORAGE_URL``, else ``REDIS_URL``, else memory."""
    return os.environ.get("RATE_LIMIT_STORAGE_URL") or os.environ.get("REDIS_URL") or "memory://"


class RateLimitTimeout(TimeoutError):
    """No slot became free within the caller's time budget."""


@dataclass
class RateLimiter:
    """Blocks until a call under ``rate`` (e.g. ``"20/second"``, ``"1 per second"``) is allowed.

    ``key`` separates independent budgets: one per SMTP domain, one per API endpoint.
    """

    rate: str
    url: str = field(default_factory=storage_url)
    _item: RateLimitItem = field(init=False, repr=False)

    def __post_init__(self):
        self._item = parse(self.rate)
        self._strategy = strategies.MovingWindowRateLimiter(
            storage.storage_from_string(self.url)
        )

    def try_acquire(self, key: str) -> bool:
        return self._strategy.hit(self._item, NAMESPACE, key)

    def acquire(self, key: str, timeout: float | None = None) -> float:
        """Wait for a slot; returns the seconds waited."""
        started = time.monotonic()
        while not self._strategy.hit(self._item, NAMESPACE, key):
            reset = self._strategy.get_window_stats(self._item, NAMESPACE, key).reset_time
            pause = min(max(reset - time.time(), 0.001), self._item.get_expiry())
            if timeout is not None and time.monotonic() - started + pause > timeout:
                raise RateLimitTimeout(f"no slot for {key!r} under {self.rate} in {timeout} s")
            time.sleep(pause)
        return time.monotonic() - started

    def reset(self, key: str) -> None:
        self._strategy.clear(self._item, NAMESPACE, key)


@dataclass
class AsyncRateLimiter:
    """The same limit for asyncio code: waiting yields to the event loop."""

    rate: str
    url: str = field(default_factory=storage_url)

    def __post_init__(self):
        self._item = parse(self.rate)
        self._strategy = aio_strategies.MovingWindowRateLimiter(
            _async_storage(self.url)
        )

    async def acquire(self, key: str, timeout: float | None = None) -> float:
        started = time.monotonic()
        while not await self._strategy.hit(self._item, NAMESPACE, key):
            stats = await self._strategy.get_window_stats(self._item, NAMESPACE, key)
            pause = min(max(stats.reset_time - time.time(), 0.001), self._item.get_expiry())
            if timeout is not None and time.monotonic() - started + pause > timeout:
                raise RateLimitTimeout(f"no slot for {key!r} under {self.rate} in {timeout} s")
            await asyncio.sleep(pause)
        return time.monotonic() - started


def _async_storage(url: str):
    # The limits library picks its asyncio storages by the "async+" scheme prefix; for Redis
    # it uses redis-py's asyncio client, the same package as the synchronous side.
    if url.startswith("memory"):
        return storage.storage_from_string(f"async+{url}")
    url = url if url.startswith("async+") else f"async+{url}"
    return storage.storage_from_string(url, implementation="redispy")
