"""read_markets on the real extracts in shared data and on tiny OSM files written here."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import osmium
import pytest
from osmium.filter import KeyFilter
from shapely.geometry import Point, Polygon

from market_platform.errors import InputError
from market_platform.markets.reading import MARKET_COLUMNS, read_markets

OSM = Path(__file__).resolve().parents[2] / "../shared/data" / "osm"
MUENCHEN = OSM / "muenchen_altstadt_2020-07-20.osm.pbf"
LAUF = OSM / "lauf_an_der_pegnitz_2020-01-15.osm.pbf"
HELGOLAND = OSM / "helgoland_2026-07.osm.pbf"
LIDL = OSM / "lidl_germany_overpass_2024-01-21.json"


# --- an independent scan, so that the parser is not checked against itself -----------------

SCAN_SHOPS = {
    "supermarket",
    "convenience",
    "greengrocer",
    "butcher",
    "bakery",
    "beverages",
    "chemist",
    "department_store",
    "mall",
}


def _scan_is_market(tags) -> bool:
    if tags.get("shop") not in SCAN_SHOPS and tags.get("amenity") != "marketplace":
        return False
    gone = tags.get("disused") == "yes" or tags.get("abandoned") == "yes"
    return not gone and tags.get("opening_hours") != "closed"


def independent_scan(path: Path) -> set[tuple[str, int]]:
    found = set()
    for obj in osmium.FileProcessor(str(path)).with_filter(KeyFilter("shop", "amenity")):
        if not _scan_is_market(obj.tags):
            continue
        if obj.is_node():
            found.add(("node", obj.id))
        elif obj.is_way() and obj.nodes[0].ref == obj.nodes[-1].ref:
            found.add(("way", obj.id))
        elif obj.is_relation() and obj.tags.get("type") == "multipolygon":
            found.add(("relation", obj.id))
    return found


# Counts checked against SOURCES.md (pyrosm get_pois): München 17 supermarkets and 12
# convenience, Lauf 10 and 1, Helgoland 1 and 4; the parser finds exactly these. pyrosm
# merges no node/outline pairs, and these extracts hold none, so the counts agree:
# every node lying in a market outline was listed by hand. In München those are the 29 stalls
# inside the Viktualienmarkt outline (way 240014249, amenity=marketplace): butchers,
# greengrocers and a Hofpfisterei bakery,
# different market types from the market square, so 30 separate markets, rightly.
# "lifecycle" counts shop=vacant (München 8, Helgoland 5) and disused:shop=bakery (1, 1, 2).
REAL_EXTRACTS = {
    "muenchen": (MUENCHEN, 130, {"node": 111, "way": 19}, 17, {"lifecycle": 9}),
    "lauf": (LAUF, 32, {"node": 28, "way": 4}, 10, {"lifecycle": 1}),
    "helgoland": (HELGOLAND, 11, {"node": 8, "way": 3}, 1, {"lifecycle": 7}),
}


@pytest.mark.parametrize("name", sorted(REAL_EXTRACTS))
def test_real_extract_matches_an_independent_scan(name):
    path, total, by_type, supermarkets, excluded = REAL_EXTRACTS[name]
    result = read_markets(path)
    markets = result.markets

    keys = set(zip(markets["osm_type"], markets["osm_id"].tolist(), strict=True))
    assert result.duplicates_removed == []
    assert keys == independent_scan(path)
    assert len(markets) == total
    assert markets["osm_type"].value_counts().to_dict() == by_type
    assert (markets["market_type"] == "supermarket").sum() == supermarkets
    assert result.excluded == {
        "lifecycle": 0,
        "closed": 0,
        "unclosed_way": 0,
        "not_multipolygon": 0,
        "no_geometry": 0,
        **excluded,
    }
    assert result.source_format == "pbf"


def test_real_extract_frame_has_the_promised_shape():
    markets = read_markets(MUENCHEN).markets

    assert list(markets.columns) == MARKET_COLUMNS
    assert markets["osm_id"].dtype == np.int64
    assert markets["lon"].dtype == markets["lat"].dtype == np.float64
    assert markets.equals(markets.sort_values(["osm_type", "osm_id"], ignore_index=True))
    assert (markets["lon"] == markets["lon"].round(7)).all()

    edeka = markets[(markets["osm_type"] == "way") & (markets["osm_id"] == 271129791)].iloc[0]
    assert (edeka["market_type"], edeka["name"], edeka["brand"]) == (
        "supermarket",
        "Edeka",
        "Edeka",
    )


def test_real_extract_points_of_outlines_lie_inside_them():
    markets = read_markets(LAUF).markets
    ways = markets[markets["osm_type"] == "way"]
    outlines = {}
    processor = osmium.FileProcessor(str(LAUF)).with_locations()
    for obj in processor.with_filter(osmium.filter.IdFilter(ways["osm_id"].tolist())):
        if obj.is_way():
            outlines[obj.id] = Polygon([(ref.lon, ref.lat) for ref in obj.nodes])

    assert len(outlines) == len(ways) == 4
    for way in ways.itertuples():
        assert outlines[way.osm_id].buffer(1e-7).contains(Point(way.lon, way.lat))


def test_real_extract_header():
    muenchen = read_markets(MUENCHEN)
    assert muenchen.osm_timestamp == datetime(2020, 7, 20, 12, 44, 3, tzinfo=UTC)
    # The header box (osmx) is smaller than the data: 20 of the 130 markets lie outside it,
    # so the bbox grows to take them in. Only its north edge stays the header's.
    markets = muenchen.markets
    header = (11.5656571, 48.1314385, 11.5861277, 48.1433940)
    outside = ~markets["lon"].between(header[0], header[2])
    outside |= ~markets["lat"].between(header[1], header[3])
    assert outside.sum() == 20
    assert muenchen.bbox == (
        markets["lon"].min(),
        markets["lat"].min(),
        markets["lon"].max(),
        header[3],
    )
    assert muenchen.bbox[0] < header[0] and muenchen.bbox[1] < header[1]

    lauf = read_markets(LAUF)
    assert lauf.osm_timestamp is None
    assert lauf.bbox == (11.2474, 49.4994609, 11.3079357, 49.530445)

    # Helgoland's header has no box: the markets' own bbox stands in.
    helgoland = read_markets(HELGOLAND)
    markets = helgoland.markets
    assert helgoland.bbox == (
        markets["lon"].min(),
        markets["lat"].min(),
        markets["lon"].max(),
        markets["lat"].max(),
    )


def test_overpass_lidl_file():
    result = read_markets(LIDL)
    markets = result.markets

    # 3223 elements, 3222 markets: way 1069299866 (Magdeburg) is tagged disused=yes. Ways
    # 113755204 and 153796627 keep a stale disused:shop=supermarket next to a live
    # shop=supermarket and current opening hours, so they stay markets.
    assert len(markets) == 3222
    assert markets["osm_type"].value_counts().to_dict() == {"node": 871, "way": 2351}
    assert result.excluded["lifecycle"] == 1
    assert 1069299866 not in set(markets["osm_id"])
    assert {113755204, 153796627} <= set(markets["osm_id"])
    assert set(markets["market_type"]) == {"supermarket"}
    assert set(markets["name"]) == {"Lidl"}
    assert set(markets["brand"].dropna().str.casefold()) == {"lidl"}
    # out center gives no outlines, so no node/building duplicate can be found.
    assert result.duplicates_removed == []
    assert result.source_format == "overpass-json"
    assert result.osm_timestamp == datetime(2024, 1, 21, 2, 19, 8, tzinfo=UTC)
    west, south, east, north = result.bbox
    assert 5.8 < west < east < 15.1 and 47.2 < south < north < 55.1

    way = markets[markets["osm_id"] == 4622758].iloc[0]
    assert (way["lon"], way["lat"]) == (8.3939447, 48.9445586)  # the Overpass centre
    assert (way["street"], way["housenumber"], way["postcode"], way["city"]) == (
        "Zehntwiesenstraße",
        "37",
        "76275",
        "Ettlingen",
    )


# --- tiny synthetic extracts --------------------------------------------------------------

LON, LAT = 11.0, 49.0


class Extract:
    """Builds a small OSM file: nodes first, then ways, then relations, as in a real PBF."""

    def __init__(self):
        self.nodes, self.ways, self.relations = [], [], []
        self._next_node = 1000

    def node(self, node_id, lon, lat, **tags):
        self.nodes.append((node_id, lon, lat, _tags(tags)))

    def outline(self, way_id, corners, **tags) -> list[int]:
        """A closed way through ``corners`` (lon, lat); returns its node ids."""
        refs = []
        for lon, lat in corners:
            self._next_node += 1
            self.nodes.append((self._next_node, lon, lat, {}))
            refs.append(self._next_node)
        self.ways.append((way_id, refs + refs[:1], _tags(tags)))
        return refs

    def way(self, way_id, refs, **tags):
        self.ways.append((way_id, refs, _tags(tags)))

    def relation(self, relation_id, members, **tags):
        self.relations.append((relation_id, members, _tags(tags)))

    def write(self, path: Path) -> Path:
        with osmium.SimpleWriter(str(path)) as writer:
            for node_id, lon, lat, tags in sorted(self.nodes):
                writer.add_node(osmium.osm.mutable.Node(id=node_id, location=(lon, lat), tags=tags))
            for way_id, refs, tags in sorted(self.ways):
                writer.add_way(osmium.osm.mutable.Way(id=way_id, nodes=refs, tags=tags))
            for relation_id, members, tags in sorted(self.relations):
                writer.add_relation(
                    osmium.osm.mutable.Relation(id=relation_id, members=members, tags=tags)
                )
        return path


def _tags(tags: dict) -> dict:
    # Python names cannot hold ":", so tests spell addr:street as addr__street.
    return {key.replace("__", ":"): value for key, value in tags.items()}


def square(lon, lat, size=0.001):
    return [(lon, lat), (lon + size, lat), (lon + size, lat + size), (lon, lat + size)]


def row(markets, osm_type, osm_id):
    found = markets[(markets["osm_type"] == osm_type) & (markets["osm_id"] == osm_id)]
    assert len(found) == 1, f"{osm_type}/{osm_id} not exactly once in {markets}"
    return found.iloc[0]


def test_shop_on_building_outline_is_a_market_with_a_point_inside(tmp_path):
    extract = Extract()
    # An L-shaped building: its centroid lies outside, in the missing corner.
    l_shape = [
        (LON, LAT),
        (LON + 0.002, LAT),
        (LON + 0.002, LAT + 0.0005),
        (LON + 0.0005, LAT + 0.0005),
        (LON + 0.0005, LAT + 0.002),
        (LON, LAT + 0.002),
    ]
    extract.outline(10, l_shape, building="retail", shop="supermarket", name="Netto")
    result = read_markets(extract.write(tmp_path / "outline.osm.pbf"))

    market = row(result.markets, "way", 10)
    assert (market["market_type"], market["name"]) == ("supermarket", "Netto")
    outline = Polygon(l_shape)
    assert not outline.contains(outline.centroid)
    assert outline.contains(Point(market["lon"], market["lat"]))


def test_node_inside_the_same_shops_outline_is_one_market(tmp_path):
    extract = Extract()
    extract.outline(
        20,
        square(LON, LAT),
        building="retail",
        shop="supermarket",
        name="REWE  City",
        opening_hours="Mo-Sa 07:00-22:00",
        addr__street="Hauptstraße",
        addr__housenumber="1",
        addr__postcode="91207",
        addr__city="Lauf",
        operator="REWE Markt GmbH",
    )
    # The mapper's entrance node: same shop, name differing in case and spaces only.
    extract.node(1, LON + 0.0005, LAT + 0.0001, shop="supermarket", name="Rewe City", brand="REWE")
    result = read_markets(extract.write(tmp_path / "twice.osm.pbf"))

    assert len(result.markets) == 1
    market = row(result.markets, "node", 1)
    assert (market["lon"], market["lat"]) == (LON + 0.0005, LAT + 0.0001)
    assert market["name"] == "Rewe City"  # the node's own fields win
    assert market["brand"] == "REWE"
    assert (market["opening_hours"], market["operator"]) == ("Mo-Sa 07:00-22:00", "REWE Markt GmbH")
    assert (market["street"], market["housenumber"], market["postcode"], market["city"]) == (
        "Hauptstraße",
        "1",
        "91207",
        "Lauf",
    )
    assert result.duplicates_removed == [
        {
            "kept": ("node", 1),
            "dropped": ("way", 20),
            "market_type": "supermarket",
            "name": "Rewe City",
        }
    ]


@pytest.mark.parametrize(
    ("node_tags", "area_tags", "merged"),
    [
        ({}, {}, True),  # both unnamed
        ({"brand": "Lidl", "name": "Lidl"}, {"brand": "Lidl", "name": "Lidl Filiale"}, True),
        ({"name": "Aldi"}, {"name": "Netto"}, False),
        ({"name": "Aldi"}, {}, False),
        ({"brand": "Aldi"}, {"brand": "Netto"}, False),  # unnamed, but different brands
    ],
)
def test_which_node_and_outline_pairs_are_the_same_shop(tmp_path, node_tags, area_tags, merged):
    extract = Extract()
    extract.outline(20, square(LON, LAT), shop="supermarket", **area_tags)
    extract.node(1, LON + 0.0005, LAT + 0.0005, shop="supermarket", **node_tags)
    result = read_markets(extract.write(tmp_path / "pair.osm.pbf"))

    assert len(result.markets) == (1 if merged else 2)
    assert len(result.duplicates_removed) == (1 if merged else 0)


def test_different_shops_in_one_mall_are_separate_markets(tmp_path):
    extract = Extract()
    extract.outline(30, square(LON, LAT, 0.003), shop="mall", name="Pegnitz-Center")
    extract.node(1, LON + 0.001, LAT + 0.001, shop="supermarket", name="Pegnitz-Center")
    extract.node(2, LON + 0.002, LAT + 0.002, shop="bakery", name="Pegnitz-Center")
    # Same type and name but outside the outline: not the same shop either.
    extract.node(3, LON + 0.01, LAT + 0.01, shop="mall", name="Pegnitz-Center")
    result = read_markets(extract.write(tmp_path / "mall.osm.pbf"))

    assert sorted(zip(result.markets["osm_type"], result.markets["market_type"], strict=True)) == [
        ("node", "bakery"),
        ("node", "mall"),
        ("node", "supermarket"),
        ("way", "mall"),
    ]
    assert result.duplicates_removed == []


def test_former_and_closed_shops_are_not_markets(tmp_path):
    extract = Extract()
    extract.node(1, LON, LAT, shop="supermarket", name="Still open")
    extract.node(2, LON, LAT, **{"disused:shop": "supermarket"})
    extract.node(3, LON, LAT, **{"abandoned:shop": "bakery"})
    extract.node(4, LON, LAT, shop="vacant")
    extract.node(5, LON, LAT, shop="supermarket", disused="yes")
    extract.node(6, LON, LAT, shop="butcher", abandoned="yes")
    extract.outline(10, square(LON, LAT), shop="bakery", disused="yes")
    extract.node(7, LON, LAT, shop="bakery", opening_hours="closed")
    extract.node(8, LON, LAT, amenity="marketplace", opening_hours=" Closed ")
    # Not a market and never one: no count.
    extract.node(9, LON, LAT, shop="clothes")
    extract.node(11, LON, LAT, **{"disused:shop": "clothes"})
    result = read_markets(extract.write(tmp_path / "former.osm.pbf"))

    assert result.markets["osm_id"].tolist() == [1]
    assert result.excluded["lifecycle"] == 6
    assert result.excluded["closed"] == 2


def test_unclosed_ways_and_broken_areas_are_counted_not_fatal(tmp_path):
    extract = Extract()
    extract.node(1, LON, LAT, shop="convenience")
    for node_id, (lon, lat) in enumerate(square(LON, LAT), start=101):
        extract.node(node_id, lon, lat)
    extract.way(10, [101, 102, 103, 104], shop="supermarket")  # not closed
    extract.way(11, [101, 102, 999, 101], shop="supermarket")  # node 999 is not in the file
    extract.way(12, [101, 102, 101], shop="supermarket")  # closed, but encloses nothing
    extract.way(13, [101, 102], highway="service")
    extract.way(14, [102, 103], highway="service")
    # An outer ring with a gap (13 and 14 do not close), and one whose member is missing.
    extract.relation(
        20, [("w", 13, "outer"), ("w", 14, "outer")], type="multipolygon", shop="supermarket"
    )
    extract.relation(21, [("w", 998, "outer")], type="multipolygon", shop="supermarket")
    extract.relation(22, [("w", 13, "")], type="site", shop="supermarket")
    result = read_markets(extract.write(tmp_path / "broken.osm.pbf"))

    assert result.markets["osm_id"].tolist() == [1]
    assert result.excluded == {
        "lifecycle": 0,
        "closed": 0,
        "unclosed_way": 1,
        "not_multipolygon": 1,
        "no_geometry": 4,
    }


def test_multipolygon_market_gets_a_point_in_its_area_not_in_its_hole(tmp_path):
    extract = Extract()
    outer = extract.outline(40, square(LON, LAT, 0.004))
    extract.outline(41, square(LON + 0.001, LAT + 0.001, 0.002))
    # The outer ring split into two ways, as relations often are.
    extract.ways = [way for way in extract.ways if way[0] != 40]
    extract.way(42, [outer[0], outer[1], outer[2]])
    extract.way(43, [outer[2], outer[3], outer[0]])
    extract.relation(
        50,
        [("w", 42, "outer"), ("w", 41, "inner"), ("w", 43, "outer")],
        type="multipolygon",
        amenity="marketplace",
        name="Wochenmarkt",
    )
    result = read_markets(extract.write(tmp_path / "multipolygon.osm.pbf"))

    market = row(result.markets, "relation", 50)
    assert market["market_type"] == "marketplace"
    area = Polygon(square(LON, LAT, 0.004), [square(LON + 0.001, LAT + 0.001, 0.002)])
    assert area.contains(Point(market["lon"], market["lat"]))
    assert not area.contains(area.centroid)


def test_node_inside_a_multipolygon_of_the_same_shop_replaces_it(tmp_path):
    extract = Extract()
    extract.outline(40, square(LON, LAT, 0.004))
    extract.relation(
        50,
        [("w", 40, "outer")],
        type="multipolygon",
        shop="department_store",
        name="Galeria",
        opening_hours="Mo-Sa 10:00-20:00",
    )
    extract.node(1, LON + 0.001, LAT + 0.001, shop="department_store", name="galeria")
    result = read_markets(extract.write(tmp_path / "store.osm.pbf"))

    assert len(result.markets) == 1
    assert row(result.markets, "node", 1)["opening_hours"] == "Mo-Sa 10:00-20:00"
    assert result.duplicates_removed[0]["dropped"] == ("relation", 50)


def test_multipolygon_with_member_ids_far_apart(tmp_path):
    # 40 member ways 2^25 ids apart would need 160 MiB of IdFilter bitmap: the reader checks
    # their ids in Python instead, and must still find every one of them.
    extract = Extract()
    corners = [(LON + 0.001 * i, LAT) for i in range(20)]
    corners += [(LON + 0.001 * i, LAT + 0.002) for i in reversed(range(20))]
    for node_id, (lon, lat) in enumerate(corners, start=1):
        extract.node(node_id, lon, lat)
    members = []
    for position in range(len(corners)):
        way_id = (position + 1) * 2**25
        extract.way(way_id, [position + 1, (position + 1) % len(corners) + 1])
        members.append(("w", way_id, "outer"))
    extract.relation(60, members, type="multipolygon", shop="mall", name="Far apart")
    result = read_markets(extract.write(tmp_path / "spread.osm.pbf"))

    market = row(result.markets, "relation", 60)
    assert Polygon(corners).contains(Point(market["lon"], market["lat"]))


def test_pbf_is_recognised_by_its_content_not_its_name(tmp_path):
    extract = Extract()
    extract.node(1, LON, LAT, shop="chemist")
    path = extract.write(tmp_path / "extract.osm.pbf").rename(tmp_path / "download.bin")
    assert read_markets(path).markets["market_type"].tolist() == ["chemist"]


def _overpass(path: Path, elements: list) -> Path:
    document = {
        "version": 0.6,
        "osm3s": {"timestamp_osm_base": "2024-01-21T02:19:08Z"},
        "elements": elements,
    }
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def _overpass_pair(with_geometry: bool) -> list:
    corners = square(LON, LAT) + square(LON, LAT)[:1]
    way = {
        "type": "way",
        "id": 20,
        "nodes": [1, 2, 3, 4, 1],
        "center": {"lat": LAT + 0.0005, "lon": LON + 0.0005},
        "tags": {"shop": "supermarket", "name": "Lidl", "addr:city": "Lauf"},
    }
    if with_geometry:
        way["geometry"] = [{"lat": lat, "lon": lon} for lon, lat in corners]
    node = {
        "type": "node",
        "id": 7,
        "lat": LAT + 0.0002,
        "lon": LON + 0.0002,
        "tags": {"shop": "supermarket", "name": "LIDL"},
    }
    return [way, node]


def test_overpass_dedupes_only_ways_that_carry_their_outline(tmp_path):
    with_geometry = read_markets(_overpass(tmp_path / "geom.json", _overpass_pair(True)))
    assert with_geometry.markets["osm_id"].tolist() == [7]
    assert with_geometry.markets["city"].tolist() == ["Lauf"]
    assert with_geometry.duplicates_removed[0]["dropped"] == ("way", 20)

    centre_only = read_markets(_overpass(tmp_path / "center.json", _overpass_pair(False)))
    assert centre_only.markets["osm_id"].tolist() == [7, 20]
    assert centre_only.duplicates_removed == []


def test_overpass_applies_the_same_tag_rules(tmp_path):
    elements = [
        {"type": "node", "id": 1, "lat": LAT, "lon": LON, "tags": {"shop": "bakery"}},
        {"type": "node", "id": 2, "lat": LAT, "lon": LON, "tags": {"shop": "vacant"}},
        {
            "type": "node",
            "id": 3,
            "lat": LAT,
            "lon": LON,
            "tags": {"shop": "bakery", "opening_hours": "closed"},
        },
        {
            "type": "way",
            "id": 4,
            "nodes": [1, 2, 3],
            "center": {"lat": LAT, "lon": LON},
            "tags": {"shop": "bakery"},
        },
        {"type": "way", "id": 5, "nodes": [1, 2, 3, 1], "tags": {"shop": "bakery"}},
        {
            "type": "relation",
            "id": 6,
            "center": {"lat": LAT, "lon": LON},
            "tags": {"type": "multipolygon", "amenity": "marketplace"},
        },
        {"type": "node", "id": 8, "lat": LAT, "lon": LON},  # untagged, as in recursed output
        {"type": "area", "id": 3600062422, "tags": {"amenity": "marketplace"}},
    ]
    result = read_markets(_overpass(tmp_path / "rules.json", elements))

    assert list(zip(result.markets["osm_type"], result.markets["osm_id"], strict=True)) == [
        ("node", 1),
        ("relation", 6),
    ]
    assert result.excluded == {
        "lifecycle": 1,
        "closed": 1,
        "unclosed_way": 1,
        "not_multipolygon": 0,
        "no_geometry": 1,
    }


# --- bad input -----------------------------------------------------------------------------


def _png(path: Path):
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(64))


def _no_markets_pbf(path: Path):
    extract = Extract()
    extract.node(1, LON, LAT, amenity="bench")
    extract.node(2, LON, LAT, shop="vacant")
    extract.write(path)


BAD_INPUTS = {
    "missing": ("missing.osm.pbf", None, "file not found"),
    "empty": ("empty.osm.pbf", lambda p: p.write_bytes(b""), "empty file (0 bytes)"),
    "truncated": (
        "half.osm.pbf",
        lambda p: p.write_bytes(MUENCHEN.read_bytes()[: MUENCHEN.stat().st_size // 2]),
        "broken or truncated PBF file (PBF error: unexpected EOF)",
    ),
    "text": (
        "notes.osm.pbf",
        lambda p: p.write_text("shop=supermarket\n"),
        "neither an OSM PBF nor Overpass JSON file",
    ),
    "png": ("map.png", _png, "neither an OSM PBF nor Overpass JSON file"),
    "osm_xml": (
        "extract.osm",
        lambda p: p.write_text('<?xml version="1.0"?><osm/>'),
        "OSM XML is not supported",
    ),
    "invalid_json": (
        "cut.json",
        lambda p: p.write_text('{"elements": [{"type": "no'),
        "invalid JSON",
    ),
    "json_list": ("list.json", lambda p: p.write_text("[1, 2]"), "JSON but not Overpass output"),
    "json_object": (
        "geo.json",
        lambda p: p.write_text('{"type": "FeatureCollection"}'),
        "JSON but not Overpass output",
    ),
    "json_bad_element": (
        "bad.json",
        lambda p: p.write_text('{"elements": [{"id": 1}]}'),
        "element 0 is not an OSM element",
    ),
    "overpass_error": (
        "timeout.json",
        lambda p: p.write_text('{"elements": [], "remark": "runtime error: Query timed out"}'),
        "Overpass output is incomplete: runtime error: Query timed out",
    ),
    "no_markets_pbf": ("bench.osm.pbf", _no_markets_pbf, "no markets found (shop=supermarket|"),
    "no_markets_json": (
        "none.json",
        lambda p: _overpass(p, []),
        "no markets found (shop=supermarket|",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_names_the_file_and_the_problem(tmp_path, case):
    name, make, problem = BAD_INPUTS[case]
    path = tmp_path / name
    if make is not None:
        make(path)

    with pytest.raises(InputError) as raised:
        read_markets(path)
    assert raised.value.source == str(path)
    assert str(raised.value).startswith(f"{path}: ")
    assert problem in raised.value.problem


def test_no_markets_message_names_the_tag_rule(tmp_path):
    path = tmp_path / "bench.osm.pbf"
    _no_markets_pbf(path)
    with pytest.raises(InputError, match="amenity=marketplace"):
        read_markets(path)
