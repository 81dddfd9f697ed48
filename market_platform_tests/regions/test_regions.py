"""Regions, assignment and statistics on the real BKG and Destatis files."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from market_platform.errors import InputError
from market_platform.regions.assignment import assign_regions
from market_platform.regions.loading import build_regions, load_kreise, load_population
from market_platform.regions.statistics import (
    canonical_brands,
    covered_kreise,
    regional_statistics,
    totals_agree,
)
from market_platform_tests.conftest import KREISE, LIDL, POPULATION, REGIONS


def test_real_regions_have_401_kreise_in_16_laender(regions_frame):
    assert len(regions_frame) == 401
    assert regions_frame["ags"].is_unique
    assert regions_frame["land_ags"].nunique() == 16
    # The official 31.12.2018 total of the Gemeindeverzeichnis.
    assert regions_frame["population"].sum() == 83_019_213
    muenchen = regions_frame.set_index("ags").loc["09162"]
    assert muenchen["population"] == 1_471_508
    assert muenchen["area_km2"] == pytest.approx(310.7, abs=0.1)


def test_gemeinden_json_gives_the_same_kreise_as_the_csv():
    from_csv = load_population(POPULATION).set_index("ags")["population"]
    from_json = load_population(REGIONS / "destatis_gemeinden_2018-12-31.json")
    assert from_json.set_index("ags")["population"].equals(from_csv)


def test_2023_population_merges_eisenach_into_the_wartburgkreis():
    kreise = load_kreise(KREISE)
    population = load_population(REGIONS / "population_kreise_2023-12-31.csv")
    regions = build_regions(kreise, population, "population 2023")

    assert len(regions) == 400
    assert "16056" not in set(regions["ags"])
    wartburg = regions.set_index("ags").loc["16063"]
    assert wartburg["population"] == population.set_index("ags").loc["16063", "population"]
    old = kreise.set_index("ags").geometry
    assert wartburg.geometry.area == pytest.approx((old["16056"].union(old["16063"])).area)


def test_regions_file_without_key_columns_names_file_and_columns(tmp_path):
    path = tmp_path / "regions.geojson"
    path.write_text(json.dumps({
        "type": "FeatureCollection",
        "features": [{
            "type": "Feature",
            "properties": {"GEN": "Somewhere"},
            "geometry": {"type": "Point", "coordinates": [11.5, 48.1]},
        }],
    }))
    with pytest.raises(InputError, match=r"regions.geojson: has no region key column.*GEN"):
        load_kreise(path)


def test_population_file_without_population_column(tmp_path):
    path = tmp_path / "population.csv"
    path.write_text("ags,name\n09162,München\n")
    with pytest.raises(InputError, match=r"population.csv: needs an AGS column and a population"):
        load_population(path)


def test_population_missing_for_a_kreis_is_named(tmp_path):
    path = tmp_path / "population.csv"
    pd.read_csv(POPULATION, dtype=str).query("ags != '09162'").to_csv(path, index=False)
    with pytest.raises(InputError, match="has no population for Kreise 09162"):
        build_regions(load_kreise(KREISE), load_population(path), str(path))


def _points(*coordinates):
    return pd.DataFrame(
        [("node", i, lon, lat) for i, (lon, lat) in enumerate(coordinates, start=1)],
        columns=["osm_type", "osm_id", "lon", "lat"],
    )


def test_border_tie_break_takes_the_lowest_ags(regions_frame):
    shapes = regions_frame.set_index("ags").geometry
    # Stadt München (09162) and Landkreis München (09184) overlap slightly after the 200 m
    # simplification; a point in the overlap touches both.
    overlap = shapes["09162"].intersection(shapes["09184"])
    point = overlap.representative_point()
    assigned = assign_regions(_points((point.x, point.y)), regions_frame)

    row = assigned.iloc[0]
    assert (row["kreis_ags"], row["land_ags"], row["assignment"]) == ("09162", "09", "border")


def test_markets_just_outside_go_to_nearest_kreis_and_far_ones_are_reported(regions_frame):
    # 1: Marienplatz; 2: in the North Sea 1 km off Helgoland's coast; 3: Vienna.
    markets = _points((11.5755, 48.1374), (7.8985, 54.1940), (16.3738, 48.2082))
    assigned = assign_regions(markets, regions_frame).set_index("osm_id")

    assert assigned.loc[1, "kreis_ags"] == "09162"
    assert assigned.loc[1, "assignment"] == "inside"
    assert assigned.loc[2, "kreis_ags"] == "01056"
    assert assigned.loc[2, "assignment"] == "nearest"
    assert 0 < assigned.loc[2, "distance_m"] <= 2_000
    assert assigned.loc[3, "kreis_ags"] is None
    assert assigned.loc[3, "assignment"] == "unassigned"


def _lidl_markets() -> pd.DataFrame:
    elements = json.loads(LIDL.read_text())["elements"]
    return pd.DataFrame([
        {
            "osm_type": e["type"],
            "osm_id": e["id"],
            "lon": e.get("lon", e.get("center", {}).get("lon")),
            "lat": e.get("lat", e.get("center", {}).get("lat")),
            "market_type": "supermarket",
            "brand": e["tags"].get("brand"),
        }
        for e in elements
    ])


def test_lidl_statistics_cover_germany_and_add_up(regions_frame):
    markets = _lidl_markets()
    assigned = assign_regions(markets, regions_frame)
    placed = markets.merge(assigned, on=["osm_type", "osm_id"])
    kreise = covered_kreise(regions_frame, None, placed["kreis_ags"])
    stats = regional_statistics(placed, regions_frame, kreise)

    assert stats["level"].value_counts().to_dict() == {"kreis": 401, "land": 16, "germany": 1}
    assert totals_agree(stats) == {}
    assert (stats.query("level == 'kreis'")["markets"] > 0).all()
    laender = stats.query("level == 'land'").set_index("ags")["markets"]
    # SOURCES.md counts with a plain `within` join (Niedersachsen 357, Bremen 28). Here the
    # one point on the Bremen/Niedersachsen border goes to the lower key 03, and the one point
    # outside the simplified polygons goes to its nearest Kreis instead of being lost.
    assert laender["05"] == 686 and laender["09"] == 476 and laender["08"] == 441
    assert laender["03"] == 358 and laender["04"] == 27
    germany = stats.query("level == 'germany'").iloc[0]
    assert germany["markets"] == 3223
    assert germany["population"] == 83_019_213
    assert germany["markets_per_10k"] == pytest.approx(3223 / 83_019_213 * 1e4, abs=1e-4)
    # "LIDL" and "Lidl" are one brand.
    assert germany["top_brands"].startswith("Lidl: ")
    assert "LIDL" not in germany["top_brands"]


def test_canonical_brands_pick_the_most_common_spelling():
    brands = pd.Series(["Lidl", "LIDL", "Lidl", None, " ", "Rewe"])
    result = [b if isinstance(b, str) else None for b in canonical_brands(brands)]
    assert result == ["Lidl", "Lidl", "Lidl", None, None, "Rewe"]


def test_change_since_previous_extract(regions_frame):
    markets = _lidl_markets().head(100)
    assigned = assign_regions(markets, regions_frame)
    placed = markets.merge(assigned, on=["osm_type", "osm_id"])
    kreise = covered_kreise(regions_frame, None, placed["kreis_ags"])
    before = regional_statistics(placed, regions_frame, kreise)
    after = regional_statistics(placed.iloc[10:], regions_frame, kreise, previous=before)

    germany = after.query("level == 'germany'").iloc[0]
    assert germany["markets_change"] == -10
    assert after.query("level == 'kreis'")["markets_change"].sum() == -10


def test_change_counts_only_kreise_covered_both_times(regions_frame):
    """A city extract followed by a Germany-wide one: coverage is not counted as openings."""
    markets = _lidl_markets()
    assigned = assign_regions(markets, regions_frame)
    placed = markets.merge(assigned, on=["osm_type", "osm_id"])
    city = placed[placed["kreis_ags"] == "09162"]
    before = regional_statistics(city.iloc[:-2], regions_frame, ["09162"])
    everything = covered_kreise(regions_frame, None, placed["kreis_ags"])
    after = regional_statistics(placed, regions_frame, everything, previous=before)

    rows = after.set_index(["level", "ags"])["markets_change"]
    assert rows[("kreis", "09162")] == 2
    assert rows[("land", "09")] == 2
    assert rows[("germany", "DE")] == 2
    assert pd.isna(rows[("kreis", "09184")]) and pd.isna(rows[("land", "05")])
