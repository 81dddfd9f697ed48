"""Rate limits shared through Redis hold across processes; memory works without Redis."""

from __future__ import annotations

import asyncio
import multiprocessing
import time
import uuid

import pytest
import redis

from market_platform.ratelimit import AsyncRateLimiter, RateLimiter, RateLimitTimeout

REDIS_URL = "redis://127.0.0.1:6379/0"


def _worker(url, key, calls, out):
    limiter = RateLimiter("10/second", url)
    stamps = []
    for _ in range(calls):
        limiter.acquire(key, timeout=30)
        stamps.append(time.time())
    out.put(stamps)


def _busiest_second(stamps, span=0.95):
    """Most calls in any window of ``span`` seconds.

    The stamps are taken after ``acquire`` returns, a few milliseconds after the limiter
    recorded the call; those milliseconds differ between calls, so a window a little shorter
    than the limiter's second is what the stamps can show exactly.
    """
    stamps = sorted(stamps)
    return max(
        sum(1 for s in stamps[i:] if s - start < span) for i, start in enumerate(stamps)
    )


def test_two_processes_share_one_limit_through_redis():
    redis.Redis.from_url(REDIS_URL).ping()
    key = f"test-{uuid.uuid4().hex}"
    out = multiprocessing.get_context("spawn").Queue()
    workers = [
        multiprocessing.get_context("spawn").Process(target=_worker, args=(REDIS_URL, key, 15, out))
        for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    stamps = out.get(timeout=60) + out.get(timeout=60)
    for worker in workers:
        worker.join(timeout=10)

    assert len(stamps) == 30
    assert _busiest_second(stamps) <= 10
    # 30 calls at 10 per second: the first 10 at once, the rest in two more windows.
    assert max(stamps) - min(stamps) == pytest.approx(2.0, abs=0.4)


def test_memory_limiter_and_timeout():
    limiter = RateLimiter("2/second", "memory://")
    limiter.acquire("k")
    limiter.acquire("k")
    with pytest.raises(RateLimitTimeout, match="'k' under 2/second"):
        limiter.acquire("k", timeout=0.1)
    assert limiter.try_acquire("other")


def test_async_limiter_spaces_concurrent_calls():
    async def main():
        limiter = AsyncRateLimiter("5/second", REDIS_URL)
        key = f"async-{uuid.uuid4().hex}"
        stamps = []

        async def call():
            await limiter.acquire(key)
            stamps.append(time.time())

        await asyncio.gather(*(call() for _ in range(12)))
        return stamps

    stamps = asyncio.run(main())
    assert _busiest_second(stamps) <= 5
    assert max(stamps) - min(stamps) == pytest.approx(2.0, abs=0.4)
