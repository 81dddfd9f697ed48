"""The one Definitions object of market_platform; ``workspace.yaml`` points here."""

from __future__ import annotations

import warnings

import dagster as dg

from market_platform import settings
from market_platform.defs import market_automation, market_checks, occupancy
from market_platform.defs import markets as market_assets
from market_platform.defs.resources import MarketDatabase

# The occupancy assets backfill a month in one run; the parameter is marked beta, and the
# warning would otherwise be printed once per step process.
warnings.filterwarnings("ignore", message="Parameter `backfill_policy`", category=dg.BetaWarning)


def build_defs(market_db_url: str | None = None, io_dir: str | None = None) -> dg.Definitions:
    """All assets, checks, jobs, schedules and sensors, bound to one market database.

    Arguments default to the environment (``MARKET_DB_URL``, ``MARKET_PLATFORM_IO_DIR``);
    tests pass their own.
    """
    return dg.Definitions(
        assets=[*dg.load_assets_from_modules([market_assets]), *occupancy.assets],
        asset_checks=[*market_checks.checks, *occupancy.asset_checks],
        jobs=[market_automation.markets_job, *occupancy.jobs],
        schedules=[market_automation.markets_schedule, *occupancy.schedules],
        sensors=[market_automation.osm_landing_sensor, *occupancy.sensors],
        resources={
            "market_db": MarketDatabase(url=market_db_url or settings.market_db_url()),
            "io_manager": dg.FilesystemIOManager(
                base_dir=io_dir or str(settings.io_storage_dir())
            ),
        },
    )


defs = build_defs()
