"""Read an OSM extract (PBF or Overpass JSON) into one row per market.

The entry point of the markets domain: ``read_markets(path)`` checks what the file is, hands it
to the reader of its format, removes shops mapped twice (node and outline) and returns the
rows with what is known about the extract. Everything that makes a file unusable is raised as
``InputError`` naming the file, and the element where there is one.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from market_platform.errors import InputError
from market_platform.markets.candidates import EXCLUSION_REASONS, Candidate
from market_platform.markets.dedupe import merge_nodes_into_areas
from market_platform.markets.overpass import read_overpass
from market_platform.markets.pbf import read_pbf
from market_platform.markets.tags import FIELD_KEYS, describe_market_tags

logger = logging.getLogger(__name__)

#: The columns of ``MarketsRead.markets``, in this order.
MARKET_COLUMNS = ["osm_type", "osm_id", "market_type", *FIELD_KEYS, "lon", "lat"]

PBF = "pbf"
OVERPASS_JSON = "overpass-json"

# Every PBF starts with the length of its first blob header (4 bytes, big-endian, below 64 KiB
# so the first two are zero), then that header's type field: tag 0x0a, length 9, "OSMHeader".
_PBF_MAGIC = b"\x0a\x09OSMHeader"
_PBF_START = 4 + len(_PBF_MAGIC)

#: How many objects found twice an error message names.
SHOWN_REPEATS = 5


@dataclass(frozen=True)
class MarketsRead:
    """The markets of one extract and what is known about the extract."""

    #: One row per market, columns ``MARKET_COLUMNS``, sorted by (osm_type, osm_id).
    markets: pd.DataFrame
    #: ``"pbf"`` or ``"overpass-json"``.
    source_format: str
    #: When the OSM data was taken (UTC), from the file's header; None if it does not say.
    osm_timestamp: datetime | None
    #: ``(min_lon, min_lat, max_lon, max_lat)``: the PBF header box (grown to take in markets
    #: outside it), else the markets' bbox.
    bbox: tuple[float, float, float, float]
    #: Shops mapped as a node and an outline: ``{"kept", "dropped", "market_type", "name"}``.
    duplicates_removed: list[dict]
    #: Objects with market tags that give no row, by reason (see ``EXCLUSION_REASONS``).
    excluded: dict[str, int]


def read_markets(path: str | Path) -> MarketsRead:
    """All markets of the OSM PBF or Overpass JSON file at ``path``.

    Raises:
        InputError: the file is missing, empty, truncated, of another format, not Overpass
            output, holds an object that is broken or listed twice, or holds no market at all.
    """
    path = Path(path)
    started = time.perf_counter()
    source_format = detect_format(path)
    extract = read_pbf(path) if source_format == PBF else read_overpass(path)
    if extract.repeated:
        raise InputError(path, _repeated_message(extract.repeated))

    candidates, duplicates = merge_nodes_into_areas(extract.candidates)
    if not candidates:
        raise InputError(path, f"no markets found ({describe_market_tags()})")
    markets = _frame(candidates)
    excluded = {reason: extract.excluded.get(reason, 0) for reason in EXCLUSION_REASONS}

    message = (
        f"read {len(markets)} markets from {path.name} ({source_format}) in "
        f"{time.perf_counter() - started:.2f} s; {len(duplicates)} node/outline duplicates "
        f"removed; excluded {excluded}"
    )
    logger.info(message)
    return MarketsRead(
        markets=markets,
        source_format=source_format,
        osm_timestamp=extract.osm_timestamp,
        bbox=_bbox(markets, extract.header_bbox),
        duplicates_removed=duplicates,
        excluded=excluded,
    )


def detect_format(path: Path) -> str:
    """``"pbf"`` or ``"overpass-json"`` from the first bytes, whatever the file is named."""
    if not path.exists():
        raise InputError(path, "file not found")
    if not path.is_file():
        raise InputError(path, "not a regular file")
    if path.stat().st_size == 0:
        raise InputError(path, "empty file (0 bytes)")
    with open(path, "rb") as handle:
        head = handle.read(64)

    if head[4:_PBF_START] == _PBF_MAGIC:
        return PBF
    if len(head) < _PBF_START and _starts_like_pbf(head):
        raise InputError(
            path, f"truncated OSM PBF: only {len(head)} bytes, less than a PBF's first header"
        )
    text = head.removeprefix(b"\xef\xbb\xbf").lstrip()
    if text.startswith((b"{", b"[")):
        return OVERPASS_JSON
    if text.startswith((b"<?xml", b"<osm")):
        raise InputError(path, "OSM XML is not supported: convert it to PBF (osmium cat)")
    raise InputError(
        path, f"neither an OSM PBF nor Overpass JSON file (it starts with {head[:8]!r})"
    )


def _starts_like_pbf(head: bytes) -> bool:
    return b"\x00\x00".startswith(head[:2]) and _PBF_MAGIC.startswith(head[4:])


def _repeated_message(repeated: set[tuple[str, int]]) -> str:
    # SQLite would keep the last copy and PostgreSQL refuse the insert (CardinalityViolation):
    # neither knows which copy is right, and neither says which file to look at.
    shown = [f"{osm_type} {osm_id}" for osm_type, osm_id in sorted(repeated)[:SHOWN_REPEATS]]
    more = ", ..." if len(repeated) > SHOWN_REPEATS else ""
    count = "1 object appears" if len(repeated) == 1 else f"{len(repeated)} objects appear"
    return (
        f"{count} more than once (an extract holds each object once): {', '.join(shown)}{more}"
    )


def _frame(candidates: list[Candidate]) -> pd.DataFrame:
    # Sorted and typed in plain Python and numpy: pandas' sort_values and astype took 3 to 4 ms
    # of a 20 ms read of a small extract.
    ordered = sorted(candidates, key=lambda candidate: (candidate.osm_type, candidate.osm_id))
    count = len(ordered)
    columns = {
        "osm_type": _objects(candidate.osm_type for candidate in ordered),
        "osm_id": np.fromiter((c.osm_id for c in ordered), dtype=np.int64, count=count),
        "market_type": _objects(candidate.market_type for candidate in ordered),
    }
    for field in FIELD_KEYS:
        columns[field] = _objects(candidate.fields[field] for candidate in ordered)
    # 7 decimals is OSM's own precision (1 cm); more digits would only be float noise.
    for axis in ("lon", "lat"):
        values = np.fromiter((getattr(c, axis) for c in ordered), dtype=np.float64, count=count)
        columns[axis] = values.round(7)
    return pd.DataFrame(columns, columns=MARKET_COLUMNS, copy=False)


def _objects(values) -> np.ndarray:
    return np.array(list(values), dtype=object)


def _bbox(markets: pd.DataFrame, header_bbox: tuple | None) -> tuple[float, float, float, float]:
    """The extract's bbox: the header's, grown where markets lie outside it.

    Growing matters: the München extract's header box (written by osmx) is smaller than its
    data, and a bbox that leaves out the file's own markets would mislead whoever clips or
    maps with it.
    """
    lon, lat = markets["lon"], markets["lat"]
    bbox = (float(lon.min()), float(lat.min()), float(lon.max()), float(lat.max()))
    if header_bbox is None:
        return bbox
    return (
        min(bbox[0], header_bbox[0]),
        min(bbox[1], header_bbox[1]),
        max(bbox[2], header_bbox[2]),
        max(bbox[3], header_bbox[3]),
    )
