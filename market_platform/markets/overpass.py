"""Market candidates from Overpass API JSON (``[out:json]; ...; out center;``).

Overpass output has no node index to resolve ways with: a node carries ``lat``/``lon``, a way or
relation carries ``center`` (the middle of its bounding box) from ``out center``, or its
outline as ``geometry`` from ``out geom``. A way with ``geometry`` gets a point inside that
outline, like a PBF way; a way with only ``center`` keeps the centre, which can fall outside an
L-shaped building.

Deduplication needs outlines, so it only happens for ways that carry ``geometry``. With plain
``out center`` output, such as the Lidl file in shared data, a shop mapped both as a node and
on its building stays two rows: that is a limit of the input, not of the rules.

Overpass writes every tag value as text and every coordinate as a number in degrees. A file
that breaks this was written or edited by something else: a tag value that is not text (null,
a number, an object) and a coordinate that is not a finite number within -90..90 / -180..180
raise ``InputError`` naming the element, rather than being stored as ``"None"`` or failing
later in the database. Tags are checked on every element, as every element's tags are read;
ids and coordinates on the elements with market tags, the only ones a row is made of.
"""

from __future__ import annotations

import json
import reprlib
from datetime import datetime
from pathlib import Path

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
from market_platform.markets.tags import classify, market_fields

_OSM_TYPES = ("node", "way", "relation")

Point = tuple[float, float]


def read_overpass(path: Path) -> Extract:
    """All market candidates of the Overpass JSON file at ``path``.

    Raises:
        InputError: invalid JSON, JSON that is not Overpass output, output that Overpass
            itself marked as failed (a ``remark`` with a runtime error means cut-off data), or
            an element that Overpass would not have written (see the module docstring).
    """
    elements, document = _load(path)
    extract = Extract(candidates=[], osm_timestamp=_timestamp(path, document))
    for position, element in enumerate(elements):
        if not _is_element(element):
            problem = (
                f"element {position} is not an OSM element with a 'type' text and an integer "
                f"'id': {element!r}"
            )
            raise InputError(path, problem[:200])
        # Overpass also writes "area" and "count" elements; they are never markets.
        if element["type"] not in _OSM_TYPES:
            continue
        try:
            _add_element(element, extract)
        except BadElement as error:
            where = f"element {position} ({element['type']} {element['id']})"
            raise InputError(path, f"{where}: {error}") from None
    return extract


def _load(path: Path) -> tuple[list, dict]:
    # "from None" below: the parser's text is in the message, and a chained cause would be
    # what Dagster shows first, hiding the file name.
    try:
        with open(path, encoding="utf-8-sig") as handle:
            document = json.load(handle)
    except UnicodeDecodeError as error:
        raise InputError(path, f"not UTF-8 text, so not Overpass JSON ({error})") from None
    except RecursionError:
        raise InputError(path, "JSON nested too deeply to be Overpass output") from None
    except ValueError as error:
        # JSONDecodeError, or the plain ValueError of an integer of more than 4300 digits
        # (sys.int_info.default_max_str_digits).
        raise InputError(path, f"invalid JSON ({error})") from None

    if not isinstance(document, dict) or not isinstance(document.get("elements"), list):
        raise InputError(
            path, "JSON but not Overpass output: expected an object with an 'elements' list"
        )
    remark = str(document.get("remark", ""))
    if "error" in remark.lower():
        raise InputError(path, f"Overpass output is incomplete: {remark}")
    return document["elements"], document


def _timestamp(path: Path, document: dict) -> datetime | None:
    osm3s = document.get("osm3s")
    if osm3s is None:
        return None
    if not isinstance(osm3s, dict):
        raise InputError(path, f"'osm3s' must be an object, not a {type(osm3s).__name__}")
    stamp = osm3s.get("timestamp_osm_base")
    if stamp is not None and not isinstance(stamp, str):
        raise InputError(
            path, f"'osm3s.timestamp_osm_base' must be text, not {reprlib.repr(stamp)}"
        )
    return parse_timestamp(stamp)


