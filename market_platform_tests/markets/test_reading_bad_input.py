"""read_markets on malformed files: each one raises InputError naming the file and the element.

The cases are the ones a tester found slipping through (accepted, or escaping as a raw
OverflowError, AttributeError, RecursionError, UnicodeDecodeError or TypeError), plus the
fuzzing that found the PBF ones: random byte flips in an uncompressed PBF.
"""

from __future__ import annotations

import copy
import functools
import json
import operator
import random
from collections import Counter
from pathlib import Path

import osmium
import pytest

from market_platform.errors import InputError
from market_platform.markets.reading import read_markets
from market_platform_tests.markets.test_reading import LAT, LON, Extract, _overpass, square


def _raises(path: Path) -> str:
    """The problem of the InputError that reading ``path`` raises; checks it names the file."""
    with pytest.raises(InputError) as raised:
        read_markets(path)
    assert raised.value.source == str(path)
    assert str(raised.value) == f"{path}: {raised.value.problem}"
    return raised.value.problem


def _bakery(**changes) -> dict:
    element = {"type": "node", "id": 42, "lat": LAT, "lon": LON, "tags": {"shop": "bakery"}}
    element.update(changes)
    return element


def _shop_way(**changes) -> dict:
    corners = square(LON, LAT) + square(LON, LAT)[:1]
    way = {
        "type": "way",
        "id": 7,
        "nodes": [1, 2, 3, 4, 1],
        "geometry": [{"lat": lat, "lon": lon} for lon, lat in corners],
        "tags": {"shop": "supermarket"},
    }
    way.update(changes)
    return way


def _vertex(position: int, **changes) -> list:
    vertices = _shop_way()["geometry"]
    vertices[position] = {**vertices[position], **changes}
    return vertices


# An untagged node first, so that "element 1" shows the position is counted over all elements.
UNTAGGED = {"type": "node", "id": 1, "lat": LAT, "lon": LON}

BAD_ELEMENTS = {
    "lat_out_of_range": (_bakery(lat=95), "element 1 (node 42): latitude 95 is outside -90..90"),
    "lon_out_of_range": (
        _bakery(lon=500.0),
        "element 1 (node 42): longitude 500.0 is outside -180..180",
    ),
    "lat_bool": (_bakery(lat=True), "element 1 (node 42): latitude True is not a number"),
    "lat_text": (_bakery(lat="49.0"), "element 1 (node 42): latitude '49.0' is not a number"),
    "lat_huge_int": (
        _bakery(lat=10**400),
        "element 1 (node 42): latitude 100000000000000000...0000000000000000000 is outside",
    ),
    "center_out_of_range": (
        {"type": "way", "id": 9, "center": {"lat": LAT, "lon": -181}, "tags": {"shop": "mall"}},
        "element 1 (way 9): center longitude -181 is outside -180..180",
    ),
    "center_list": (
        {"type": "way", "id": 9, "center": [LAT, LON], "tags": {"shop": "mall"}},
        "element 1 (way 9): center must be an object with lat and lon, not a list",
    ),
    "vertex_out_of_range": (
        _shop_way(geometry=_vertex(2, lat=-91)),
        "element 1 (way 7): geometry vertex 2 latitude -91 is outside -90..90",
    ),
    "vertex_list": (
        _shop_way(geometry=[[LON, LAT]] * 5),
        "element 1 (way 7): geometry vertex 0 must be an object with lat and lon, not a list",
    ),
    "geometry_object": (
        _shop_way(geometry={"lat": LAT}),
        "element 1 (way 7): 'geometry' must be a list, not a dict",
    ),
    "nodes_text": (
        _shop_way(nodes="1,2,3,1"),
        "element 1 (way 7): 'nodes' must be a list of node ids, not a str",
    ),
    "nodes_bool": (
        _shop_way(nodes=[True, 2, 3, True]),
        "element 1 (way 7): 'nodes' must be a list of node ids, not a list holding True",
    ),
    "id_bool": (_bakery(id=True), "element 1 is not an OSM element with a 'type' text and an"),
    "id_float": (_bakery(id=42.0), "element 1 is not an OSM element with a 'type' text and an"),
    "id_too_large": (
        _bakery(id=2**63),
        "element 1 (node 9223372036854775808): not an OSM id (OSM ids are 1 to 2**63 - 1)",
    ),
    "id_zero": (_bakery(id=0), "element 1 (node 0): not an OSM id"),
    "id_negative": (_bakery(id=-42), "element 1 (node -42): not an OSM id"),
    "tags_list": (
        _bakery(tags=["shop", "bakery"]),
        "element 1 (node 42): 'tags' must be an object, not a list",
    ),
    "tag_null": (
        _bakery(tags={"shop": "bakery", "name": None}),
        "element 1 (node 42): tag 'name' is None, not text",
    ),
    "tag_object": (
        _bakery(tags={"shop": "bakery", "name": {"de": "Bäckerei"}}),
        "element 1 (node 42): tag 'name' is {'de': 'Bäckerei'}, not text",
    ),
    "tag_list": (
        _bakery(tags={"shop": ["bakery", "butcher"]}),
        "element 1 (node 42): tag 'shop' is ['bakery', 'butcher'], not text",
    ),
    "tag_number": (
        _bakery(tags={"shop": "bakery", "addr:postcode": 91207}),
        "element 1 (node 42): tag 'addr:postcode' is 91207, not text",
    ),
    # Not a market at all, and still refused: such a file was not written by Overpass.
    "tag_null_on_a_bench": (
        {**UNTAGGED, "id": 2, "tags": {"amenity": "bench", "name": None}},
        "element 1 (node 2): tag 'name' is None, not text",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_ELEMENTS))
