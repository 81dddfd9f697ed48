"""The additions to ``market_platform.ratelimit`` the outside clients rely on: even spacing
with a margin, and the exclusive lock per key."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from market_platform.ratelimit import LockTimeout, RateLimiter, exclusive
from market_platform_tests.outside.conftest import REDIS_URL


@pytest.mark.parametrize("url", ["memory://", REDIS_URL])
def test_margin_spaces_calls_evenly(url):
    limiter = RateLimiter("10/second", url, margin=0.2)
    key = f"spacing-{uuid.uuid4().hex}"
    stamps = []
    for _ in range(6):
        limiter.acquire(key)
        stamps.append(time.monotonic())
    # 10 per second with 20% margin: call i gets the slot 0.12 * i s after the first, where
    # the window alone would let all six pass at once. Waking from a sleep takes a little
    # longer each time, so single gaps vary by a few ms; the slots themselves do not drift.
    offsets = [stamp - stamps[0] for stamp in stamps]
    assert all(offset >= 0.12 * i - 0.01 for i, offset in enumerate(offsets)), offsets


@pytest.mark.parametrize("url", ["memory://", REDIS_URL], ids=["file", "redis"])
def test_exclusive_waits_for_the_holder_and_times_out(url):
    key = f"lock-{uuid.uuid4().hex}"
    held, release = threading.Event(), threading.Event()

    def holder():
        with exclusive(key, timeout=5, lease=30, url=url):
            held.set()
            release.wait(10)

    thread = threading.Thread(target=holder)
    thread.start()
    held.wait(5)
    try:
        with pytest.raises(LockTimeout, match=key):
            with exclusive(key, timeout=0.3, lease=30, url=url):
                pass
    finally:
        release.set()
        thread.join(10)
    with exclusive(key, timeout=1, lease=30, url=url) as waited:
        assert waited < 1