def _is_element(element: object) -> bool:
    # bool is an int to Python: "id": true is no id.
    return (
        isinstance(element, dict)
        and isinstance(element.get("type"), str)
        and isinstance(element.get("id"), int)
        and not isinstance(element["id"], bool)
    )


def _add_element(element: dict, extract: Extract) -> None:
    tags = _tags(element.get("tags"))
    market_type, reason = classify(tags)
    if market_type is None and reason is None:
        return
    osm_type = element["type"]
    extract.look_at(osm_type, element["id"])
    if reason is not None:
        extract.excluded[reason] += 1
        return

    outline = _outline(element) if osm_type == "way" else None
    if osm_type == "way" and not _closed(element, outline):
        extract.excluded[UNCLOSED_WAY] += 1
        return
    if osm_type == "relation" and tags.get("type") != "multipolygon":
        extract.excluded[NOT_MULTIPOLYGON] += 1
        return

    # Overpass writes null for vertices outside a clipping bbox: such an outline is not complete.
    complete = outline and None not in outline
    area = geometry.ring_area(outline) if complete else None
    point = geometry.inside_point(area) if area is not None else _point(element)
    if point is None:
        extract.excluded[NO_GEOMETRY] += 1
        return
    lon, lat = point
    extract.candidates.append(
        Candidate(osm_type, element["id"], market_type, market_fields(tags), lon, lat, area)
    )


def _tags(tags: object) -> dict[str, str]:
    if tags is None:
        return {}
    if not isinstance(tags, dict):
        raise BadElement(f"'tags' must be an object, not a {type(tags).__name__}")
    for key, value in tags.items():
        if not isinstance(value, str):
            raise BadElement(
                f"tag {key!r} is {reprlib.repr(value)}, not text "
                "(Overpass writes every tag value as text)"
            )
        try:
            # A lone surrogate (a "\udc84" escape) is valid JSON but no text a database stores.
            key.encode("utf-8"), value.encode("utf-8")
        except UnicodeEncodeError:
            raise BadElement(f"tag {key!r} holds an escape that is not UTF-8 text: "
                             f"{value.encode('utf-8', 'backslashreplace').decode()!r}") from None
    return tags


def _closed(way: dict, outline: list[Point | None] | None) -> bool:
    """Whether a way is closed, judged by its node ids, else by its outline; True if unknown."""
    nodes = way.get("nodes")
    if nodes is not None:
        _check_node_ids(nodes)
    if nodes:
        return len(nodes) >= 2 and nodes[0] == nodes[-1]
    if outline:
        return len(outline) >= 2 and outline[0] == outline[-1]
    return True


def _check_node_ids(nodes: object) -> None:
    if not isinstance(nodes, list):
        raise BadElement(f"'nodes' must be a list of node ids, not a {type(nodes).__name__}")
    for ref in nodes:
        if isinstance(ref, bool) or not isinstance(ref, int):
            raise BadElement(
                f"'nodes' must be a list of node ids, not a list holding {reprlib.repr(ref)}"
            )


def _outline(way: dict) -> list[Point | None] | None:
    """The way's vertices from ``out geom`` (None where Overpass wrote null); None without."""
    vertices = way.get("geometry")
    if vertices is None:
        return None
    if not isinstance(vertices, list):
        raise BadElement(f"'geometry' must be a list, not a {type(vertices).__name__}")
    return [
        _location(vertex, f"geometry vertex {position}")
        for position, vertex in enumerate(vertices)
    ]


def _point(element: dict) -> Point | None:
    if element["type"] == "node":
        return _location(element, "")
    return _location(element.get("center"), "center")


def _location(place: object, label: str) -> Point | None:
    """``(lon, lat)`` of a node, centre or vertex; None when it has none."""
    if place is None:
        return None
    if not isinstance(place, dict):
        raise BadElement(
            f"{label} must be an object with lat and lon, not a {type(place).__name__}"
        )
    lat, lon = place.get("lat"), place.get("lon")
    if lat is None or lon is None:
        return None
    prefix = f"{label} " if label else ""
    problem = coordinate_problem("latitude", lat) or coordinate_problem("longitude", lon)
    if problem is not None:
        raise BadElement(prefix + problem)
    return float(lon), float(lat)
