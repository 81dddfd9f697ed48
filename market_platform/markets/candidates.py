"""What the format readers hand to the deduplication: one candidate per market object."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

from shapely.geometry.base import BaseGeometry

from market_platform.markets.tags import CLOSED, LIFECYCLE

# Why an object that carries market tags gives no market row.
UNCLOSED_WAY = "unclosed_way"
NOT_MULTIPOLYGON = "not_multipolygon"
NO_GEOMETRY = "no_geometry"

#: Every key of ``MarketsRead.excluded``, present with 0 so that logs and metadata line up.
EXCLUSION_REASONS = (LIFECYCLE, CLOSED, UNCLOSED_WAY, NOT_MULTIPOLYGON, NO_GEOMETRY)


@dataclass(slots=True)
class Candidate:
    osm_type: str
    osm_id: int
    market_type: str
    fields: dict[str, str | None]
    lon: float
    lat: float
    #: The outline of a way or relation market; None for nodes and for Overpass centres.
    area: BaseGeometry | None = None


@dataclass
class Extract:
    """The candidates of one file, with what its header says and what was left out."""

    candidates: list[Candidate]
    excluded: Counter = field(default_factory=Counter)
    osm_timestamp: datetime | None = None
    header_bbox: tuple[float, float, float, float] | None = None


def parse_timestamp(value: str | None) -> datetime | None:
    """An OSM ISO timestamp (``2020-07-20T12:44:03Z``) as an aware UTC datetime, or None."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        # OSM timestamps are UTC by definition, also when a writer left out the zone.
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)
