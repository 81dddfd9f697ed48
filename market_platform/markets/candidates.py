"""What the format readers hand to the deduplication: one candidate per market object."""

from __future__ import annotations

import math
import reprlib
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

#: OSM ids are positive; the markets table keeps them as bigint, numpy as int64.
MAX_OSM_ID = 2**63 - 1

_DEGREES = {"latitude": 90, "longitude": 180}


class BadElement(ValueError):
    """One OSM object is unusable; the reader turns it into an ``InputError`` naming the file."""


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
    #: ``(osm_type, osm_id)`` of the objects with market tags, and of those found again.
    seen: set[tuple[str, int]] = field(default_factory=set)
    repeated: set[tuple[str, int]] = field(default_factory=set)

    def look_at(self, osm_type: str, osm_id: int) -> None:
        """Note an object with market tags, so that one listed twice can be reported.

        Raises:
            BadElement: ``osm_id`` is not an OSM id.
        """
        if not 0 < osm_id <= MAX_OSM_ID:
            # JOSM numbers objects it has not uploaded -1, -2, ... anew in every file: such
            # ids would mix up different shops from one snapshot to the next.
            hint = "; negative ones are objects an editor has not uploaded" if osm_id < 0 else ""
            raise BadElement(f"not an OSM id (OSM ids are 1 to 2**63 - 1{hint})")
        key = (osm_type, osm_id)
        if key in self.seen:
            self.repeated.add(key)
        self.seen.add(key)


def coordinate_problem(axis: str, value: object) -> str | None:
    """What is wrong with a ``"latitude"`` or ``"longitude"`` value in degrees; None if nothing."""
    # bool is an int to Python, and true is no latitude.
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"{axis} {reprlib.repr(value)} is not a number"
    if isinstance(value, float) and not math.isfinite(value):
        return f"{axis} {value} is not a finite number"
    limit = _DEGREES[axis]
    if not -limit <= value <= limit:
        return f"{axis} {reprlib.repr(value)} is outside -{limit}..{limit}"
    return None


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
