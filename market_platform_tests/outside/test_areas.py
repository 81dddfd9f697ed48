"""Areas, tiles and the query text: pure functions on the real Kreise polygons."""

from __future__ import annotations

import json

import pytest
from shapely.geometry import box

from market_platform.errors import InputError
from market_platform.outside import areas
from market_platform.outside.query import market_query
from market_platform.regions.assignment import assign_regions
from market_platform_tests.conftest import LIDL


def test_kreis_land_and_bbox_areas(kreise):
    muenchen = areas.parse("overpass:09162", kreise)
    assert (muenchen.key, muenchen.name, muenchen.source) == (
        "09162", "Kreis 09162 München", "overpass:09162"
    )
    west, south, east, north = muenchen.bbox
    assert 11.3 < west < 11.4 and 48.0 < south < 48.1 and 11.7 < east < 11.8 and 48.2 < north < 48.3

    bayern = areas.parse("overpass:09", kreise)
    assert bayern.name == "Land 09 Bayern"
    assert len(bayern.shape) == 96  # Kreise of Bayern in the 2018 geometry

    plain = areas.parse("overpass:bbox=11.5,48.1,11.6,48.2", None)
    assert plain.bbox == (11.5, 48.1, 11.6, 48.2) and plain.shape is None


@pytest.mark.parametrize(
    "source, problem",
    [
        ("overpass:091", "expected overpass:<Land key"),
        ("overpass:17", "no Land with AGS key 17"),
        ("overpass:09999", "no Kreis with AGS key 09999"),
        ("overpass:bbox=11.5,48.1,11.6", "four numbers"),
        ("overpass:bbox=11.6,48.1,11.5,48.2", "bbox is empty"),
        ("overpass:bbox=48.1,11.5,48.2,11.6", "outside Germany"),
    ],
)
def test_bad_area_names_the_source(kreise, source, problem):
    with pytest.raises(InputError, match=problem) as error:
        areas.parse(source, kreise)
    assert str(error.value).startswith(source)


def test_tiles_cover_the_land_and_skip_the_sea(kreise):
    bayern = areas.parse("overpass:09", kreise)
    tiles = areas.tiles(bayern, 1.0)
    assert len(tiles) == 19  # 5 x 4 tiles of the bbox, one corner far from Bayern
    assert all(east - west <= 1.0 and north - south <= 1.0 for west, south, east, north in tiles)
    covered = box(*tiles[0]).union(box(*tiles[1]))
    for tile in tiles[2:]:
        covered = covered.union(box(*tile))
    assert covered.contains(bayern.shape.geometry.union_all().buffer(-0.001))

    schleswig_holstein = areas.parse("overpass:01", kreise)
    full_grid = 4 * 3  # ceil(3.1°) x ceil(2.4°) of its bbox
    assert len(areas.tiles(schleswig_holstein, 1.0)) < full_grid


def test_clip_keeps_what_region_assignment_places_in_the_area(kreise):
    elements = json.loads(LIDL.read_text())["elements"]
    muenchen = areas.parse("overpass:09162", kreise)
    kept = areas.clip(elements, muenchen, kreise)

    frame = _points(elements)
    placed = assign_regions(frame, kreise)
    expected = set(placed.loc[placed["kreis_ags"] == "09162", "osm_id"])
    assert {e["id"] for e in kept} == expected
    assert len(kept) == 46  # Lidl elements (nodes and buildings) in München, 2024-01-21


def test_query_asks_for_the_market_tags_inside_the_bbox():
    query = market_query((11.5, 48.1, 11.6, 48.2), 180)
    assert query.startswith("[out:json][timeout:180][bbox:48.1000000,11.5000000,48.2000000,")
    assert 'nwr["shop"~"^(supermarket|convenience|greengrocer|butcher|bakery|beverages|' in query
    assert 'nwr["amenity"="marketplace"]' in query
    assert query.endswith("out center;")


def _points(elements):
    import pandas as pd

    rows = []
    for element in elements:
        place = element if element["type"] == "node" else element["center"]
        rows.append({"osm_type": element["type"], "osm_id": element["id"],
                     "lon": place["lon"], "lat": place["lat"]})
    return pd.DataFrame(rows)
