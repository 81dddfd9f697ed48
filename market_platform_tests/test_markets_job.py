"""markets_job end to end, in-process, on the real München extract and real regions."""

from __future__ import annotations

import dagster as dg
import osmium
import pytest

from market_platform import db
from market_platform.definitions import build_defs
from market_platform_tests.conftest import LIDL, MUENCHEN

TABLES = {
    "markets": ["osm_type", "osm_id"],
    "market_changes": ["snapshot_id", "osm_type", "osm_id"],
    "market_snapshots": ["load_seq"],
    "market_regions": ["osm_type", "osm_id"],
    "regional_statistics": ["snapshot_id", "level", "ags"],
}


pytestmark = pytest.mark.usefixtures("job_env")


def run_markets_job(url, tmp_path, extract) -> dg.ExecuteInProcessResult:
    defs = build_defs(market_db_url=url, io_dir=str(tmp_path / "io"))
    job = defs.resolve_job_def("markets_job")
    return job.execute_in_process(
        run_config={"ops": {"osm_extract": {"config": {"source": str(extract)}}}},
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )


def tables(url) -> dict[str, list[dict]]:
    engine = db.get_engine(url)
    return {name: db.read_table(engine, name, order) for name, order in TABLES.items()}


def statistics(url, level, ags) -> dict:
    """One row of the newest snapshot's statistics."""
    current = tables(url)
    latest = current["market_snapshots"][-1]["snapshot_id"]
    return next(
        r for r in current["regional_statistics"]
        if r["snapshot_id"] == latest and r["level"] == level and r["ags"] == ags
    )


def test_muenchen_end_to_end_and_rerun_gives_identical_tables(market_db_url, tmp_path):
    result = run_markets_job(market_db_url, tmp_path, MUENCHEN)
    assert result.success

    first = tables(market_db_url)
    supermarkets = [m for m in first["markets"] if m["market_type"] == "supermarket"]
    assert len(supermarkets) == 17  # SOURCES.md: 17 supermarkets in this extract
    assert {r["kreis_ags"] for r in first["market_regions"]} == {"09162"}

    muenchen = statistics(market_db_url, "kreis", "09162")
    assert muenchen["n_supermarket"] == 17
    assert muenchen["population"] == 1_471_508  # Destatis, 31.12.2018
    assert muenchen["markets_per_10k"] == pytest.approx(
        muenchen["markets"] / 1_471_508 * 1e4, abs=1e-4
    )
    germany = statistics(market_db_url, "germany", "DE")
    assert germany["markets"] == muenchen["markets"] == len(first["markets"])
    assert statistics(market_db_url, "land", "09")["markets"] == muenchen["markets"]

    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {
        "markets_keys_unique": True,
        "markets_inside_germany": True,
        "every_market_assigned": True,
        "statistics_add_up": True,
    }
    materialization = next(
        m for m in result.get_asset_materialization_events()
        if m.asset_key == dg.AssetKey("regional_statistics")
    )
    metadata = materialization.materialization.metadata
    assert metadata["choropleth"].value.startswith("![markets per 10,000 inhabitants](data:image/png")

    again = run_markets_job(market_db_url, tmp_path, MUENCHEN)
    assert again.success
    assert tables(market_db_url) == first


def _changed_copy(source, target):
    """The München extract with one supermarket gone, one renamed, one moved 50 m, one new."""
    supermarkets = []
    for node in osmium.FileProcessor(str(source), osmium.osm.NODE):
        if node.tags.get("shop") == "supermarket":
            supermarkets.append(node.id)
    gone, renamed, moved = supermarkets[:3]
    with osmium.SimpleWriter(str(target)) as writer:
        for obj in osmium.FileProcessor(str(source)):
            if obj.id == gone and obj.is_node():
                continue
            if obj.id == renamed and obj.is_node():
                tags = dict(obj.tags)
                tags["name"] = "Umbenannt"
                obj = obj.replace(tags=tags)
            if obj.id == moved and obj.is_node():
                location = osmium.osm.Location(obj.location.lon, obj.location.lat + 0.00045)
                obj = obj.replace(location=location)
            writer.add(obj)
        writer.add_node(osmium.osm.mutable.Node(
            id=9_999_999_999, location=(11.5755, 48.1374), tags={"shop": "bakery", "name": "Neu"}
        ))
    return gone, renamed, moved


def test_a_changed_extract_writes_the_right_history(sqlite_url, tmp_path):
    changed = tmp_path / "muenchen_changed.osm.pbf"
    gone, renamed, moved = _changed_copy(MUENCHEN, changed)
    assert run_markets_job(sqlite_url, tmp_path, MUENCHEN).success
    assert run_markets_job(sqlite_url, tmp_path, changed).success

    after = tables(sqlite_url)
    changes = {(r["osm_type"], r["osm_id"]): r for r in after["market_changes"]}
    assert {k: (r["change"], r["fields"]) for k, r in changes.items()} == {
        ("node", gone): ("closed", ""),
        ("node", renamed): ("changed", "name"),
        ("node", moved): ("changed", "location"),
        ("node", 9_999_999_999): ("opened", ""),
    }
    assert changes[("node", renamed)]["name_new"] == "Umbenannt"
    assert changes[("node", moved)]["moved_m"] == pytest.approx(50.0, abs=1.0)

    muenchen = statistics(sqlite_url, "kreis", "09162")
    assert muenchen["markets_change"] == 0  # one closed, one opened
    assert muenchen["n_supermarket"] == 16
    assert muenchen["n_bakery"] == statistics(sqlite_url, "germany", "DE")["n_bakery"]


def test_overpass_json_gives_germany_wide_statistics(sqlite_url, tmp_path):
    assert run_markets_job(sqlite_url, tmp_path, LIDL).success
    rows = tables(sqlite_url)["regional_statistics"]
    levels = {}
    for row in rows:
        levels[row["level"]] = levels.get(row["level"], 0) + 1
    assert levels == {"germany": 1, "land": 16, "kreis": 401}
    germany = statistics(sqlite_url, "germany", "DE")
    # 3223 elements, one of them (way 1069299866, Magdeburg) tagged disused=yes.
    assert germany["markets"] == germany["n_supermarket"] == 3222
    assert statistics(sqlite_url, "land", "05")["markets"] == 686
    assert statistics(sqlite_url, "land", "15")["markets"] == 69
