"""Bad inputs fail the run with one clear message and leave the database as it was."""

from __future__ import annotations

import json
import re

import dagster as dg
import osmium
import pytest

from market_platform.errors import InputError
from market_platform_tests.conftest import HELGOLAND, MUENCHEN
from market_platform_tests.test_markets_job import run_markets_job, tables


@pytest.fixture
def loaded(sqlite_url, tmp_path, job_env):
    """A database holding the München extract, and its tables as they are."""
    assert run_markets_job(sqlite_url, tmp_path, MUENCHEN).success
    return sqlite_url, tables(sqlite_url)


def failure_message(result: dg.ExecuteInProcessResult) -> str:
    assert not result.success
    failures = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    assert len(failures) == 1, "exactly one step fails, the rest are skipped"
    # Dagster wraps the error of the asset; the UI shows the cause, and so do we.
    error = failures[0].step_failure_data.error
    while error.cause is not None:
        error = error.cause
    return error.message


def _no_markets(path):
    with osmium.SimpleWriter(str(path)) as writer:
        writer.add_node(osmium.osm.mutable.Node(
            id=1, location=(11.57, 48.13), tags={"amenity": "bench"}
        ))


def _paris_only(path):
    with osmium.SimpleWriter(str(path)) as writer:
        writer.add_node(osmium.osm.mutable.Node(
            id=1, location=(2.3522, 48.8566), tags={"shop": "bakery", "name": "Paris"}
        ))


def _vacant_only(path):
    with osmium.SimpleWriter(str(path)) as writer:
        writer.add_node(osmium.osm.mutable.Node(
            id=1, location=(11.57, 48.13), tags={"shop": "vacant"}
        ))
        writer.add_node(osmium.osm.mutable.Node(
            id=2, location=(11.58, 48.13), tags={"disused:shop": "supermarket"}
        ))


BAD_EXTRACTS = {
    "missing": (lambda p: None, "file not found"),
    "empty": (lambda p: p.write_bytes(b""), "empty"),
    "truncated": (
        lambda p: p.write_bytes(MUENCHEN.read_bytes()[: MUENCHEN.stat().st_size // 2]),
        "",
    ),
    "not_pbf": (lambda p: p.write_text("this is not an OSM file\n" * 10), ""),
    "no_markets": (_no_markets, "no markets"),
    "vacant_only": (_vacant_only, "no markets"),
    "outside_germany": (_paris_only, "none of its 1 markets lies in a Kreis"),
    "other_region": (lambda p: p.write_bytes(HELGOLAND.read_bytes()),
                     "would close 130 of 130 open markets"),
    "not_overpass_json": (lambda p: p.write_text(json.dumps({"hello": "world"})), ""),
}


@pytest.mark.parametrize("case", sorted(BAD_EXTRACTS))
def test_bad_extract_fails_clearly_and_changes_nothing(case, loaded, tmp_path):
    url, before = loaded
    make, expected = BAD_EXTRACTS[case]
    suffix = ".json" if "json" in case else ".osm.pbf"
    path = tmp_path / f"{case}{suffix}"
    make(path)

    message = failure_message(run_markets_job(url, tmp_path, path))
    assert message.startswith(f"market_platform.errors.InputError: {path}: "), message
    assert expected in message
    assert tables(url) == before


def test_unreachable_url_fails_clearly(loaded, tmp_path):
    url, before = loaded
    # Port 9 (discard) on this machine: nothing listens there, the connection is refused.
    source = "http://127.0.0.1:9/germany-latest.osm.pbf"
    message = failure_message(run_markets_job(url, tmp_path, source))
    assert source in message and "could not be downloaded" in message
    assert tables(url) == before


def test_regions_file_without_key_columns_fails_clearly(loaded, tmp_path, monkeypatch):
    url, before = loaded
    regions = tmp_path / "regions.geojson"
    regions.write_text(json.dumps({"type": "FeatureCollection", "features": [{
        "type": "Feature", "properties": {"GEN": "Nowhere"},
        "geometry": {"type": "Point", "coordinates": [11.5, 48.1]},
    }]}))
    monkeypatch.setenv("REGIONS_FILE", str(regions))

    message = failure_message(run_markets_job(url, tmp_path, MUENCHEN))
    assert f"{regions}: has no region key column" in message
    assert tables(url) == before


def test_population_with_duplicate_or_non_positive_rows_is_refused(tmp_path):
    from market_platform.errors import InputError
    from market_platform.regions.loading import load_population

    duplicated = tmp_path / "duplicated.csv"
    duplicated.write_text("ags,population\n09162,1471508\n09162,1471508\n")
    with pytest.raises(InputError, match="duplicated.csv: Kreis 09162 appears 2 times"):
        load_population(duplicated)

    negative = tmp_path / "negative.csv"
    negative.write_text("ags,population\n09162,-5\n")
    with pytest.raises(InputError, match="negative.csv: row 2: population '-5' .*positive"):
        load_population(negative)


def test_a_landing_file_replaced_after_hashing_is_not_read(tmp_path):
    from market_platform import sources

    landed = tmp_path / "landed.osm.pbf"
    landed.write_bytes(MUENCHEN.read_bytes())
    local = sources.fetch(str(landed), tmp_path / "cache")
    pinned = sources.pin(local, tmp_path / "cache")
    replacement = tmp_path / "replacement"
    replacement.write_bytes(HELGOLAND.read_bytes())
    replacement.replace(landed)  # a new file renamed into place while the run waits

    assert sources.sha256_of(pinned.path) == local.sha256
    assert pinned.path.read_bytes() == MUENCHEN.read_bytes()


@pytest.mark.parametrize("value, problem", [
    ("1e30", "larger than 20,000,000"), ("inf", "not a finite number"),
    ("1471508.9", "not a whole number"), ("abc", "not a number"),
])
def test_population_that_is_no_head_count_is_refused(tmp_path, value, problem):
    from market_platform.regions.loading import load_population

    path = tmp_path / "population.csv"
    path.write_text(f"ags,population\n09162,{value}\n09184,350000\n")
    with pytest.raises(InputError, match=f"population.csv: row 2: population '{value}' "
                                         f"is {re.escape(problem)}"):
        load_population(path)


@pytest.mark.parametrize("area", ["-310.7", "0"])
def test_area_that_is_not_positive_is_refused(tmp_path, area):
    from market_platform.regions.loading import load_population

    path = tmp_path / "population.csv"
    path.write_text(f"ags,population,area_km2\n09162,1471508,{area}\n")
    with pytest.raises(InputError, match=f"row 2: area_km2 '{area}' is not a positive number"):
        load_population(path)
