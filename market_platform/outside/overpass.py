"""A polite Overpass API client: one request at a time per endpoint, slots as the server says.

Etiquette of the public instances (wiki: Overpass_API#Public_Overpass_API_instances, and the
server's ``/api/status``): ask the status for a free slot and wait as long as it says, never
send two queries at once, back off on 429 (no slot) and 504 (server overloaded), put a timeout
on every request and say who is asking. Every answer is cached by query; an answer with a
``remark`` (a runtime error, a cut-off result) is neither cached nor used.
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass, field

import httpx
from tenacity import (
    RetryError,
    Retrying,
    retry_if_exception_type,
    stop_before_delay,
    wait_exponential,
)

from market_platform.errors import InputError
from market_platform.outside.cache import ResponseCache
from market_platform.ratelimit import LockTimeout, exclusive

logger = logging.getLogger(__name__)

# The status rounds to whole seconds; a little more makes the slot surely free when we ask.
_SLOT_EXTRA_S = 0.3
_FREE = re.compile(r"^(\d+) slots? available now", re.MULTILINE)
_LATER = re.compile(r"Slot available after: \S+, in (-?\d+) seconds?", re.MULTILINE)
_RATE = re.compile(r"^Rate limit: (\d+)", re.MULTILINE)


class OverpassError(InputError):
    """An area could not be fetched; the message names the area and the endpoint."""


class _Refused(Exception):
    """An answer worth asking again for: 429, 504, a timeout, a dropped connection."""


@dataclass(frozen=True)
class SlotStatus:
    free: bool
    #: Seconds until the next slot, when none is free now.
    wait_s: float
    #: Slots per client; 0 means the server sets no limit; None when the page does not say.
    rate_limit: int | None


def parse_status(text: str) -> SlotStatus:
    """Read ``/api/status``: "2 slots available now." or "Slot available after: ..., in 5
    seconds." (one line per busy slot)."""
    rate = _RATE.search(text)
    rate_limit = int(rate.group(1)) if rate else None
    free = _FREE.search(text)
    if rate_limit == 0 or (free and int(free.group(1)) > 0):
        return SlotStatus(True, 0.0, rate_limit)
    later = [max(int(seconds), 0) for seconds in _LATER.findall(text)]
    if later:
        return SlotStatus(False, float(min(later)), rate_limit)
    # Neither line: an instance without slot accounting; asking is then all we can do.
    return SlotStatus(True, 0.0, rate_limit)


def status_url(interpreter_url: str) -> str:
    base = interpreter_url.rstrip("/")
    return base.rsplit("/", 1)[0] + "/status"


@dataclass
class RequestStats:
    """What one fetch cost: requests sent (status pages included), answers from the cache."""

    requests: int = 0
    queries: int = 0
    cache_hits: int = 0
    retries: int = 0
    waited_s: float = 0.0
    refusals: list[str] = field(default_factory=list)


