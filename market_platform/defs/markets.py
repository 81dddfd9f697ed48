"""Assets of the main job: an OSM extract becomes markets, their regions and statistics."""

import base64
import time
from dataclasses import asdict
from pathlib import Path

import dagster as dg
import geopandas as gpd
import pandas as pd

from market_platform import settings, sources
from market_platform.defs.resources import MarketDatabase
from market_platform.defs.work import CPU, IO, work
from market_platform.errors import InputError
from market_platform.markets import store as market_store
from market_platform.markets.header import extract_timestamp
from market_platform.markets.reading import read_markets
from market_platform.outside.areas import is_live
from market_platform.outside.live import describe_fetch, live_extract, overpass_metadata
from market_platform.regions import store as region_store
from market_platform.regions.assignment import assign_regions, require_some_inside
from market_platform.regions.loading import build_regions, load_kreise, load_population
from market_platform.regions.maps import markets_choropleth
from market_platform.regions import statistics as region_stats

GROUP = "markets"


class ExtractConfig(dg.Config):
    """Which extract to read; empty means the ``OSM_EXTRACT`` environment variable."""

    source: str = ""


class RegionsConfig(dg.Config):
    """Region and population inputs; empty means ``REGIONS_FILE`` / ``POPULATION_FILE``."""

    regions_file: str = ""
    population_file: str = ""


@dg.asset(group_name=GROUP, op_tags=work(IO), pool="downloads", kinds={"osm"})
def osm_extract(context: dg.AssetExecutionContext, config: ExtractConfig) -> dict:
    """The OpenStreetMap extract (.osm.pbf or Overpass JSON), from a local path or a URL.

    URLs are downloaded once into a cache keyed by the URL; the sha256 identifies the snapshot.
    ``overpass:<AGS key>`` or ``overpass:bbox=...`` queries Overpass live (docs/outside.md).
    """
    started = time.perf_counter()
    source = config.source or settings.osm_extract()
    live_metadata = {}
    if is_live(source):
        local, fetched = live_extract(source)
        live_metadata = overpass_metadata(fetched)
        context.log.info(describe_fetch(fetched))
    else:
        local = sources.fetch(source, settings.cache_dir())
    if not local.downloaded and not sources.is_url(local.source):
        local = sources.pin(local, settings.cache_dir())
    timestamp = extract_timestamp(local.path)

    context.log.info(
        f"extract {local.path.name}: {local.size / 1e6:.1f} MB, "
        f"{'downloaded' if local.downloaded else 'cached or local'}, "
        f"OSM timestamp {timestamp or 'unknown'}"
    )
    context.add_output_metadata({
        "source": local.source,
        # "path" would be overwritten by the IO manager's own entry for the pickle.
        "extract_path": dg.MetadataValue.path(str(local.path)),
        "size_bytes": local.size,
        "sha256": local.sha256,
        "osm_timestamp": timestamp.isoformat() if timestamp else "unknown",
        "downloaded": local.downloaded,
        "seconds": round(time.perf_counter() - started, 2),
        **live_metadata,
    })
    return {**asdict(local), "osm_timestamp": timestamp}


@dg.asset(group_name=GROUP, op_tags=work(CPU), kinds={"pandas"})
def osm_markets(context: dg.AssetExecutionContext, osm_extract: dict) -> dict:
    """Markets parsed from the extract: supermarkets, convenience stores, bakeries, markets...

    One row per market; a shop node inside a building carrying the same shop is one market.
    """
    started = time.perf_counter()
    try:
        result = read_markets(osm_extract["path"])
    except InputError as error:
        # Name the input as the user gave it, not the pinned or cached copy that was read.
        source = osm_extract["source"]
        hint = ""
        if sources.is_url(source):
            hint = f" (cached at {osm_extract['path']}; delete that file to download again)"
        raise InputError(source, error.problem + hint) from None
    markets = result.markets
    seconds = time.perf_counter() - started

    by_type = markets["market_type"].value_counts().sort_index()
    context.log.info(
        f"read {len(markets)} markets from {Path(osm_extract['path']).name} in {seconds:.1f} s; "
        f"{len(result.duplicates_removed)} node-in-building duplicates removed, "
        f"excluded {result.excluded}"
    )
    context.add_output_metadata({
        "rows": len(markets),
        "by_type": dg.MetadataValue.md(by_type.to_frame("markets").to_markdown()),
        "duplicates_removed": len(result.duplicates_removed),
        "excluded": dg.MetadataValue.json(dict(result.excluded)),
        "source_format": result.source_format,
        "seconds": round(seconds, 2),
        "preview": dg.MetadataValue.md(markets.head(10).to_markdown(index=False)),
    })
    snapshot = market_store.Snapshot(
        sha256=osm_extract["sha256"],
        source=osm_extract["source"],
        source_format=result.source_format,
        size_bytes=osm_extract["size"],
        osm_timestamp=result.osm_timestamp or osm_extract["osm_timestamp"],
    )
    return {"snapshot": snapshot, "markets": markets, "bbox": result.bbox}


