"""The main job, its weekly schedule and the sensor on the OSM landing folder."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import dagster as dg

from market_platform import settings
from market_platform.execution import executor_for

#: Run tag limited to one run at a time in dagster.yaml and deploy/dagster.yaml.
RUN_TAG = "market_platform/market_tables"

markets_job = dg.define_asset_job(
    "markets_job",
    selection=dg.AssetSelection.groups("markets"),
    description="OSM extract to markets, their regions and regional statistics.",
    # One run at a time (dagster.yaml limits this tag to 1): two runs interleaving their steps
    # would compute one snapshot's statistics from the other's markets.
    tags={RUN_TAG: "markets_job"},
    # Backend by configuration: MARKET_PLATFORM_EXECUTOR(_MARKETS_JOB), docs/distributed.md.
    executor_def=executor_for("markets_job"),
)

markets_schedule = dg.ScheduleDefinition(
    name="markets_schedule",
    job=markets_job,
    cron_schedule="0 3 * * 1",
    execution_timezone="Europe/Berlin",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every Monday 03:00 Berlin time, from OSM_EXTRACT.",
)

LANDING_SUFFIXES = (".osm.pbf", ".json")
# A file whose size and modification time have not changed for this long is complete even if
# the sensor has seen it only once (e.g. after a restart of the daemon).
SETTLE_SECONDS = 60.0


def landing_files(folder: Path) -> dict[str, str]:
    """Candidate files in ``folder`` by name, each with a ``size:mtime_ns`` signature."""
    if not folder.is_dir():
        return {}
    found = {}
    for entry in os.scandir(folder):
        name = entry.name
        if name.startswith(".") or not name.endswith(LANDING_SUFFIXES) or not entry.is_file():
            continue
        if not _utf8(name):
            continue  # undecodable bytes cannot become a run key; Dagster would fail the tick
        stat = entry.stat()
        found[name] = f"{stat.st_size}:{stat.st_mtime_ns}"
    return found


def _utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def ready_files(
    found: dict[str, str], cursor: dict, now: float, settle_seconds: float = SETTLE_SECONDS
) -> tuple[list[str], dict]:
    """Which new files are complete, and the next cursor.

    A file is complete once the sensor has seen the same size and modification time on two
    ticks in a row, or once it has not changed for ``settle_seconds``; a file still being
    written changes between ticks and waits. Files already started are remembered by
    signature, so the same file seen again starts nothing, while a replaced file does.
    """
    done, pending = cursor.get("done", {}), cursor.get("pending", {})
    ready, still_pending = [], {}
    for name, signature in sorted(found.items()):
        if done.get(name) == signature:
            continue
        size, mtime_ns = signature.split(":")
        settled = now - int(mtime_ns) / 1e9 >= settle_seconds
        if int(size) > 0 and (pending.get(name) == signature or settled):
            ready.append(name)
        else:
            still_pending[name] = signature
    new_done = {n: s for n, s in found.items() if done.get(n) == s or n in ready}
    return ready, {"done": new_done, "pending": still_pending}


@dg.sensor(
    name="osm_landing_sensor",
    job=markets_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="One run of markets_job per new extract in OSM_LANDING_DIR.",
)
def osm_landing_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    folder = settings.osm_landing_dir()
    cursor = json.loads(context.cursor) if context.cursor else {}
    ready, next_cursor = ready_files(landing_files(folder), cursor, time.time())

    requests = [
        dg.RunRequest(
            run_key=f"{name}:{next_cursor['done'][name]}",
            run_config={"ops": {"osm_extract": {"config": {"source": str(folder / name)}}}},
            tags={"market_platform/extract": name},
        )
        for name in ready
    ]
    if next_cursor["pending"]:
        context.log.info(f"waiting for {len(next_cursor['pending'])} file(s) to settle")
    return dg.SensorResult(run_requests=requests, cursor=json.dumps(next_cursor, sort_keys=True))
