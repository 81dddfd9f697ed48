"""The one Definitions object of market_platform; ``workspace.yaml`` points here."""

from __future__ import annotations

import warnings

import dagster as dg

# The occupancy assets backfill a month in one run; the parameter is marked beta, and the
# warning would otherwise be printed once per step process. Set before the assets are defined.
warnings.filterwarnings("ignore", message="Parameter `backfill_policy`", category=dg.BetaWarning)

from market_platform import settings  # noqa: E402
from market_platform.defs import market_automation, market_checks, occupancy, outside  # noqa
from market_platform.defs import outreach  # noqa: E402
from market_platform.defs import markets as market_assets  # noqa: E402
from market_platform.defs.io import RunScopedFilesystemIOManager  # noqa: E402
from market_platform.defs.resources import MarketDatabase  # noqa: E402
from market_platform.execution import executor_for  # noqa: E402


def build_defs(market_db_url: str | None = None, io_dir: str | None = None) -> dg.Definitions:
    """All assets, checks, jobs, schedules and sensors, bound to one market database.

    Arguments default to the environment (``MARKET_DB_URL``, ``MARKET_PLATFORM_IO_DIR``);
    tests pass their own.
    """
    return dg.Definitions(
        assets=[
            *dg.load_assets_from_modules([market_assets]), *occupancy.assets, *outside.assets,
            *outreach.assets,
        ],
        asset_checks=[*market_checks.checks, *occupancy.asset_checks, *outside.asset_checks,
                      *outreach.asset_checks],
        jobs=[market_automation.markets_job, *occupancy.jobs, *outside.jobs, *outreach.jobs],
        schedules=[market_automation.markets_schedule, *occupancy.schedules, *outside.schedules,
                   *outreach.schedules],
        sensors=[market_automation.osm_landing_sensor, *occupancy.sensors, *outside.sensors,
                 *outreach.sensors],
        # Jobs without their own (the UI's "Materialize" runs) use MARKET_PLATFORM_EXECUTOR.
        executor=executor_for(None),
        resources={
            "market_db": MarketDatabase(url=market_db_url or settings.market_db_url()),
            "io_manager": RunScopedFilesystemIOManager(
                base_dir=io_dir or str(settings.io_storage_dir())
            ),
            **outreach.resources,
        },
    )


defs = build_defs()