def test_overpass_bad_element_names_the_element(tmp_path, case):
    element, problem = BAD_ELEMENTS[case]
    path = _overpass(tmp_path / f"{case}.json", [UNTAGGED, element, _bakery(id=43)])

    assert _raises(path).startswith(problem)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("NaN", "element 0 (node 42): latitude nan is not a finite number"),
        ("Infinity", "element 0 (node 42): latitude inf is not a finite number"),
        ("-Infinity", "element 0 (node 42): latitude -inf is not a finite number"),
        # Python's parser reads a float too large for a double as infinity.
        ("1e999", "element 0 (node 42): latitude inf is not a finite number"),
    ],
)
def test_overpass_non_finite_coordinates(tmp_path, text, problem):
    path = tmp_path / "nan.json"
    element = '{"type": "node", "id": 42, "lat": %s, "lon": 11.0, "tags": {"shop": "bakery"}}'
    path.write_text('{"elements": [%s]}' % (element % text), encoding="utf-8")

    assert _raises(path) == problem


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('{"osm3s": [1], "elements": []}', "'osm3s' must be an object, not a list"),
        (
            '{"osm3s": {"timestamp_osm_base": 1705803548}, "elements": []}',
            "'osm3s.timestamp_osm_base' must be text, not 1705803548",
        ),
        ('{"elements": ' + "[" * 100_000 + "]" * 100_000 + "}", "JSON nested too deeply"),
        # Python refuses integers of more than 4300 digits with a bare ValueError.
        ('{"elements": [], "x": ' + "9" * 5000 + "}", "invalid JSON (Exceeds the limit"),
    ],
    ids=["osm3s_list", "timestamp_number", "deep_nesting", "huge_integer"],
)
def test_overpass_bad_document(tmp_path, text, problem):
    path = tmp_path / "document.json"
    path.write_text(text, encoding="utf-8")

    assert _raises(path).startswith(problem)


def test_overpass_keeps_reading_what_overpass_writes(tmp_path):
    # null vertices (outside a clipping bbox), "tags": null, a missing lon, an integer
    # coordinate and "count" elements with id 0 are all real Overpass output, not errors.
    elements = [
        _shop_way(geometry=_vertex(1, lat=None, lon=None)),
        _bakery(id=5, lat=49, lon=11),
        _bakery(id=6, lon=None),
        {"type": "node", "id": 8, "lat": LAT, "lon": LON, "tags": None},
        {"type": "count", "id": 0, "tags": {"nodes": "3", "total": "3"}},
    ]
    result = read_markets(_overpass(tmp_path / "real.json", elements))

    assert list(zip(result.markets["osm_type"], result.markets["osm_id"], strict=True)) == [
        ("node", 5),
    ]
    assert (result.markets["lon"].iloc[0], result.markets["lat"].iloc[0]) == (11.0, 49.0)
    # The way has neither a complete outline nor a centre; node 6 has no longitude.
    assert result.excluded["no_geometry"] == 2


# --- the same object twice -----------------------------------------------------------------


def test_overpass_duplicate_elements_are_named(tmp_path):
    elements = [_bakery(id=i) for i in (1, 2, 3, 4, 5, 6, 7)] * 2 + [_shop_way()] * 2
    path = _overpass(tmp_path / "twice.json", elements)

    assert _raises(path) == (
        "8 objects appear more than once (an extract holds each object once): "
        "node 1, node 2, node 3, node 4, node 5, ..."
    )


