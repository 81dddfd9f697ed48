"""What one live Overpass query covers: a Kreis or Land by AGS key, or a bounding box.

The area of a Kreis or Land is taken from our own Kreise polygons (``REGIONS_FILE``), not from
Overpass' ``area[...]`` objects, for three reasons: the OSM key differs between Landkreise
(5 digits) and kreisfreie Städte (8 digits), not every Overpass instance builds areas, and
the live source then agrees with the region assignment and the statistics on every border.
The bbox of the polygons is queried in tiles, and the merged answer keeps exactly the markets
that ``assign_regions`` places in the area (inside, on the border by the lowest key, or
nearest within 2 km).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import geopandas as gpd
import pandas as pd
from shapely.geometry import box

from market_platform.errors import InputError
from market_platform.regions.assignment import DEFAULT_MAX_DISTANCE_M, assign_regions
from market_platform.regions.loading import LAENDER

#: ``OSM_EXTRACT`` values starting with this are live Overpass queries.
PREFIX = "overpass:"

# South of Sylt's tip to north of the Zugspitze, Selfkant to Görlitz, with a margin: a bbox
# outside it is a typo (swapped axes) more often than a wish.
_GERMANY = (5.0, 47.0, 16.0, 55.5)
_METRIC_CRS = "EPSG:3035"
_REACH_M = DEFAULT_MAX_DISTANCE_M


@dataclass(frozen=True)
class Area:
    """One live query's area: ``key`` is ``09162``, ``09`` or ``bbox-<w>_<s>_<e>_<n>``."""

    key: str
    name: str
    #: ``(min_lon, min_lat, max_lon, max_lat)``.
    bbox: tuple[float, float, float, float]
    #: The Kreise or the Land polygons of the area; None for a plain bbox.
    shape: gpd.GeoDataFrame | None = None

    @property
    def source(self) -> str:
        """The ``OSM_EXTRACT`` value that names this area."""
        if self.shape is None:
            return PREFIX + "bbox=" + ",".join(f"{v:g}" for v in self.bbox)
        return PREFIX + self.key


def is_live(source: str) -> bool:
    return str(source).startswith(PREFIX)


def parse(source: str, kreise: gpd.GeoDataFrame | None) -> Area:
    """The area named by ``overpass:09162`` (Kreis), ``overpass:09`` (Land) or
    ``overpass:bbox=<min_lon>,<min_lat>,<max_lon>,<max_lat>``.

    ``kreise`` are the Kreise polygons (``load_kreise``); a bbox needs none.
    """
    spec = source.removeprefix(PREFIX).strip()
    if spec.startswith("bbox="):
        return _bbox_area(source, spec.removeprefix("bbox="))
    if not re.fullmatch(r"\d{2}|\d{5}", spec):
        raise InputError(
            source, "expected overpass:<Land key, 2 digits>, overpass:<Kreis key, 5 digits> "
            "or overpass:bbox=<min_lon>,<min_lat>,<max_lon>,<max_lat>"
        )
    if kreise is None:
        raise InputError(source, "an area by AGS key needs the Kreise polygons (REGIONS_FILE)")
    shape = kreise[kreise["ags"].str.startswith(spec)]
    if shape.empty:
        level = "Land" if len(spec) == 2 else "Kreis"
        raise InputError(source, f"no {level} with AGS key {spec} in the regions file")
    west, south, east, north = (float(v) for v in shape.total_bounds)
    return Area(spec, _name(spec, shape), (west, south, east, north), shape)


def _name(key: str, shape: gpd.GeoDataFrame) -> str:
    if len(key) == 2:
        return f"Land {key} {LAENDER.get(key, '')}".strip()
    return f"Kreis {key} {shape['name'].iloc[0]}"


def _bbox_area(source: str, text: str) -> Area:
    try:
        west, south, east, north = (float(v) for v in text.split(","))
    except ValueError:
        problem = "bbox needs four numbers: min_lon,min_lat,max_lon,max_lat"
        raise InputError(source, problem) from None
    if not (west < east and south < north):
        raise InputError(source, "bbox is empty: min_lon < max_lon and min_lat < max_lat needed")
    gw, gs, ge, gn = _GERMANY
    if west < gw or east > ge or south < gs or north > gn:
        raise InputError(source, f"bbox lies outside Germany ({gw},{gs},{ge},{gn})")
    key = "bbox-" + "_".join(f"{v:.5f}" for v in (west, south, east, north))
    return Area(key, f"bbox {west:g},{south:g},{east:g},{north:g}", (west, south, east, north))


def tiles(area: Area, max_degrees: float) -> list[tuple[float, float, float, float]]:
    """Equal tiles of at most ``max_degrees`` a side covering the area's bbox.

    Tiles that touch no polygon of the area are left out (the sea off a coast, a neighbour's
    corner of the bbox), so a Land costs only the queries its land needs.
    """
    west, south, east, north = area.bbox
    columns = max(1, math.ceil((east - west) / max_degrees - 1e-9))
    rows = max(1, math.ceil((north - south) / max_degrees - 1e-9))
    width, height = (east - west) / columns, (north - south) / rows
    found = []
    for row in range(rows):
        for column in range(columns):
            tile = (
                west + column * width,
                south + row * height,
                east if column == columns - 1 else west + (column + 1) * width,
                north if row == rows - 1 else south + (row + 1) * height,
            )
            found.append(tile)
    if area.shape is None or len(found) == 1:
        return found
    # The nearest-Kreis rule reaches 2 km beyond the polygons; metres need a metric CRS.
    land = area.shape.geometry.to_crs(_METRIC_CRS).buffer(_REACH_M).union_all()
    boxes = gpd.GeoSeries([box(*tile) for tile in found], crs="EPSG:4326").to_crs(_METRIC_CRS)
    return [tile for tile, shape in zip(found, boxes) if land.intersects(shape)]


def clip(elements: list[dict], area: Area, kreise: gpd.GeoDataFrame | None) -> list[dict]:
    """The elements that belong to ``area``: for a Kreis or Land those that ``assign_regions``
    places in it (judged against all Kreise, so border ties break as everywhere else), for a
    bbox those whose point lies in it. Elements without a point are kept for the reader to
    count as ``no_geometry``."""
    points = [(index, _point(element)) for index, element in enumerate(elements)]
    located = [(index, point) for index, point in points if point is not None]
    keep = {index for index, point in points if point is None}
    if not located:
        return [elements[index] for index in sorted(keep)]

    if area.shape is None or kreise is None:
        west, south, east, north = area.bbox
        keep |= {i for i, (lon, lat) in located if west <= lon <= east and south <= lat <= north}
    else:
        frame = pd.DataFrame({
            "osm_type": ["x"] * len(located),
            "osm_id": [index for index, _ in located],
            "lon": [point[0] for _, point in located],
            "lat": [point[1] for _, point in located],
        })
        placed = assign_regions(frame, kreise)
        inside = placed["kreis_ags"].fillna("").str.startswith(area.key)
        keep |= set(placed.loc[inside, "osm_id"].astype(int))
    return [elements[index] for index in sorted(keep)]


def _point(element: dict) -> tuple[float, float] | None:
    place = element if element.get("type") == "node" else element.get("center")
    if not isinstance(place, dict):
        return None
    lon, lat = place.get("lon"), place.get("lat")
    if isinstance(lon, (int, float)) and isinstance(lat, (int, float)):
        return float(lon), float(lat)
    return None
