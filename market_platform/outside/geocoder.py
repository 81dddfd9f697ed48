"""Reverse geocoding against a Nominatim-compatible server, within its rate limit.

Every request, retries included, first takes a slot from the shared limiter
(``market_platform.ratelimit``, in Redis when configured), so "one per second" holds for all
workers together. 429, 5xx, timeouts and dropped connections are asked again after a pause
that doubles (or the server's ``Retry-After``), within ``max_wait`` seconds per address.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from urllib.parse import urlparse

import httpx
from tenacity import (
    RetryError,
    Retrying,
    retry_if_exception_type,
    stop_before_delay,
    wait_exponential,
)

from market_platform.errors import InputError
from market_platform.ratelimit import RateLimiter

logger = logging.getLogger(__name__)

#: Spacing beyond the rate, see ``RateLimiter.margin``: 5% of a second is 50 ms of tolerance
#: for requests that take different times to reach the server.
RATE_MARGIN = 0.05

# Nominatim's address keys for what OSM calls addr:street, in the order we trust them; a
# shop on a market square or in a pedestrian zone has no "road".
_STREET_KEYS = ("road", "pedestrian", "square", "footway", "path", "place")
_CITY_KEYS = ("city", "town", "village", "municipality", "hamlet")


class GeocodeError(InputError):
    """The geocoder could not answer; the message names the server and the coordinates."""


class _Refused(Exception):
    def __init__(self, reason: str, retry_after: float | None = None):
        super().__init__(reason)
        self.retry_after = retry_after


@dataclass(frozen=True)
class Address:
    found: bool
    street: str | None = None
    housenumber: str | None = None
    postcode: str | None = None
    city: str | None = None


def parse_reverse(document: object) -> Address:
    """An ``Address`` from a ``/reverse?format=jsonv2`` answer; ``found=False`` for
    ``{"error": "Unable to geocode"}`` and answers without an address."""
    if not isinstance(document, dict) or "error" in document:
        return Address(found=False)
    parts = document.get("address")
    if not isinstance(parts, dict) or not parts:
        return Address(found=False)
    return Address(
        found=True,
        street=_first(parts, _STREET_KEYS),
        housenumber=_first(parts, ("house_number",)),
        postcode=_first(parts, ("postcode",)),
        city=_first(parts, _CITY_KEYS),
    )


def _first(parts: dict, keys: tuple[str, ...]) -> str | None:
    for key in keys:
        value = str(parts.get(key) or "").strip()
        if value:
            return value
    return None


class Geocoder:
    """``reverse(lat, lon)`` against ``url`` (the server's base, e.g.
    ``https://nominatim.openstreetmap.org``), at most ``rate`` requests across all workers."""

    def __init__(
        self,
        url: str,
        *,
        rate: str,
        user_agent: str,
        timeout: float,
        max_wait: float,
        limiter_url: str | None = None,
        backoff: float = 2.0,
    ):
        self.url = url.rstrip("/")
        self.max_wait = max_wait
        self.backoff = backoff
        limiter_args = {"url": limiter_url} if limiter_url else {}
        self.limiter = RateLimiter(rate, margin=RATE_MARGIN, **limiter_args)
        self.limit_key = f"geocoder:{urlparse(self.url).netloc}"
        self.requests = 0
        self._http = httpx.Client(
            headers={"User-Agent": user_agent}, timeout=httpx.Timeout(timeout)
        )

    def __enter__(self) -> Geocoder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def reverse(self, lat: float, lon: float) -> Address:
        """The address at (``lat``, ``lon``); ``found=False`` when the server knows none.

        Raises:
            GeocodeError: the server kept refusing for ``max_wait`` seconds or answered an
                error other than "not found".
        """
        place = f"{lat:.5f},{lon:.5f}"
        retrying = Retrying(
            retry=retry_if_exception_type(_Refused),
            stop=stop_before_delay(self.max_wait),
            wait=_server_or_exponential(self.backoff),
            before_sleep=lambda state: logger.warning(
                f"geocoder {self.url} refused ({state.outcome.exception()}); "
                f"asking again in {state.upcoming_sleep:.1f} s"
            ),
        )
        try:
            return parse_reverse(retrying(self._ask, lat, lon, place))
        except RetryError as error:
            raise GeocodeError(
                f"{self.url} at {place}",
                f"kept refusing: {error.last_attempt.attempt_number} attempts within "
                f"{self.max_wait:g} s (GEOCODER_MAX_WAIT), last: "
                f"{error.last_attempt.exception()}",
            ) from None

    def _ask(self, lat: float, lon: float, place: str) -> object:
        self.limiter.acquire(self.limit_key)
        self.requests += 1
        params = {
            "format": "jsonv2", "lat": f"{lat:.7f}", "lon": f"{lon:.7f}",
            "zoom": 18, "addressdetails": 1, "layer": "address",
        }
        try:
            response = self._http.get(f"{self.url}/reverse", params=params)
        except httpx.TimeoutException:
            raise _Refused("no answer in time (GEOCODER_TIMEOUT)") from None
        except httpx.TransportError as error:
            raise _Refused(f"{type(error).__name__}: {error}") from None

        if response.status_code == 429 or response.status_code >= 500:
            raise _Refused(f"HTTP {response.status_code}", _retry_after(response))
        if response.status_code != 200:
            raise GeocodeError(
                f"{self.url} at {place}",
                f"answered HTTP {response.status_code}: {response.text[:200]}",
            )
        try:
            return response.json()
        except ValueError:
            raise GeocodeError(
                f"{self.url} at {place}", f"answered no JSON: {response.text[:200]!r}"
            ) from None


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return float(response.headers.get("Retry-After", ""))
    except ValueError:
        return None


class _server_or_exponential(wait_exponential):  # noqa: N801 - a tenacity wait strategy
    """The server's ``Retry-After`` when it sends one, else a doubling pause."""

    def __init__(self, backoff: float):
        super().__init__(multiplier=backoff, max=backoff * 32)

    def __call__(self, retry_state) -> float:
        exception = retry_state.outcome.exception()
        if isinstance(exception, _Refused) and exception.retry_after is not None:
            return exception.retry_after
        return super().__call__(retry_state)
