"""Market candidates from an OSM PBF extract, streamed with pyosmium.

One pass reads the whole file: libosmium keeps every node location in its own C++ index (8 to
16 bytes a node, never a Python object per node), and a C++ tag filter lets only market-like
objects reach Python, so that the Python work grows with the number of markets, not with the
size of the extract. Node markets take their location, way markets their outline's
coordinates from that index.

Multipolygon relations are the one case a single pass cannot serve: they come after the ways
in a PBF, so their member ways have already gone by. Only when the first pass found market
relations does a second pass read the file again, ways only, pick the member ways by id and
look their nodes up in the index kept from the first pass. That pass costs about half of the
first one; none of the extracts in shared data needs it.

Like libosmium itself, the reader expects nodes before ways before relations, each sorted by
id, as every extract tool writes PBFs.

Damage that libosmium reports (a cut or corrupt file), tag text that is not UTF-8, and market
objects with an id that is not an OSM id or a location outside the world raise ``InputError``
naming the file and the object. All checks run on the objects that pass the C++ tag filter,
never once per node of the extract.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import osmium
from osmium.filter import IdFilter, KeyFilter, TagFilter

from market_platform.errors import InputError
from market_platform.markets import geometry
from market_platform.markets.candidates import (
    NO_GEOMETRY,
    NOT_MULTIPOLYGON,
    UNCLOSED_WAY,
    BadElement,
    Candidate,
    Extract,
    coordinate_problem,
    parse_timestamp,
)
from market_platform.markets.tags import FILTER_KEYS, FILTER_TAGS, classify, market_fields

TIMESTAMP_KEYS = ("osmosis_replication_timestamp", "timestamp")

# How libosmium's IdFilter stores ids (IdSetDense): one bitmap of 2^25 bits per block of ids.
_ID_BLOCK_BITS = 25
_ID_BLOCK_BYTES = 2**_ID_BLOCK_BITS // 8
_ID_FILTER_BUDGET = 128 * 2**20

# libosmium's Location::undefined_coordinate: a location never set, not a wrong one.
_UNDEFINED = 2**31 - 1

_KINDS = {"n": "node", "w": "way", "r": "relation"}


def read_pbf(path: Path) -> Extract:
    """All market candidates of the PBF at ``path``; the format has been checked by the caller.

    Raises:
        InputError: when libosmium cannot read the file (truncated, corrupt), or a market
            object is unusable (see the module docstring).
    """
    # One thread pool for the header and both passes, rather than threads started per read.
    processor = partial(
        osmium.FileProcessor, osmium.io.File(str(path), "pbf"), thread_pool=osmium.io.ThreadPool()
    )
    try:
        extract = _header(processor)
        _read_objects(processor, extract)
    except RuntimeError as error:
        # libosmium reports every kind of damage as RuntimeError ("PBF error: unexpected EOF").
        # Its text is in the message; chaining it would make Dagster show it as the root cause
        # instead of the InputError that names the file.
        raise InputError(path, f"broken or truncated PBF file ({error})") from None
    except UnicodeDecodeError as error:
        # libosmium quotes the damaged bytes in some messages ("required feature not
        # supported: ..."), and pybind11 then fails to turn the message into a str.
        text = bytes(error.object).decode("utf-8", "replace")
        raise InputError(path, f"broken or truncated PBF file ({text})") from None
    except BadElement as error:
        raise InputError(path, str(error)) from None
    return extract


def _header(processor) -> Extract:
    header = processor().header
    stamp = next((header.get(key) for key in TIMESTAMP_KEYS if header.get(key)), None)
    box = header.box()
    bbox = None
    if box.valid():
        bbox = (box.bottom_left.lon, box.bottom_left.lat, box.top_right.lon, box.top_right.lat)
    return Extract(candidates=[], osm_timestamp=parse_timestamp(stamp), header_bbox=bbox)


def _read_objects(processor, extract: Extract) -> None:
    locations = osmium.index.create_map("flex_mem")
    node_locations = osmium.NodeLocationsForWays(locations)
    node_locations.ignore_errors()  # a way cut by the extract's border is counted, not fatal
    objects = (
        processor()
        # Ways are filtered before the location handler, which then looks up the nodes of the
        # market ways only, not of every way: a fifth of the pass on the benchmark file.
        .with_filter(KeyFilter(*FILTER_KEYS).enable_for(osmium.osm.WAY))
        .with_filter(TagFilter(*FILTER_TAGS).enable_for(osmium.osm.WAY))
        .with_filter(node_locations)
        # The key filter is a cheap first cut; the tag filter alone is slower on large files.
        .with_filter(KeyFilter(*FILTER_KEYS))
        .with_filter(TagFilter(*FILTER_TAGS))
    )
    relations = []
    for obj in objects:
        # Named here: pyosmium's object can be read only until the loop moves on.
        try:
            _add_object(obj, extract, relations)
        except UnicodeDecodeError as error:
            raise BadElement(f"{_name(obj)}: a tag or role is not UTF-8 text ({error})") from None
        except BadElement as error:
            raise BadElement(f"{_name(obj)}: {error}") from None

    if relations:
        _add_relations(processor, locations, relations, extract)


def _name(obj) -> str:
    return f"{_KINDS[obj.type_str()]} {obj.id}"


def _add_object(obj, extract: Extract, relations: list) -> None:
    tags = {tag.k: tag.v for tag in obj.tags}
    market_type, reason = classify(tags)
    if market_type is None and reason is None:
        return
    extract.look_at(_KINDS[obj.type_str()], obj.id)
    if reason is not None:
        extract.excluded[reason] += 1
    elif obj.is_node():
        _add_node(obj, market_type, tags, extract)
    elif obj.is_way():
        _add_way(obj, market_type, tags, extract)
    elif tags.get("type") != "multipolygon":
        extract.excluded[NOT_MULTIPOLYGON] += 1
    else:
        members = [(member.ref, member.role) for member in obj.members if member.type == "w"]
        relations.append((obj.id, market_type, market_fields(tags), members))


def _add_node(node, market_type: str, tags: dict, extract: Extract) -> None:
    location = node.location
    if not location.valid():
        _check_location(location)
        extract.excluded[NO_GEOMETRY] += 1
        return
    extract.candidates.append(
        Candidate("node", node.id, market_type, market_fields(tags), location.lon, location.lat)
    )


def _add_way(way, market_type: str, tags: dict, extract: Extract) -> None:
    refs = way.nodes
    if len(refs) < 2 or refs[0].ref != refs[-1].ref:
        extract.excluded[UNCLOSED_WAY] += 1
        return
    try:
        coords = [(ref.lon, ref.lat) for ref in refs]
    except osmium.InvalidLocationError:
        for ref in refs:
            _check_location(ref.location, f"node {ref.ref}: ")
        # A node outside the extract: the outline, and so a point inside it, is unknown.
        extract.excluded[NO_GEOMETRY] += 1
        return
    area = geometry.ring_area(coords)
    if area is None:
        extract.excluded[NO_GEOMETRY] += 1
        return
    lon, lat = geometry.inside_point(area)
    extract.candidates.append(
        Candidate("way", way.id, market_type, market_fields(tags), lon, lat, area)
    )


def _add_relations(processor, locations, relations: list, extract: Extract) -> None:
    wanted = {ref for _, _, _, members in relations for ref, _ in members}
    ways = _member_ways(processor, locations, wanted)

    for relation_id, market_type, fields, members in relations:
        outer, inner, complete = [], [], bool(members)
        for ref, role in members:
            coords = ways.get(ref)
            if coords is None:
                complete = False
                break
            (inner if role == "inner" else outer).append(coords)
        # An incomplete relation (cut by the extract's border) is skipped, not guessed.
        area = geometry.multipolygon_area(outer, inner) if complete else None
        if area is None:
            extract.excluded[NO_GEOMETRY] += 1
            continue
        lon, lat = geometry.inside_point(area)
        extract.candidates.append(
            Candidate("relation", relation_id, market_type, fields, lon, lat, area)
        )


def _member_ways(processor, locations, wanted: set[int]) -> dict[int, list | None]:
    """The coordinates of the ``wanted`` ways (None where a node is missing), in one pass.

    libosmium's IdFilter sets aside a 4 MiB bitmap for every block of 2^25 ids holding a wanted
    id: little for ids close together, hundreds of MB for ids spread far apart (the tiles of
    the benchmark file put 1e10 between copies of the same way). Above 128 MiB, or a quarter of
    the node index when that is larger, the ids are checked in Python instead: slower per way,
    flat in memory. Real way ids (Helgoland's newest in 2026: 1.5e9) span at most 45 blocks.
    """
    member_ways = processor(osmium.osm.WAY)
    bitmap_bytes = len({ref >> _ID_BLOCK_BITS for ref in wanted}) * _ID_BLOCK_BYTES
    if bitmap_bytes <= max(_ID_FILTER_BUDGET, locations.used_memory() // 4):
        member_ways = member_ways.with_filter(IdFilter(wanted))

    ways: dict[int, list | None] = {}
    for way in member_ways:
        if way.id not in wanted:
            continue
        ways[way.id] = _way_coords(way, locations)
        if len(ways) == len(wanted):
            # The rest of the ways and all relations would be decoded for nothing.
            break
    return ways


def _way_coords(way, locations) -> list[tuple[float, float]] | None:
    coords = []
    for ref in way.nodes:
        # The index takes no negative ids (its get() raises TypeError on them); the first
        # pass stores none either, so a way of such nodes has no outline there too.
        if ref.ref < 0:
            return None
        try:
            location = locations.get(ref.ref)
        except KeyError:
            return None
        if not location.valid():
            _check_location(location, f"way {way.id}: node {ref.ref}: ")
            return None
        coords.append((location.lon, location.lat))
    return coords


def _check_location(location, prefix: str = "") -> None:
    """Raise BadElement for a location that is set but outside the world; unset ones pass."""
    if location.valid() or (location.x == _UNDEFINED and location.y == _UNDEFINED):
        return
    lon, lat = location.lon_without_check(), location.lat_without_check()
    problem = coordinate_problem("latitude", lat) or coordinate_problem("longitude", lon)
    raise BadElement(prefix + (problem or f"location ({lon}, {lat}) is not valid"))