def test_pbf_duplicate_node_is_named(tmp_path):
    path = tmp_path / "twice.osm.pbf"
    with osmium.SimpleWriter(str(path)) as writer:
        for name in ("Old", "New"):
            tags = {"shop": "bakery", "name": name}
            writer.add_node(osmium.osm.mutable.Node(id=1, location=(LON, LAT), tags=tags))
        writer.add_node(osmium.osm.mutable.Node(id=2, location=(LON, LAT), tags=tags))

    assert _raises(path) == (
        "1 object appears more than once (an extract holds each object once): node 1"
    )


def test_pbf_duplicate_former_market_counts_too(tmp_path):
    # The second copy is a vacant shop: keeping either one silently would be a guess.
    path = tmp_path / "twice.osm.pbf"
    with osmium.SimpleWriter(str(path)) as writer:
        for node_id, location in enumerate(square(LON, LAT), start=1):
            writer.add_node(osmium.osm.mutable.Node(id=node_id, location=location))
        for shop in ("supermarket", "vacant"):
            way = osmium.osm.mutable.Way(id=10, nodes=[1, 2, 3, 4, 1], tags={"shop": shop})
            writer.add_way(way)

    assert _raises(path) == (
        "1 object appears more than once (an extract holds each object once): way 10"
    )


# --- broken PBF files ----------------------------------------------------------------------


def _real_pbf(path: Path) -> bytes:
    extract = Extract()
    extract.node(1, LON, LAT, shop="bakery", name="Bäckerei")
    return extract.write(path).read_bytes()


@pytest.mark.parametrize("size", [2, 4, 12, 14])
def test_pbf_cut_short_is_called_truncated(tmp_path, size):
    path = tmp_path / "cut.osm.pbf"
    path.write_bytes(_real_pbf(path)[:size])

    assert _raises(path) == (
        f"truncated OSM PBF: only {size} bytes, less than a PBF's first header"
    )


def _uncompressed_pbf(path: Path, extract: Extract) -> Path:
    """``extract`` as a PBF whose strings are stored as they are, so that a test can edit them."""
    extract.write(path.with_suffix(".tmp.pbf"))
    with osmium.SimpleWriter(osmium.io.File(str(path), "pbf,pbf_compression=none")) as writer:
        for node in osmium.FileProcessor(str(path.with_suffix(".tmp.pbf")), osmium.osm.NODE):
            writer.add_node(node)
    return path


def _replace(path: Path, old: bytes, new: bytes) -> Path:
    data = path.read_bytes()
    assert data.count(old) == 1 and len(old) == len(new)
    path.write_bytes(data.replace(old, new))
    return path


def test_pbf_tag_that_is_not_utf8_names_the_object(tmp_path):
    extract = Extract()
    extract.node(1, LON, LAT, shop="bakery", name="Bäckerei")
    path = _uncompressed_pbf(tmp_path / "latin1.osm.pbf", extract)
    _replace(path, "ä".encode(), b"\xe4k")  # Latin-1 "ä", as a sloppy converter writes it

    problem = _raises(path)
    assert problem.startswith("node 1: a tag or role is not UTF-8 text ('utf-8' codec can't decode")


def test_pbf_error_message_that_is_not_utf8(tmp_path):
    # libosmium quotes the damaged bytes in its message, which then fails to become a str.
    extract = Extract()
    extract.node(1, LON, LAT, shop="bakery")
    path = _uncompressed_pbf(tmp_path / "header.osm.pbf", extract)
    _replace(path, b"DenseNodes", b"Dense\xffodes")

    assert _raises(path) == (
        "broken or truncated PBF file (PBF error: required feature not supported: Dense\ufffdodes)"
    )


def test_pbf_market_coordinates_outside_the_world(tmp_path):
    extract = Extract()
    extract.node(1, LON, 95.0, shop="bakery")
    assert _raises(extract.write(tmp_path / "node.osm.pbf")) == (
        "node 1: latitude 95.0 is outside -90..90"
    )

    extract = Extract()
    extract.node(1, LON, LAT, shop="bakery")
    extract.node(2, 200.0, LAT)
    extract.way(10, [1, 2, 3, 1], shop="supermarket")
    extract.node(3, LON, LAT + 0.001)
    assert _raises(extract.write(tmp_path / "way.osm.pbf")) == (
        "way 10: node 2: longitude 200.0 is outside -180..180"
    )


def test_pbf_market_with_a_negative_id(tmp_path):
    # JOSM numbers objects not yet uploaded -1, -2, ... in every file anew.
    extract = Extract()
    extract.node(-1, LON, LAT, shop="bakery")
    extract.node(2, LON, LAT, shop="bakery")

    assert _raises(extract.write(tmp_path / "josm.osm.pbf")) == (
        "node -1: not an OSM id (OSM ids are 1 to 2**63 - 1; negative ones are objects an "
        "editor has not uploaded)"
    )


