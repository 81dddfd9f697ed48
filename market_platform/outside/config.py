"""Environment variables of the outside APIs, with the defaults documented in docs/outside.md."""

from __future__ import annotations

import os
from pathlib import Path

from market_platform import settings

DEFAULT_OVERPASS_URL = "https://overpass-api.de/api/interpreter"
DEFAULT_GEOCODER_URL = "https://nominatim.openstreetmap.org"
# Both public services ask for a User-Agent that says who is asking and how to reach them.
DEFAULT_USER_AGENT = "market_platform/0.1 (+https://github.com/market-platform)"


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name, "")
    try:
        return float(raw) if raw.strip() else default
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a number") from None


def user_agent() -> str:
    return os.environ.get("OUTSIDE_USER_AGENT") or DEFAULT_USER_AGENT


def overpass_url() -> str:
    return os.environ.get("OVERPASS_URL") or DEFAULT_OVERPASS_URL


def overpass_timeout() -> float:
    """Seconds one Overpass request may take; also the query's own ``[timeout:]``."""
    return _float("OVERPASS_TIMEOUT", 180.0)


def overpass_max_wait() -> float:
    """Seconds one area may spend waiting for slots and retrying before it fails."""
    return _float("OVERPASS_MAX_WAIT", 900.0)


def overpass_cache_ttl() -> float:
    return _float("OVERPASS_CACHE_TTL", 24 * 3600.0)


def overpass_tile_degrees() -> float:
    """Largest side of one query's bbox; larger areas are split into tiles of this size."""
    return _float("OVERPASS_TILE_DEGREES", 1.0)


def overpass_cache_dir() -> Path:
    return settings.cache_dir() / "overpass"


def geocoder_url() -> str:
    return os.environ.get("GEOCODER_URL") or DEFAULT_GEOCODER_URL


def geocoder_rate() -> str:
    """The provider's limit; Nominatim's usage policy allows one request per second."""
    return os.environ.get("GEOCODER_RATE") or "1/second"


def geocoder_timeout() -> float:
    return _float("GEOCODER_TIMEOUT", 30.0)


def geocoder_max_wait() -> float:
    """Seconds one address may spend in back-off after 429s and timeouts before it fails."""
    return _float("GEOCODER_MAX_WAIT", 300.0)