# Reads the regions too: a broken regions file, or an extract that lies outside them, must
# fail the run before anything is written.
@dg.asset(group_name=GROUP, op_tags=work(IO), pool="market_db", kinds={"sql"})
def markets(
    context: dg.AssetExecutionContext,
    market_db: MarketDatabase,
    osm_markets: dict,
    regions: gpd.GeoDataFrame,
) -> dict:
    """The ``markets`` table, upserted on (osm_type, osm_id), and its ``market_changes`` history.

    Markets missing from a new extract are kept with status ``closed``. An extract none of
    whose markets lies in Germany, or one that would close more than
    ``MARKET_PLATFORM_MAX_CLOSED_SHARE`` of the open markets, is refused.
    """
    started = time.perf_counter()
    snapshot = osm_markets["snapshot"]
    placed = assign_regions(osm_markets["markets"], regions)
    require_some_inside(placed, snapshot.source, settings.regions_file())
    applied = market_store.apply_snapshot(
        market_db.engine, snapshot, osm_markets["markets"], settings.max_closed_share()
    )
    seconds = time.perf_counter() - started

    if applied.baseline:
        context.log.info(f"first extract: {applied.markets} markets form the baseline")
    else:
        context.log.info(
            f"{applied.markets} markets: {applied.opened} new, {applied.changed} changed, "
            f"{applied.closed} closed since snapshot {applied.previous_snapshot_id}"
        )
    context.add_output_metadata({
        "rows": applied.markets,
        "markets_new": applied.opened,
        "markets_changed": applied.changed,
        "markets_closed": applied.closed,
        "baseline": applied.baseline,
        "snapshot_id": applied.snapshot_id,
        "previous_snapshot_id": applied.previous_snapshot_id or "",
        "database": market_db.safe_url,
        "seconds": round(seconds, 2),
    })
    return {**asdict(applied), "bbox": osm_markets["bbox"]}


@dg.asset(group_name=GROUP, op_tags=work(IO), pool="downloads", kinds={"geopandas"})
def regions(context: dg.AssetExecutionContext, config: RegionsConfig) -> gpd.GeoDataFrame:
    """German Kreise with AGS keys, population and area; the Länder follow from the keys."""
    started = time.perf_counter()
    cache = settings.cache_dir()
    kreise_file = sources.fetch(config.regions_file or settings.regions_file(), cache)
    population_file = sources.fetch(config.population_file or settings.population_file(), cache)

    kreise = load_kreise(kreise_file.path, kreise_file.source)
    population = load_population(population_file.path, population_file.source)
    result = build_regions(kreise, population, population_file.source)

    context.log.info(
        f"{len(result)} Kreise in {result['land_ags'].nunique()} Länder, "
        f"{result['population'].sum():,} inhabitants"
    )
    context.add_output_metadata({
        "kreise": len(result),
        "laender": int(result["land_ags"].nunique()),
        "population": int(result["population"].sum()),
        "regions_file": kreise_file.source,
        "regions_sha256": kreise_file.sha256,
        "population_file": population_file.source,
        "population_sha256": population_file.sha256,
        "seconds": round(time.perf_counter() - started, 2),
    })
    return result


