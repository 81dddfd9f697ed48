"""The weekly schedule, the landing-folder sensor and the code location as a whole."""

from __future__ import annotations

import json
import os
import time
from datetime import datetime
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from market_platform.defs.market_automation import (
    markets_schedule,
    osm_landing_sensor,
    ready_files,
)
from market_platform.definitions import defs
from market_platform_tests.conftest import MUENCHEN


def test_code_location_loads_with_the_expected_asset_graph():
    graph = defs.resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    assert {"osm_extract", "osm_markets", "markets", "regions", "market_regions",
            "regional_statistics"} <= keys
    parents = {
        key: {p.to_user_string() for p in graph.get(dg.AssetKey(key)).parent_keys}
        for key in ("osm_markets", "markets", "market_regions", "regional_statistics")
    }
    assert parents == {
        "osm_markets": {"osm_extract"},
        "markets": {"osm_markets", "regions"},
        "market_regions": {"markets", "regions"},
        "regional_statistics": {"markets", "market_regions", "regions"},
    }
    assert defs.resolve_job_def("markets_job") is not None
    for key in keys & {"osm_extract", "markets", "regional_statistics"}:
        tags = graph.get(dg.AssetKey(key)).assets_def.op.tags
        assert tags["market_platform/work"] in ("io", "cpu")


def test_schedule_runs_markets_job_mondays_at_three_berlin_time():
    assert markets_schedule.cron_schedule == "0 3 * * 1"
    assert markets_schedule.execution_timezone == "Europe/Berlin"
    assert markets_schedule.job_name == "markets_job"

    context = dg.build_schedule_context(
        scheduled_execution_time=datetime(2025, 3, 31, 3, 0, tzinfo=ZoneInfo("Europe/Berlin"))
    )
    requests = markets_schedule.evaluate_tick(context).run_requests
    assert len(requests) == 1
    # No run config: the scheduled run reads OSM_EXTRACT.
    assert not requests[0].run_config


def _tick(instance, cursor=None):
    context = dg.build_sensor_context(instance=instance, cursor=cursor)
    result = osm_landing_sensor(context)
    return result.run_requests, result.cursor


def _old(path, seconds=600):
    stamp = time.time() - seconds
    os.utime(path, (stamp, stamp))


def test_sensor_starts_one_run_per_new_file_and_none_again(tmp_path, monkeypatch):
    monkeypatch.setenv("OSM_LANDING_DIR", str(tmp_path))
    instance = dg.DagsterInstance.ephemeral()
    landed = tmp_path / "muenchen.osm.pbf"
    landed.write_bytes(MUENCHEN.read_bytes())
    _old(landed)
    (tmp_path / "notes.txt").write_text("not an extract")
    (tmp_path / ".hidden.osm.pbf").write_bytes(b"x")

    requests, cursor = _tick(instance)
    assert len(requests) == 1
    request = requests[0]
    assert request.run_key.startswith("muenchen.osm.pbf:")
    source = request.run_config["ops"]["osm_extract"]["config"]["source"]
    assert source == str(landed)
    assert request.tags["market_platform/extract"] == "muenchen.osm.pbf"
    assert "muenchen.osm.pbf" in json.loads(cursor)["done"]

    # Seen again: nothing.
    requests, cursor_again = _tick(instance, cursor)
    assert requests == [] and cursor_again == cursor

    # A replaced file with new content is a new extract.
    landed.write_bytes(MUENCHEN.read_bytes() + b"")
    with open(landed, "ab") as handle:
        handle.write(b"\0")
    _old(landed, 300)
    requests, _ = _tick(instance, cursor)
    assert len(requests) == 1 and requests[0].run_key != request.run_key


def test_sensor_waits_for_a_half_written_file(tmp_path, monkeypatch):
    monkeypatch.setenv("OSM_LANDING_DIR", str(tmp_path))
    instance = dg.DagsterInstance.ephemeral()
    landing = tmp_path / "lauf.osm.pbf"
    data = MUENCHEN.read_bytes()
    landing.write_bytes(data[:1000])

    requests, cursor = _tick(instance)
    assert requests == []
    assert "lauf.osm.pbf" in json.loads(cursor)["pending"]

    with open(landing, "ab") as handle:  # the copy goes on between two ticks
        handle.write(data[1000:5000])
    requests, cursor = _tick(instance, cursor)
    assert requests == []

    with open(landing, "ab") as handle:
        handle.write(data[5000:])
    requests, cursor = _tick(instance, cursor)
    assert requests == []  # changed since the last tick: still waiting
    requests, cursor = _tick(instance, cursor)
    assert len(requests) == 1  # unchanged over two ticks: complete


def test_sensor_cursor_forgets_files_that_left_the_folder():
    found = {"a.osm.pbf": "10:1", "b.osm.pbf": "20:2"}
    ready, cursor = ready_files(found, {}, now=1e9)
    assert ready == ["a.osm.pbf", "b.osm.pbf"]
    _, cursor = ready_files({"b.osm.pbf": "20:2"}, cursor, now=1e9)
    assert cursor == {"done": {"b.osm.pbf": "20:2"}, "pending": {}}


@pytest.mark.parametrize("size", [0])
def test_sensor_never_starts_an_empty_file(size):
    ready, cursor = ready_files({"e.osm.pbf": f"{size}:1"}, {}, now=1e9)
    assert ready == [] and "e.osm.pbf" in cursor["pending"]


@pytest.mark.parametrize("config_file", ["dagster.yaml", "deploy/dagster.yaml"])
def test_markets_job_runs_one_at_a_time_from_the_run_queue(config_file, tmp_path, monkeypatch):
    """Two interleaved runs computed one snapshot's statistics from the other's markets; the run
    queue lets only one markets_job run at a time, whichever schedule or sensor started it."""
    import shutil
    from pathlib import Path

    from market_platform.defs.market_automation import RUN_TAG

    root = Path(__file__).resolve().parents[1]
    shutil.copy(root / config_file, tmp_path / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    from dagster._core.instance.config import dagster_instance_config

    config, _ = dagster_instance_config(str(tmp_path))
    limits = config["concurrency"]["runs"]["tag_concurrency_limits"]
    assert {"key": RUN_TAG, "value": "markets_job", "limit": 1} in limits

    job = defs.resolve_job_def("markets_job")
    assert job.tags[RUN_TAG] == "markets_job"
    requests = defs.resolve_sensor_def("osm_landing_sensor")
    assert requests.job_name == "markets_job"  # its runs carry the job's tags
