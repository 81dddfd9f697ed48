"""Asset checks on the tables of the main job; each reads the table as it is in the database."""

from __future__ import annotations

import dagster as dg
import sqlalchemy as sa

from market_platform.defs.markets import market_regions, markets, regional_statistics
from market_platform.defs.resources import MarketDatabase
from market_platform.markets.store import markets_table
from market_platform.regions import store as region_store
from market_platform.regions.statistics import totals_agree

# Germany's bounding box with a margin for the border polygons' simplification.
GERMANY_BBOX = (5.8, 47.2, 15.1, 55.1)


@dg.asset_check(asset=markets, description="(osm_type, osm_id) is unique in markets")
def markets_keys_unique(market_db: MarketDatabase) -> dg.AssetCheckResult:
    query = (
        sa.select(markets_table.c.osm_type, markets_table.c.osm_id, sa.func.count())
        .group_by(markets_table.c.osm_type, markets_table.c.osm_id)
        .having(sa.func.count() > 1)
    )
    with market_db.engine.connect() as conn:
        duplicates = conn.execute(query).all()
    return dg.AssetCheckResult(
        passed=not duplicates,
        metadata={"duplicate_keys": [f"{t}/{i}" for t, i, _ in duplicates[:20]]},
    )


@dg.asset_check(asset=markets, description="every open market lies inside Germany's bounds")
def markets_inside_germany(market_db: MarketDatabase) -> dg.AssetCheckResult:
    min_lon, min_lat, max_lon, max_lat = GERMANY_BBOX
    table = markets_table.c
    query = sa.select(table.osm_type, table.osm_id, table.lon, table.lat).where(
        table.status == "open",
        sa.or_(table.lon < min_lon, table.lon > max_lon, table.lat < min_lat, table.lat > max_lat),
    )
    with market_db.engine.connect() as conn:
        outside = conn.execute(query).all()
    return dg.AssetCheckResult(
        passed=not outside,
        metadata={
            "outside": len(outside),
            "examples": [f"{t}/{i} at {lon:.5f},{lat:.5f}" for t, i, lon, lat in outside[:20]],
        },
    )


@dg.asset_check(asset=market_regions, description="every open market has a Kreis and a Land")
def every_market_assigned(market_db: MarketDatabase) -> dg.AssetCheckResult:
    table = region_store.market_regions_table.c
    query = sa.select(table.osm_type, table.osm_id).where(table.kreis_ags.is_(None))
    with market_db.engine.connect() as conn:
        unassigned = conn.execute(query).all()
        total = conn.execute(sa.select(sa.func.count()).select_from(
            region_store.market_regions_table)).scalar_one()
    return dg.AssetCheckResult(
        passed=not unassigned,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "markets": total,
            "unassigned": len(unassigned),
            "examples": [f"{t}/{i}" for t, i in unassigned[:20]],
        },
    )


@dg.asset_check(
    asset=regional_statistics,
    description="Germany = sum of the Länder = sum of the Kreise, and keys are unique",
)
def statistics_add_up(market_db: MarketDatabase) -> dg.AssetCheckResult:
    engine = market_db.engine
    with engine.connect() as conn:
        latest = conn.execute(sa.text(
            "SELECT snapshot_id FROM market_snapshots ORDER BY load_seq DESC LIMIT 1"
        )).scalar_one()
    stats = region_store.read_statistics(engine, latest)
    problems = totals_agree(stats)
    duplicated = int(stats.duplicated(["level", "ags"]).sum())
    germany_rows = int((stats["level"] == "germany").sum())
    return dg.AssetCheckResult(
        passed=not problems and duplicated == 0 and germany_rows == 1,
        metadata={
            "snapshot_id": latest,
            "columns_not_adding_up": dg.MetadataValue.json(problems),
            "duplicate_keys": duplicated,
            "germany_rows": germany_rows,
        },
    )


checks = [markets_keys_unique, markets_inside_germany, every_market_assigned, statistics_add_up]
