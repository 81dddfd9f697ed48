"""Market candidates from Overpass API JSON (``[out:json]; ...; out center;``).

Overpass output has no node index to resolve ways with: a node carries ``lat``/``lon``, a way or
relation carries ``center`` (the middle of its bounding box) from ``out center``, or its
outline as ``geometry`` from ``out geom``. A way with ``geometry`` gets a point inside that
outline, like a PBF way; a way with only ``center`` keeps the centre, which can fall outside an
L-shaped building.

Deduplication needs outlines, so it only happens for ways that carry ``geometry``. With plain
``out center`` output, such as the Lidl file in shared data, a shop mapped both as a node and
on its building stays two rows: that is a limit of the input, not of the rules.
"""

from __future__ import annotations

import json
from pathlib import Path

from market_platform.errors import InputError
from market_platform.markets import geometry
from market_platform.markets.candidates import (
    NO_GEOMETRY,
    NOT_MULTIPOLYGON,
    UNCLOSED_WAY,
    Candidate,
    Extract,
    parse_timestamp,
)
from market_platform.markets.tags import classify, market_fields

_OSM_TYPES = ("node", "way", "relation")


def read_overpass(path: Path) -> Extract:
    """All market candidates of the Overpass JSON file at ``path``.

    Raises:
        InputError: invalid JSON, JSON that is not Overpass output, or output that Overpass
            itself marked as failed (a ``remark`` with a runtime error means cut-off data).
    """
    elements, document = _load(path)
    extract = Extract(
        candidates=[],
        osm_timestamp=parse_timestamp((document.get("osm3s") or {}).get("timestamp_osm_base")),
    )
    for position, element in enumerate(elements):
        if not _is_element(element):
            problem = f"element {position} is not an OSM element with 'type' and 'id': {element!r}"
            raise InputError(path, problem[:200])
        # Overpass also writes "area" and "count" elements; they are never markets.
        if element["type"] in _OSM_TYPES:
            _add_element(element, extract)
    return extract


def _load(path: Path) -> tuple[list, dict]:
    # "from None" below: the parser's text is in the message, and a chained cause would be
    # what Dagster shows first, hiding the file name.
    try:
        with open(path, encoding="utf-8-sig") as handle:
            document = json.load(handle)
    except UnicodeDecodeError as error:
        raise InputError(path, f"not UTF-8 text, so not Overpass JSON ({error})") from None
    except json.JSONDecodeError as error:
        raise InputError(path, f"invalid JSON ({error})") from None

    if not isinstance(document, dict) or not isinstance(document.get("elements"), list):
        raise InputError(
            path, "JSON but not Overpass output: expected an object with an 'elements' list"
        )
    remark = str(document.get("remark", ""))
    if "error" in remark.lower():
        raise InputError(path, f"Overpass output is incomplete: {remark}")
    return document["elements"], document


def _is_element(element: object) -> bool:
    return (
        isinstance(element, dict)
        and isinstance(element.get("type"), str)
        and isinstance(element.get("id"), int)
    )


def _add_element(element: dict, extract: Extract) -> None:
    tags = {str(key): str(value) for key, value in (element.get("tags") or {}).items()}
    market_type, reason = classify(tags)
    if reason is not None:
        extract.excluded[reason] += 1
        return
    if market_type is None:
        return

    osm_type = element["type"]
    if osm_type == "way" and not _closed(element):
        extract.excluded[UNCLOSED_WAY] += 1
        return
    if osm_type == "relation" and tags.get("type") != "multipolygon":
        extract.excluded[NOT_MULTIPOLYGON] += 1
        return

    area = _way_area(element) if osm_type == "way" else None
    point = geometry.inside_point(area) if area is not None else _point(element)
    if point is None:
        extract.excluded[NO_GEOMETRY] += 1
        return
    lon, lat = point
    extract.candidates.append(
        Candidate(osm_type, element["id"], market_type, market_fields(tags), lon, lat, area)
    )


def _closed(way: dict) -> bool:
    """Whether a way is closed, judged by its node ids, else by its geometry; True if unknown."""
    nodes = way.get("nodes")
    if nodes:
        return len(nodes) >= 2 and nodes[0] == nodes[-1]
    outline = way.get("geometry")
    if outline:
        return len(outline) >= 2 and outline[0] == outline[-1]
    return True


def _way_area(way: dict):
    outline = way.get("geometry")
    # Overpass writes null for nodes outside a clipping bbox: such an outline is not complete.
    if not outline or any(not _has_lat_lon(vertex) for vertex in outline):
        return None
    return geometry.ring_area([(vertex["lon"], vertex["lat"]) for vertex in outline])


def _point(element: dict) -> tuple[float, float] | None:
    place = element if element["type"] == "node" else element.get("center")
    if not _has_lat_lon(place):
        return None
    return float(place["lon"]), float(place["lat"])


def _has_lat_lon(place: object) -> bool:
    return (
        isinstance(place, dict)
        and isinstance(place.get("lat"), (int, float))
        and isinstance(place.get("lon"), (int, float))
    )