@dg.asset(group_name=GROUP, op_tags=work(CPU), pool="market_db", kinds={"sql"})
def market_regions(
    context: dg.AssetExecutionContext,
    market_db: MarketDatabase,
    markets: dict,
    regions: gpd.GeoDataFrame,
) -> pd.DataFrame:
    """Each open market's Kreis and Land (AGS keys), one region per market.

    On a border the lowest AGS wins; markets just outside the simplified coastline or border
    go to the nearest Kreis within 2 km; anything farther stays unassigned and is reported.
    """
    started = time.perf_counter()
    open_markets = market_store.read_open_markets(market_db.engine)
    assigned = assign_regions(open_markets, regions)
    region_store.replace_market_regions(market_db.engine, markets["snapshot_id"], assigned)

    counts = assigned["assignment"].value_counts().to_dict()
    unassigned = assigned[assigned["assignment"] == "unassigned"]
    if not unassigned.empty:
        context.log.warning(
            f"{len(unassigned)} markets lie outside every Kreis: "
            + ", ".join(f"{t}/{i}" for t, i in unassigned[["osm_type", "osm_id"]].values[:20])
        )
    context.log.info(f"placed {len(assigned)} markets: {counts}")
    context.add_output_metadata({
        "rows": len(assigned),
        "inside": int(counts.get("inside", 0)),
        "border": int(counts.get("border", 0)),
        "nearest": int(counts.get("nearest", 0)),
        "unassigned": int(counts.get("unassigned", 0)),
        "kreise_with_markets": int(assigned["kreis_ags"].nunique()),
        "seconds": round(time.perf_counter() - started, 2),
    })
    return assigned


@dg.asset(group_name=GROUP, op_tags=work(CPU), pool="market_db", kinds={"sql"})
def regional_statistics(
    context: dg.AssetExecutionContext,
    market_db: MarketDatabase,
    markets: dict,
    market_regions: pd.DataFrame,
    regions: gpd.GeoDataFrame,
) -> None:
    """Markets per Kreis, Land and Germany: by type, per 10,000 inhabitants, per km², the
    share of the five largest brands, and the change since the previous extract."""
    started = time.perf_counter()
    engine = market_db.engine
    open_markets = market_store.read_open_markets(engine)
    placed = open_markets.merge(market_regions, on=["osm_type", "osm_id"], how="left")

    kreise = region_stats.covered_kreise(regions, markets["bbox"], placed["kreis_ags"])
    previous = region_store.read_statistics(engine, markets["previous_snapshot_id"])
    stats = region_stats.regional_statistics(placed, regions, kreise, previous)
    region_store.replace_statistics(
        engine, markets["snapshot_id"], stats, markets["previous_snapshot_id"]
    )

    germany = stats[stats["level"] == "germany"].iloc[0]
    kreis_stats = stats[stats["level"] == "kreis"]
    png = markets_choropleth(regions, kreis_stats, "Markets per 10,000 inhabitants per Kreis")
    map_path = settings.data_dir() / "maps" / f"markets_per_10k_{markets['snapshot_id']}.png"
    map_path.parent.mkdir(parents=True, exist_ok=True)
    map_path.write_bytes(png)

    context.log.info(
        f"statistics for {len(kreis_stats)} Kreise, "
        f"{int((stats['level'] == 'land').sum())} Länder: {int(germany['markets'])} markets, "
        f"{germany['markets_per_10k']:.3f} per 10,000 inhabitants"
    )
    top = kreis_stats.sort_values("markets", ascending=False).head(15)
    context.add_output_metadata({
        "rows": len(stats),
        "kreise": len(kreis_stats),
        "laender": int((stats["level"] == "land").sum()),
        "markets": int(germany["markets"]),
        "markets_per_10k": float(germany["markets_per_10k"]),
        "choropleth": dg.MetadataValue.md(
            f"![markets per 10,000 inhabitants](data:image/png;base64,"
            f"{base64.b64encode(png).decode()})"
        ),
        "choropleth_path": dg.MetadataValue.path(str(map_path)),
        "top_kreise": dg.MetadataValue.md(
            top[["ags", "name", "markets", "markets_per_10k", "top_brands"]]
            .to_markdown(index=False)
        ),
        "seconds": round(time.perf_counter() - started, 2),
    })