class OverpassClient:
    """Sends Overpass QL queries to ``url`` with the etiquette above.

    ``max_wait`` bounds the time one query may spend waiting for slots and retrying; after it
    the query fails with an ``OverpassError`` naming the area. ``backoff`` is the first pause
    after a refusal, doubled per further refusal.
    """

    def __init__(
        self,
        url: str,
        *,
        user_agent: str,
        timeout: float,
        max_wait: float,
        cache: ResponseCache | None,
        backoff: float = 5.0,
        lock_url: str | None = None,
    ):
        self.url = url
        self.timeout = timeout
        self.max_wait = max_wait
        self.cache = cache
        self.backoff = backoff
        self.lock_url = lock_url
        self._http = httpx.Client(
            headers={"User-Agent": user_agent}, timeout=httpx.Timeout(timeout)
        )

    def __enter__(self) -> OverpassClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def query(self, ql: str, area: str, stats: RequestStats | None = None) -> dict:
        """The parsed answer to ``ql``, from the cache when a fresh copy is there.

        Raises:
            OverpassError: the server kept refusing for ``max_wait`` seconds, answered with an
                error or a remark, or answered something that is not Overpass JSON.
        """
        stats = stats if stats is not None else RequestStats()
        if self.cache is not None and (body := self.cache.get(self.url, ql)) is not None:
            stats.cache_hits += 1
            return _document(body, area, f"cached answer of {self.url}")

        deadline = time.monotonic() + self.max_wait
        retrying = Retrying(
            retry=retry_if_exception_type(_Refused),
            stop=stop_before_delay(self.max_wait),
            wait=wait_exponential(multiplier=self.backoff, max=self.backoff * 16),
            before_sleep=lambda state: self._refused(state, area, stats),
        )
        try:
            body = retrying(self._attempt, ql, area, deadline, stats)
        except RetryError as error:
            last = error.last_attempt.exception()
            raise OverpassError(
                area,
                f"{self.url} kept refusing: {error.last_attempt.attempt_number} attempts within "
                f"{self.max_wait:g} s (OVERPASS_MAX_WAIT), last: {last}",
            ) from None

        document = _document(body, area, self.url)
        if self.cache is not None:
            self.cache.put(self.url, ql, body)
        return document

    def _refused(self, state, area: str, stats: RequestStats) -> None:
        stats.retries += 1
        reason = str(state.outcome.exception())
        stats.refusals.append(reason)
        logger.warning(
            f"Overpass refused {area} ({reason}); attempt {state.attempt_number}, "
            f"asking again in {state.upcoming_sleep:.1f} s"
        )

    def _attempt(self, ql: str, area: str, deadline: float, stats: RequestStats) -> bytes:
        remaining = max(deadline - time.monotonic(), 0.0)
        try:
            # Held from the status check to the end of the answer: two workers that both saw
            # a free slot would otherwise both take it.
            with exclusive(
                f"overpass:{self.url}", timeout=remaining,
                lease=self.timeout + remaining + 60, url=self.lock_url,
            ) as waited:
                stats.waited_s += waited
                self._wait_for_slot(area, deadline, stats)
                stats.requests += 1
                stats.queries += 1
                response = self._send(lambda: self._http.post(self.url, data={"data": ql}))
        except LockTimeout as error:
            raise OverpassError(area, f"{self.url}: {error}") from None

        if response.status_code in (429, 504):
            raise _Refused(f"HTTP {response.status_code}")
        if response.status_code != 200:
            raise OverpassError(
                area, f"{self.url} answered HTTP {response.status_code}: {_excerpt(response)}"
            )
        return response.content

    def _send(self, request) -> httpx.Response:
        try:
            return request()
        except httpx.TimeoutException:
            raise _Refused(f"no answer within {self.timeout:g} s (OVERPASS_TIMEOUT)") from None
        except httpx.TransportError as error:
            raise _Refused(f"{type(error).__name__}: {error}") from None

    def _wait_for_slot(self, area: str, deadline: float, stats: RequestStats) -> None:
        while True:
            stats.requests += 1
            response = self._send(lambda: self._http.get(status_url(self.url)))
            if response.status_code != 200:
                # Instances without a status page exist; the query's own 429 is the answer.
                return
            status = parse_status(response.text)
            if status.free:
                return
            pause = status.wait_s + _SLOT_EXTRA_S
            if time.monotonic() + pause > deadline:
                raise OverpassError(
                    area, f"{self.url} has no free slot for {status.wait_s:g} s, longer than "
                    f"the time left of OVERPASS_MAX_WAIT ({self.max_wait:g} s)"
                )
            logger.info(f"Overpass: no free slot for {area}, waiting {pause:.1f} s as told")
            stats.waited_s += pause
            time.sleep(pause)


def _document(body: bytes, area: str, origin: str) -> dict:
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise OverpassError(area, f"{origin} answered no JSON ({error}): {body[:200]!r}") from None
    if not isinstance(document, dict) or not isinstance(document.get("elements"), list):
        raise OverpassError(area, f"{origin} answered JSON that is not Overpass output")
    if document.get("remark"):
        raise OverpassError(
            area, f"{origin} answered with a remark, so the result may be cut off and is not "
            f"used or cached: {str(document['remark'])[:300]}"
        )
    return document


def _excerpt(response: httpx.Response) -> str:
    text = re.sub(r"<[^>]+>", " ", response.text)
    return " ".join(text.split())[:300]
