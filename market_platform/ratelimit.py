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
import contextlib
import fcntl
import hashlib
import os
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
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

    ``margin`` > 0 also spaces the calls evenly, at least ``(1 + margin) * window / amount``
    apart (0.05 and "1/second": 1.05 s). The window is measured when a call is allowed, a few
    milliseconds before its request reaches the server, and those milliseconds differ between
    calls; the spacing keeps the server's own count within the rate as long as they differ by
    less than ``margin`` seconds per window. The spacing is shared like the window (Redis or
    this process's memory).
    """

    rate: str
    url: str = field(default_factory=storage_url)
    margin: float = 0.0
    _item: RateLimitItem = field(init=False, repr=False)

    def __post_init__(self):
        self._item = parse(self.rate)
        self._strategy = strategies.MovingWindowRateLimiter(
            storage.storage_from_string(self.url)
        )
        self._spacing = (
            _Spacing(self.url, self._item.get_expiry() / self._item.amount * (1 + self.margin))
            if self.margin > 0
            else None
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
        if self._spacing is not None:
            time.sleep(self._spacing.reserve(key))
        return time.monotonic() - started

    def reset(self, key: str) -> None:
        self._strategy.clear(self._item, NAMESPACE, key)
        if self._spacing is not None:
            self._spacing.clear(key)


# Reserves the next free start time of a key and answers how long the caller must wait for it.
# Redis's own clock decides, so hosts with drifting clocks still agree. The wait is returned
# as a string: Redis truncates Lua numbers to integers.
_RESERVE_SCRIPT = """
local now = redis.call('TIME')
local now_s = tonumber(now[1]) + tonumber(now[2]) / 1000000
local interval = tonumber(ARGV[1])
local start = math.max(now_s, tonumber(redis.call('GET', KEYS[1]) or '0'))
local ttl_ms = math.ceil((start + interval - now_s) * 1000) + 1000
redis.call('SET', KEYS[1], string.format('%.6f', start + interval), 'PX', ttl_ms)
return string.format('%.6f', start - now_s)
"""


class _Spacing:
    """Even spacing of calls per key: each call gets the next free start time."""

    _memory: dict[str, float] = {}
    _memory_lock = threading.Lock()

    def __init__(self, url: str, interval: float):
        self.interval = interval
        self._redis = None
        if url.startswith(("redis://", "rediss://", "unix://")):
            import redis

            self._redis = redis.Redis.from_url(url)
            self._reserve = self._redis.register_script(_RESERVE_SCRIPT)

    def _name(self, key: str) -> str:
        return f"{NAMESPACE}/spacing/{self.interval:.6f}/{key}"

    def reserve(self, key: str) -> float:
        """Seconds to wait before the call may start; the slot is the caller's from now on."""
        if self._redis is not None:
            return float(self._reserve(keys=[self._name(key)], args=[self.interval]))
        with self._memory_lock:
            now = time.monotonic()
            start = max(now, self._memory.get(self._name(key), 0.0))
            self._memory[self._name(key)] = start + self.interval
        return start - now

    def clear(self, key: str) -> None:
        if self._redis is not None:
            self._redis.delete(self._name(key))
        else:
            with self._memory_lock:
                self._memory.pop(self._name(key), None)


class LockTimeout(TimeoutError):
    """Another process held the lock for longer than the caller would wait."""


@contextlib.contextmanager
def exclusive(
    key: str, timeout: float, lease: float, url: str | None = None
) -> Iterator[float]:
    """Hold ``key`` alone across processes (e.g. "one request at a time per endpoint").

    With a Redis storage URL the lock lives in Redis and holds across hosts; its ``lease``
    (seconds) frees it should the holder die. Otherwise it is a file lock in the temporary
    folder, which holds across the processes of this host and is freed by the system when the
    holder dies. Yields the seconds waited; raises ``LockTimeout`` after ``timeout`` seconds.
    """
    url = url or storage_url()
    started = time.monotonic()
    if url.startswith(("redis://", "rediss://", "unix://")):
        import redis

        lock = redis.Redis.from_url(url).lock(
            f"{NAMESPACE}/lock/{key}", timeout=lease, blocking_timeout=timeout
        )
        if not lock.acquire():
            raise LockTimeout(f"{key!r} stayed locked by another worker for {timeout} s")
        try:
            yield time.monotonic() - started
        finally:
            with contextlib.suppress(redis.exceptions.LockError):
                lock.release()
        return

    folder = os.path.join(tempfile.gettempdir(), f"{NAMESPACE}-locks")
    os.makedirs(folder, exist_ok=True)
    name = hashlib.sha256(key.encode()).hexdigest()[:24]
    with open(os.path.join(folder, f"{name}.lock"), "a+") as handle:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() - started > timeout:
                    raise LockTimeout(
                        f"{key!r} stayed locked by another process for {timeout} s"
                    ) from None
                time.sleep(0.01)
        try:
            yield time.monotonic() - started
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


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

    async def try_acquire(self, key: str) -> bool:
        """Take a slot if one is free now, without waiting."""
        return await self._strategy.hit(self._item, NAMESPACE, key)

    async def acquire(self, key: str, timeout: float | None = None) -> float:
        started = time.monotonic()
        while not await self._strategy.hit(self._item, NAMESPACE, key):
            stats = await self._strategy.get_window_stats(self._item, NAMESPACE, key)
            pause = min(max(stats.reset_time - time.time(), 0.001), self._item.get_expiry())
            if timeout is not None and time.monotonic() - started + pause > timeout:
                raise RateLimitTimeout(f"no slot for {key!r} under {self.rate} in {timeout} s")
            await asyncio.sleep(pause)
        return time.monotonic() - started


class AsyncKeyLock:
    """At most one holder per key at a time, e.g. one SMTP connection per receiving domain.

    With a Redis URL the lock holds across processes and hosts (redis-py's lock, which
    expires after ``expire`` seconds should its holder die); with ``memory://`` it holds
    within this process.
    """

    def __init__(self, url: str | None = None, expire: float = 600.0):
        self.url = url or storage_url()
        self.expire = expire
        self._local: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._redis = None

    @contextlib.asynccontextmanager
    async def hold(self, key: str):
        if self.url.startswith("memory"):
            async with self._local[key]:
                yield
            return
        if self._redis is None:
            from redis import asyncio as redis_asyncio

            self._redis = redis_asyncio.Redis.from_url(self.url.removeprefix("async+"))
        # Within the process the waiters queue on a local lock, so only one of them at a
        # time polls Redis for the shared one.
        async with self._local[key]:
            async with self._redis.lock(f"{NAMESPACE}:lock:{key}", timeout=self.expire,
                                        sleep=0.05):
                yield

    async def aclose(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()


def _async_storage(url: str):
    # The limits library picks its asyncio storages by the "async+" scheme prefix; for Redis
    # it uses redis-py's asyncio client, the same package as the synchronous side.
    if url.startswith("memory"):
        return storage.storage_from_string(f"async+{url}")
    url = url if url.startswith("async+") else f"async+{url}"
    return storage.storage_from_string(url, implementation="redispy")
