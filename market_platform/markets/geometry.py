"""Area geometries of markets mapped as outlines, and a point that lies inside them.

The point of an area is shapely's ``point_on_surface``, not the centroid: the centroid of an
L-shaped mall or of a market square with a hole can fall outside the area, and a market
point outside its own building would be joined to the wrong street block or Kreis.
"""

from __future__ import annotations

from collections.abc import Sequence

import shapely
from shapely.geometry import LineString, Polygon
from shapely.geometry.base import BaseGeometry
from shapely.ops import linemerge

Coords = Sequence[tuple[float, float]]


def ring_area(coords: Coords) -> BaseGeometry | None:
    """The area of one closed ring, or None when it encloses nothing.

    Self-intersecting outlines (a bow-tie drawn by accident) are repaired rather than dropped:
    the shop is real even when its outline is sloppy.
    """
    if len(coords) < 4 or coords[0] != coords[-1]:
        return None
    return _polygonal(Polygon(coords))


def multipolygon_area(outer: list[Coords], inner: list[Coords]) -> BaseGeometry | None:
    """The area of a multipolygon relation from its member ways' coordinates.

    Member ways are joined end to end into rings; None when the outer ways do not close into
    rings (a member missing from the extract, a gap in the data).
    """
    outer_rings = _rings(outer)
    if not outer_rings:
        return None
    area = shapely.union_all([Polygon(ring) for ring in outer_rings])
    inner_rings = _rings(inner) if inner else []
    if inner_rings is None:
        return None
    if inner_rings:
        area = area.difference(shapely.union_all([Polygon(ring) for ring in inner_rings]))
    return _polygonal(area)


def inside_point(area: BaseGeometry) -> tuple[float, float]:
    point = area.point_on_surface()
    return point.x, point.y


def _rings(lines: list[Coords]) -> list[Coords] | None:
    """Closed rings from way segments, or None when any segment stays open."""
    usable = [line for line in lines if len(line) >= 2]
    if not usable:
        return None
    merged = linemerge([LineString(line) for line in usable])
    parts = getattr(merged, "geoms", [merged])
    rings = [list(part.coords) for part in parts]
    if any(len(ring) < 4 or ring[0] != ring[-1] for ring in rings):
        return None
    return rings


def _polygonal(geometry: BaseGeometry) -> BaseGeometry | None:
    if not geometry.is_valid:
        geometry = shapely.make_valid(geometry)
    if geometry.geom_type == "GeometryCollection":
        polygons = [part for part in geometry.geoms if part.geom_type.endswith("Polygon")]
        geometry = shapely.union_all(polygons) if polygons else Polygon()
    if geometry.is_empty or not geometry.geom_type.endswith("Polygon") or geometry.area == 0:
        return None
    return geometry
