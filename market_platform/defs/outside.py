"""Outside APIs on Dagster: live Overpass data per Land and addresses by reverse geocoding.

* ``overpass_land_markets`` (16 static partitions, one per Land): the Land's markets queried
  live from ``OVERPASS_URL`` into ``$MARKET_PLATFORM_CACHE_DIR/overpass/area-<key>.json``. In
  the pool ``overpass`` (one step at a time with the default pool limit of 1), one Land per
  run, so a backfill of all 16 is 16 runs one after the other; the client itself also holds
  one lock per endpoint across processes. ``OSM_EXTRACT=overpass:<key>`` reads that file
  from the cache.
* ``market_addresses``: reverse geocoding (``GEOCODER_URL``) of the open markets that lack
  street or house number, at most ``GEOCODER_RATE`` across all workers; answers are kept in
  the market database, so only markets at new coordinates cost a request.
  ``market_addresses_sensor`` starts it after every materialization of ``markets``.
"""

import time

import dagster as dg
import sqlalchemy as sa

from market_platform.defs.resources import MarketDatabase
from market_platform.defs.work import IO, work
from market_platform.markets.store import GEOCODED_FIELDS, markets_table
from market_platform.outside import addresses, config
from market_platform.outside.geocoder import Geocoder
from market_platform.outside.live import describe_fetch, live_extract, overpass_metadata
from market_platform.regions.loading import LAENDER

GROUP = "outside"
#: Run tag of the Overpass runs, for a run-level limit in dagster.yaml (docs/outside.md).
OVERPASS_RUN_TAG = "market_platform/overpass"

laender = dg.StaticPartitionsDefinition(sorted(LAENDER))


@dg.asset(
    group_name=GROUP,
    partitions_def=laender,
    backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=1),
    pool="overpass",
    op_tags=work(IO),
    kinds={"overpass"},
)
def overpass_land_markets(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    """The markets of one Land (partition = AGS key), live from Overpass as Overpass JSON.

    Queried in tiles of ``OVERPASS_TILE_DEGREES`` one after the other, merged without
    duplicates, clipped to the Land by the region rules; answers are cached for
    ``OVERPASS_CACHE_TTL`` seconds, so ``OSM_EXTRACT=overpass:<key>`` then costs no request.
    """
    local, fetched = live_extract(f"overpass:{context.partition_key}")
    context.log.info(describe_fetch(fetched))
    return dg.MaterializeResult(metadata={
        "path": dg.MetadataValue.path(str(local.path)),
        "source": local.source,
        "size_bytes": local.size,
        "sha256": local.sha256,
        "osm_timestamp": fetched.document["osm3s"]["timestamp_osm_base"] or "unknown",
        "seconds": round(fetched.seconds, 2),
        **overpass_metadata(fetched),
    })


@dg.asset(
    group_name=GROUP,
    deps=["markets"],
    pool="geocoder",
    op_tags=work(IO),
    kinds={"nominatim", "sql"},
    check_specs=[dg.AssetCheckSpec("osm_addresses_kept", asset="market_addresses")],
)
def market_addresses(context: dg.AssetExecutionContext, market_db: MarketDatabase):
    """Addresses for open markets without street or house number, by reverse geocoding.

    Written to the ``geocoded_*`` columns of ``markets`` with ``address_source`` (``osm``,
    ``geocoded``, ``not_found``); an address mapped in OSM is never replaced. Every answer is
    kept in ``geocoded_addresses`` by coordinates rounded to about 1 m.
    """
    started = time.perf_counter()
    with Geocoder(
        config.geocoder_url(),
        rate=config.geocoder_rate(),
        user_agent=config.user_agent(),
        timeout=config.geocoder_timeout(),
        max_wait=config.geocoder_max_wait(),
    ) as geocoder:
        report = addresses.geocode_markets(
            market_db.engine, geocoder.reverse, geocoder.url, context.log.info
        )
        requests = geocoder.requests
    seconds = time.perf_counter() - started

    context.log.info(
        f"{report.geocoded} markets with a geocoded address, {report.not_found} without; "
        f"{report.asked} points asked in {requests} requests, {report.cache_hits} known, "
        f"{seconds:.1f} s"
    )
    yield dg.MaterializeResult(metadata={
        "markets": report.markets,
        "with_osm_address": report.with_osm_address,
        "needing_address": report.needing_address,
        "geocoded": report.geocoded,
        "not_found": report.not_found,
        "points": report.points,
        "cache_hits": report.cache_hits,
        "points_asked": report.asked,
        "requests": requests,
        "geocoder": config.geocoder_url(),
        "rate": config.geocoder_rate(),
        "seconds": round(seconds, 2),
    })
    yield _osm_addresses_kept(market_db)


def _osm_addresses_kept(market_db: MarketDatabase) -> dg.AssetCheckResult:
    table = markets_table.c
    has_osm = sa.and_(table.street.is_not(None), table.housenumber.is_not(None))
    geocoded_any = sa.or_(*(getattr(table, name).is_not(None) for name in GEOCODED_FIELDS))
    overwritten = sa.select(sa.func.count()).where(
        table.status == "open", has_osm,
        sa.or_(table.address_source != addresses.OSM, geocoded_any),
    )
    unmarked = sa.select(sa.func.count()).where(
        table.status == "open", table.address_source.is_(None)
    )
    with market_db.engine.connect() as conn:
        wrong = conn.execute(overwritten).scalar_one()
        missing = conn.execute(unmarked).scalar_one()
    return dg.AssetCheckResult(
        check_name="osm_addresses_kept",
        passed=wrong == 0 and missing == 0,
        metadata={"osm_address_with_geocoded_fields": wrong, "open_without_source": missing},
    )


overpass_job = dg.define_asset_job(
    "overpass_job",
    selection=[overpass_land_markets],
    tags={OVERPASS_RUN_TAG: "live"},
    description="The markets of one Land live from Overpass; backfill it one Land per run.",
)

market_addresses_job = dg.define_asset_job(
    "market_addresses_job",
    selection=[market_addresses],
    description="Reverse geocoding of markets without street or house number.",
)


@dg.asset_sensor(
    asset_key=dg.AssetKey("markets"),
    job=market_addresses_job,
    name="market_addresses_sensor",
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Geocodes the markets without address after each new state of `markets`.",
)
def market_addresses_sensor(context: dg.SensorEvaluationContext, asset_event):
    # One run per materialization of markets: the run that wrote it names it.
    return dg.RunRequest(run_key=f"markets:{asset_event.run_id}")


assets = [overpass_land_markets, market_addresses]
asset_checks: list = []
jobs = [overpass_job, market_addresses_job]
schedules: list = []
sensors = [market_addresses_sensor]
