"""The Dagster definitions: partitions, reruns, checks, schedule, landing sensor, backfill."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from market_platform import db
from market_platform.defs import occupancy as defs
from market_platform.defs.resources import MarketDatabase
from market_platform.occupancy import store

PARTITION = "2023-12-10"


@pytest.fixture
def env(monkeypatch, tmp_path, small_sources):
    monkeypatch.setenv("OCCUPANCY_SOURCES", os.pathsep.join(
        [str(small_sources / "heidenheim"), str(small_sources / "swm_munich")]))
    monkeypatch.setenv("MARKET_PLATFORM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("OCCUPANCY_LANDING_DIR", str(tmp_path / "landing"))
    return tmp_path


def _resources(url):
    return {"market_db": MarketDatabase(url=url)}


def _counts(url):
    engine = db.get_engine(url)
    return {t: len(db.read_table(engine, t)) for t in
            ("occupancy_observations", "occupancy_forecasts", "occupancy_backtest_scores")}


def test_definitions_load_with_the_expected_names():
    definitions = dg.Definitions(
        assets=defs.assets, asset_checks=defs.asset_checks, jobs=defs.jobs,
        schedules=defs.schedules, sensors=defs.sensors,
        resources=_resources("sqlite:///:memory:"),
    )
    repository = definitions.get_repository_def()
    assert {j.name for j in repository.get_all_jobs()} >= {"occupancy_job", "occupancy_ingest_job"}
    assert repository.get_schedule_def("occupancy_schedule").execution_timezone == "Europe/Berlin"
    assert repository.get_sensor_def("occupancy_landing_sensor")
    for asset, work in ((defs.occupancy_observations, "io"), (defs.occupancy_models, "cpu"),
                        (defs.occupancy_forecasts, "cpu")):
        assert asset.op.tags["market_platform/work"] == work
        assert asset.partitions_def.timezone == "Europe/Berlin"


def test_partition_run_stores_its_day_and_reruns_are_idempotent(env, db_url):
    with dg.instance_for_test() as instance:
        for _ in range(2):
            result = dg.materialize(
                defs.assets, partition_key=PARTITION, instance=instance,
                resources=_resources(db_url),
            )
            assert result.success
            counts = _counts(db_url)
        checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert checks == {"unique_site_hour": True, "no_negative_values": True,
                      "chosen_model_not_worse_than_seasonal_naive": True}

    stored = store.read_observations(db.get_engine(db_url))
    local_days = stored["hour_utc"].dt.tz_convert("Europe/Berlin").dt.strftime("%Y-%m-%d")
    assert set(local_days) == {PARTITION} and 40 <= len(stored) <= 2 * 24
    # The second run replaced the first: one forecast per site, hour and run.
    assert counts["occupancy_forecasts"] == 2 * 168
    forecasts = store.read_forecasts(db.get_engine(db_url), run=PARTITION)
    assert forecasts["hour_utc"].min() == pd.Timestamp("2023-12-10T23:00Z")

    materializations = result.get_asset_materialization_events()
    metadata = {e.asset_key.path[-1]: e.materialization.metadata for e in materializations}
    assert "flags" in metadata["occupancy_observations"]
    assert "backtest_scores" in metadata["occupancy_models"]
    chart = metadata["occupancy_forecasts"]["chart heidenheim.arkaden"].value
    assert chart.startswith("![heidenheim.arkaden](data:image/png;base64,")


def test_bad_landing_file_fails_clearly_and_keeps_what_is_stored(env, db_url):
    with dg.instance_for_test() as instance:
        assert dg.materialize([defs.occupancy_observations], partition_key=PARTITION,
                              instance=instance, resources=_resources(db_url)).success
        before = store.read_observations(db.get_engine(db_url))

        bad = env / "bad.csv"
        bad.write_text("site_id,timestamp,value\nheidenheim.arkaden,2023-12-10T10:00:00Z,-4\n")
        result = dg.materialize(
            [defs.occupancy_observations], partition_key=PARTITION, instance=instance,
            resources=_resources(db_url), raise_on_error=False,
            run_config={"ops": {"occupancy_observations": {"config": {"files": [str(bad)]}}}},
        )
    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data.error
    assert failure.cause.cls_name == "InputError"
    assert "bad.csv: row 2, site heidenheim.arkaden: negative value" in failure.cause.message
    after = store.read_observations(db.get_engine(db_url))
    pd.testing.assert_frame_equal(before, after)


def test_schedule_runs_yesterdays_partition_at_five_berlin_time():
    context = dg.build_schedule_context(
        scheduled_execution_time=pd.Timestamp("2025-03-31 05:00", tz="Europe/Berlin")
    )
    requests = list(defs.occupancy_schedule.evaluate_tick(context).run_requests)
    assert [r.partition_key for r in requests] == ["2025-03-30"]
    assert defs.occupancy_schedule.cron_schedule == "0 5 * * *"


def _sensor_context(instance, cursor=None):
    definitions = dg.Definitions(
        assets=defs.assets, jobs=defs.jobs, sensors=defs.sensors,
        resources=_resources("sqlite:///:memory:"),
    )
    return dg.build_sensor_context(
        instance=instance, cursor=cursor, definitions=definitions
    )


def test_landing_sensor_one_run_per_settled_file(env, monkeypatch):
    landing = env / "landing"
    landing.mkdir()
    monkeypatch.setenv("OCCUPANCY_LANDING_SETTLE_SECONDS", "30")
    ready = landing / "shop.csv"
    ready.write_text(
        "site_id,timestamp,value\nshop,2023-12-01T10:00Z,5\nshop,2023-12-03T10:00Z,6\n"
    )
    old = time.time() - 120
    os.utime(ready, (old, old))
    (landing / "writing.csv").write_text("site_id,timestamp,value\nshop,2023-12")
    (landing / ".partial.csv").write_text("site_id")

    with dg.instance_for_test() as instance:
        context = _sensor_context(instance)
        first = defs.occupancy_landing_sensor.evaluate_tick(context)
        assert len(first.run_requests) == 1
        request = first.run_requests[0]
        assert request.run_key.startswith("shop.csv:")
        assert request.tags["dagster/asset_partition_range_start"] == "2023-12-01"
        assert request.tags["dagster/asset_partition_range_end"] == "2023-12-03"
        files = request.run_config["ops"]["occupancy_observations"]["config"]["files"]
        assert files == [str(ready)]
        cursor = json.loads(first.cursor)
        assert "shop.csv" in cursor and "writing.csv" not in cursor

        again = defs.occupancy_landing_sensor.evaluate_tick(
            _sensor_context(instance, first.cursor))
        assert not again.run_requests

        # Once the half-written file has settled it gets its own run.
        os.utime(landing / "writing.csv", (old, old))
        later = defs.occupancy_landing_sensor.evaluate_tick(
            _sensor_context(instance, first.cursor))
        assert [r.run_key.split(":")[0] for r in later.run_requests] == ["writing.csv"]


def test_landing_run_covers_the_days_of_its_file(env, db_url):
    landing = env / "landing"
    landing.mkdir()
    path = landing / "shop.csv"
    path.write_text(
        "site_id,timestamp,value,kind,capacity\n"
        "shop,2023-12-01T10:00Z,5,occupancy,40\n"
        "shop,2023-12-03T10:00Z,6,occupancy,40\n"
    )
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [defs.occupancy_observations], instance=instance, resources=_resources(db_url),
            tags={"dagster/asset_partition_range_start": "2023-12-01",
                  "dagster/asset_partition_range_end": "2023-12-03"},
            run_config={"ops": {"occupancy_observations": {"config": {"files": [str(path)]}}}},
        )
        assert result.success
    stored = store.read_observations(db.get_engine(db_url))
    assert stored["value"].tolist() == [5.0, 6.0] and stored["capacity"].eq(40).all()


def test_backfill_a_month_from_the_cli(env, tmp_path, db_url):
    module = tmp_path / "occupancy_code_location.py"
    module.write_text(
        "import dagster as dg\n"
        "from market_platform.defs import occupancy\n"
        "from market_platform.defs.resources import MarketDatabase\n"
        f"defs = dg.Definitions(assets=occupancy.assets, resources={{'market_db': "
        f"MarketDatabase(url={db_url!r})}})\n"
    )
    home = tmp_path / "dagster_home"
    home.mkdir()
    environment = os.environ | {"DAGSTER_HOME": str(home), "PYTHONPATH": str(tmp_path)}
    command = [
        str(Path(sys.executable).with_name("dagster")), "asset", "materialize",
        "-f", str(module), "--select", "occupancy_observations",
        "--partition-range", "2023-11-01...2023-11-30",
    ]
    done = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]

    stored = store.read_observations(db.get_engine(db_url))
    days = stored["hour_utc"].dt.tz_convert("Europe/Berlin").dt.strftime("%Y-%m-%d")
    assert days.min() == "2023-11-01" and days.max() == "2023-11-30"
    assert days.nunique() == 30
    assert not stored.duplicated(["site_id", "hour_utc"]).any()
