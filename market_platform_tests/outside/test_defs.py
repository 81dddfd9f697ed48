"""The outside assets on Dagster, in-process: a live Land as the main job's extract, the Land
partitions, and the addresses that follow a new state of ``markets``."""

from __future__ import annotations

import json

import dagster as dg
import pytest

from market_platform import db
from market_platform.definitions import build_defs
from market_platform.outside import areas
from market_platform.regions.loading import load_kreise
from market_platform_tests.conftest import KREISE, LIDL

pytestmark = pytest.mark.usefixtures("job_env")


@pytest.fixture
def outside_env(monkeypatch, server):
    monkeypatch.setenv("OVERPASS_URL", server.overpass_url)
    monkeypatch.setenv("GEOCODER_URL", server.base)
    monkeypatch.setenv("GEOCODER_RATE", "50/second")
    monkeypatch.setenv("OUTSIDE_USER_AGENT", "market_platform tests")
    monkeypatch.delenv("RATE_LIMIT_STORAGE_URL", raising=False)
    monkeypatch.delenv("REDIS_URL", raising=False)
    return server


def test_definitions_declare_pool_partitions_and_io(sqlite_url, tmp_path):
    defs = build_defs(market_db_url=sqlite_url, io_dir=str(tmp_path / "io"))
    graph = defs.resolve_asset_graph()
    land = graph.get(dg.AssetKey("overpass_land_markets"))
    assert land.partitions_def.get_partition_keys() == [f"{n:02d}" for n in range(1, 17)]
    assert land.backfill_policy.max_partitions_per_run == 1
    for key in ("overpass_land_markets", "market_addresses"):
        assets_def = defs.resolve_assets_def(key)
        assert assets_def.op.tags["dagster-celery/queue"] == "io"
    assert defs.resolve_assets_def("overpass_land_markets").op.pool == "overpass"
    assert graph.get(dg.AssetKey("market_addresses")).parent_keys == {dg.AssetKey("markets")}
    assert defs.resolve_job_def("overpass_job").tags["market_platform/overpass"] == "live"
    assert defs.resolve_sensor_def("market_addresses_sensor").job_name == "market_addresses_job"


def test_live_land_feeds_the_main_job_and_addresses_follow(outside_env, sqlite_url, tmp_path):
    server = outside_env
    defs = build_defs(market_db_url=sqlite_url, io_dir=str(tmp_path / "io"))
    run_config = {"ops": {"osm_extract": {"config": {"source": "overpass:04"}}}}
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def("markets_job").execute_in_process(
            run_config=run_config, instance=instance
        )
        assert result.success
        metadata = result.asset_materializations_for_node("osm_extract")[0].metadata
        assert metadata["source"].value == "overpass:04"
        assert metadata["overpass_queries"].value == 1
        assert metadata["overpass_area"].value == "Land 04 Bremen"

        engine = db.get_engine(sqlite_url)
        markets = db.read_table(engine, "markets", ["osm_type", "osm_id"])
        assert {(m["osm_type"], m["osm_id"]) for m in markets} == _lidl_in_land("04")
        assert {r["land_ags"] for r in db.read_table(engine, "market_regions")} == {"04"}

        # The sensor asks for one geocoding run per new state of markets, and only one.
        sensor = defs.resolve_sensor_def("market_addresses_sensor")
        context = dg.build_sensor_context(instance=instance, definitions=defs)
        requests = sensor.evaluate_tick(context).run_requests
        assert [r.run_key for r in requests] == [f"markets:{result.run_id}"]
        context = dg.build_sensor_context(
            instance=instance, definitions=defs, cursor=sensor.evaluate_tick(context).cursor
        )
        assert sensor.evaluate_tick(context).run_requests == []

        addresses = defs.resolve_job_def("market_addresses_job").execute_in_process(
            instance=instance
        )
        assert addresses.success
        checks = {e.check_name: e.passed for e in addresses.get_asset_check_evaluations()}
        assert checks == {"osm_addresses_kept": True}
        rows = db.read_table(engine, "markets")
        asked = len(server.log("/reverse"))
        without = [r for r in rows if r["street"] is None or r["housenumber"] is None]
        assert asked == len(without) > 0
        assert {r["address_source"] for r in without} <= {"geocoded", "not_found"}
        assert all(r["address_source"] == "osm" for r in rows if r not in without)

        # Rerun on the same day: the Overpass answer and every address come from the caches.
        server.reset()
        again = defs.resolve_job_def("markets_job").execute_in_process(
            run_config=run_config, instance=instance
        )
        assert again.success
        assert defs.resolve_job_def("market_addresses_job").execute_in_process(
            instance=instance
        ).success
        assert server.log() == []
        assert len(db.read_table(engine, "market_snapshots")) == 1  # same data, same snapshot


def test_land_partition_materializes_once_then_from_cache(outside_env, tmp_path, sqlite_url):
    server = outside_env
    defs = build_defs(market_db_url=sqlite_url, io_dir=str(tmp_path / "io"))
    land = defs.resolve_assets_def("overpass_land_markets")
    with dg.instance_for_test() as instance:
        first = dg.materialize([land], partition_key="04", instance=instance)
        second = dg.materialize([land], partition_key="04", instance=instance)
    metadata = [r.asset_materializations_for_node("overpass_land_markets")[0].metadata
                for r in (first, second)]
    assert [m["overpass_queries"].value for m in metadata] == [1, 0]
    assert metadata[1]["overpass_cache_hits"].value == 1
    assert metadata[0]["sha256"].value == metadata[1]["sha256"].value
    assert metadata[0]["overpass_elements"].value == len(_lidl_in_land("04"))
    assert len(server.log("/api/interpreter")) == 1


def _lidl_in_land(land: str) -> set[tuple[str, int]]:
    """Lidl elements of the file that the region rules place in ``land``."""
    elements = json.loads(LIDL.read_text())["elements"]
    kreise = load_kreise(KREISE)
    kept = areas.clip(elements, areas.parse(f"overpass:{land}", kreise), kreise)
    return {(e["type"], e["id"]) for e in kept}