def test_pbf_relation_member_with_negative_node_ids_lacks_geometry(tmp_path):
    # Raised TypeError from the location index before; the first pass also finds no location
    # for negative node ids, so the relation has no outline, like one cut by the border.
    extract = Extract()
    extract.node(1, LON, LAT, shop="bakery")
    for node_id, (lon, lat) in enumerate(square(LON, LAT), start=1):
        extract.node(-node_id, lon, lat)
    extract.way(11, [-1, -2, -3, -4, -1])
    extract.relation(50, [("w", 11, "outer")], type="multipolygon", shop="mall")
    result = read_markets(extract.write(tmp_path / "relation.osm.pbf"))

    assert result.markets["osm_id"].tolist() == [1]
    assert result.excluded["no_geometry"] == 1


# --- random damage -------------------------------------------------------------------------
# The fuzzing that found the UnicodeDecodeError and TypeError cases above, kept small and
# seeded: whatever the damage, read_markets returns markets or raises InputError.


def _read_or_problem(path: Path) -> str:
    try:
        read_markets(path)
    except InputError as error:
        assert error.source == str(path)
        return error.problem
    return "read"


def test_pbf_random_byte_flips_raise_input_error_only(tmp_path):
    extract = Extract()
    extract.node(1, LON, LAT, shop="bakery", name="Bäckerei")
    extract.outline(10, square(LON, LAT), shop="supermarket", name="Netto")
    extract.outline(11, square(LON + 0.01, LAT))
    extract.relation(50, [("w", 11, "outer")], type="multipolygon", shop="mall")
    source = _uncompressed_pbf(tmp_path / "source.osm.pbf", extract).read_bytes()
    rng = random.Random(2)
    path = tmp_path / "damaged.osm.pbf"

    outcomes = Counter()
    for _ in range(400):
        damaged = bytearray(source)
        for _ in range(rng.randint(1, 4)):
            damaged[rng.randrange(len(damaged))] = rng.randrange(256)
        path.write_bytes(damaged)
        outcomes[_read_or_problem(path).split(" (")[0]] += 1

    assert outcomes["read"] < 400
    assert outcomes["broken or truncated PBF file"] > 100


# Values Overpass never writes where they land, and some it does.
_OVERPASS_VALUES = [
    *(None, True, 0, -1, 2**63, 10**400, 1.5, float("nan"), float("inf"), 95, -200),
    *("", "closed", "supermarket", [], {}, [1], {"lat": 1}),
]


def _paths(value, prefix=()):
    """The key paths to every value inside ``value``, itself included."""
    yield prefix
    if isinstance(value, dict | list):
        for key, child in value.items() if isinstance(value, dict) else enumerate(value):
            yield from _paths(child, (*prefix, key))


def test_overpass_random_values_raise_input_error_only(tmp_path):
    elements = [
        _bakery(),
        {**_shop_way(), "center": {"lat": LAT, "lon": LON}},
        {
            "type": "relation",
            "id": 30,
            "center": {"lat": LAT, "lon": LON},
            "tags": {"type": "multipolygon", "amenity": "marketplace"},
        },
        {"type": "node", "id": 8, "lat": LAT, "lon": LON, "tags": {"shop": "vacant"}},
        UNTAGGED,
    ]
    rng = random.Random(1)
    path = tmp_path / "damaged.json"

    outcomes = Counter()
    for _ in range(400):
        document = {"osm3s": {"timestamp_osm_base": "2024-01-21T02:19:08Z"}}
        document["elements"] = copy.deepcopy(elements)
        for _ in range(rng.randint(1, 3)):
            where = rng.choice([keys for keys in _paths(document) if keys])
            parent = functools.reduce(operator.getitem, where[:-1], document)
            parent[where[-1]] = rng.choice(_OVERPASS_VALUES)
        # json.dumps writes NaN and Infinity, as a careless writer would.
        path.write_text(json.dumps(document), encoding="utf-8")
        outcomes[_read_or_problem(path)] += 1

    assert 0 < outcomes["read"] < 400
    assert any("is not a finite number" in problem for problem in outcomes)
    assert any("not text (Overpass writes" in problem for problem in outcomes)


def test_overpass_tag_with_a_lone_surrogate_names_the_element(tmp_path):
    # Valid JSON ("\udc84" escape), but no text that UTF-8 or a database can hold.
    path = tmp_path / "surrogate.json"
    path.write_text('{"version": 0.6, "elements": [{"type": "node", "id": 5, "lat": 48.1, '
                    '"lon": 11.5, "tags": {"shop": "bakery", "name": "B\\udc84cker"}}]}')
    with pytest.raises(InputError, match=r"surrogate\.json: element 0 \(node 5\): tag 'name' "
                                         r"holds an escape that is not UTF-8 text"):
        read_markets(path)
