"""Overpass as a live source of markets: one Kreis, Land or bbox becomes an Overpass JSON file.

``fetch_area`` queries the area tile by tile, merges the answers without duplicates (a building
on a tile edge comes back from both tiles) and keeps what belongs to the area.
``live_extract`` writes that as one Overpass JSON file, so the rest of the main job reads it
like any other extract. The file's content depends only on the data, so the same answers give
the same sha256 and the same snapshot.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd

from market_platform import settings, sources
from market_platform.outside import areas, config
from market_platform.outside.areas import Area
from market_platform.outside.cache import ResponseCache, write_atomically
from market_platform.outside.overpass import OverpassClient, RequestStats
from market_platform.outside.query import market_query
from market_platform.regions.loading import load_kreise

logger = logging.getLogger(__name__)

_TYPE_ORDER = {"node": 0, "way": 1, "relation": 2}


@dataclass
class AreaFetch:
    area: Area
    #: Overpass JSON of the area: merged, clipped and sorted by type and id.
    document: dict
    tiles: int
    #: Elements in all answers together, before merging and clipping.
    received: int
    duplicates: int
    outside_area: int
    stats: RequestStats
    seconds: float


def fetch_area(
    client: OverpassClient,
    area: Area,
    kreise: gpd.GeoDataFrame | None,
    tile_degrees: float,
) -> AreaFetch:
    """All market elements of ``area``, one query per tile, one tile after the other."""
    started = time.perf_counter()
    stats = RequestStats()
    boxes = areas.tiles(area, tile_degrees)
    merged: dict[tuple[str, int], dict] = {}
    received, timestamps = 0, []

    for number, tile in enumerate(boxes, start=1):
        document = client.query(market_query(tile, client.timeout), area.name, stats)
        elements = document["elements"]
        received += len(elements)
        for element in elements:
            merged.setdefault((element.get("type"), element.get("id")), element)
        if stamp := (document.get("osm3s") or {}).get("timestamp_osm_base"):
            timestamps.append(stamp)
        logger.info(f"{area.name}: tile {number}/{len(boxes)} gave {len(elements)} elements")

    unique = list(merged.values())
    kept = areas.clip(unique, area, kreise)
    kept.sort(key=lambda e: (_TYPE_ORDER.get(e.get("type"), 9), e.get("id", 0)))
    document = {
        "version": 0.6,
        "generator": f"market_platform live query of {area.source} from {client.url}",
        # The oldest tile's data time: the extract is at least as fresh as that.
        "osm3s": {"timestamp_osm_base": min(timestamps) if timestamps else None},
        "elements": kept,
    }
    return AreaFetch(
        area=area,
        document=document,
        tiles=len(boxes),
        received=received,
        duplicates=received - len(unique),
        outside_area=len(unique) - len(kept),
        stats=stats,
        seconds=time.perf_counter() - started,
    )


def overpass_client(cache_dir: Path | None = None, **overrides) -> OverpassClient:
    """A client configured from the environment (``OVERPASS_*``, ``OUTSIDE_USER_AGENT``)."""
    url = overrides.pop("url", None) or config.overpass_url()
    cache = ResponseCache(cache_dir or config.overpass_cache_dir(), config.overpass_cache_ttl())
    options = {
        "user_agent": config.user_agent(),
        "timeout": config.overpass_timeout(),
        "max_wait": config.overpass_max_wait(),
        "cache": cache,
        **overrides,
    }
    return OverpassClient(url, **options)


def load_area(source: str) -> tuple[Area, gpd.GeoDataFrame | None]:
    """The area named by ``source`` and the Kreise it is judged against (``REGIONS_FILE``)."""
    kreise = None
    if not source.removeprefix(areas.PREFIX).startswith("bbox="):
        regions = sources.fetch(settings.regions_file(), settings.cache_dir())
        kreise = load_kreise(regions.path, regions.source)
    return areas.parse(source, kreise), kreise


def live_extract(source: str) -> tuple[sources.LocalFile, AreaFetch]:
    """Fetch the area named by ``source`` (``overpass:09162``...) into an Overpass JSON file.

    The file lands in ``$MARKET_PLATFORM_CACHE_DIR/overpass/area-<key>.json``; repeated calls
    within ``OVERPASS_CACHE_TTL`` answer from the cache without a single request.
    """
    area, kreise = load_area(source)
    with overpass_client() as client:
        fetched = fetch_area(client, area, kreise, config.overpass_tile_degrees())
    return write_extract(fetched, config.overpass_cache_dir()), fetched


def write_extract(fetched: AreaFetch, folder: Path) -> sources.LocalFile:
    body = json.dumps(fetched.document, ensure_ascii=False, separators=(",", ":")).encode()
    path = Path(folder) / f"area-{fetched.area.key}.json"
    write_atomically(path, body)
    return sources.LocalFile(
        source=fetched.area.source,
        path=path.resolve(),
        size=len(body),
        sha256=sources.sha256_of(path),
        downloaded=fetched.stats.queries > 0,
    )


def describe_fetch(fetched: AreaFetch) -> str:
    """One log line: what the area cost and what it gave."""
    stats = fetched.stats
    return (
        f"{fetched.area.name}: {len(fetched.document['elements'])} elements from "
        f"{fetched.tiles} tiles in {fetched.seconds:.1f} s; {stats.queries} queries and "
        f"{stats.requests - stats.queries} status checks sent, {stats.cache_hits} answers "
        f"from the cache, {stats.retries} refusals, {stats.waited_s:.1f} s waited for slots; "
        f"{fetched.duplicates} duplicates merged, {fetched.outside_area} outside the area"
    )


def overpass_metadata(fetched: AreaFetch) -> dict[str, int | float | str]:
    """Figures of a fetch for asset metadata (plain values, no Dagster types)."""
    stats = fetched.stats
    return {
        "overpass_area": fetched.area.name,
        "overpass_elements": len(fetched.document["elements"]),
        "overpass_tiles": fetched.tiles,
        "overpass_queries": stats.queries,
        "overpass_requests": stats.requests,
        "overpass_cache_hits": stats.cache_hits,
        "overpass_refusals": stats.retries,
        "overpass_waited_s": round(stats.waited_s, 1),
        "overpass_duplicates_merged": fetched.duplicates,
        "overpass_outside_area": fetched.outside_area,
    }
