"""Place each market in exactly one Kreis (and so one Land).

Rules, in this order:

1. A market inside or on the boundary of a Kreis polygon belongs to it. A point on the shared
   border of two Kreise touches both; the tie is broken by the lowest AGS key, so the answer
   never depends on row order.
2. A market outside every polygon but within ``max_distance_m`` of one belongs to the nearest
   Kreis. The BKG polygons are simplified by 200 m, so shops on the coast or at the border can
   fall just outside; that is a drawing artefact, not a market abroad.
3. Anything farther away stays unassigned (``kreis_ags`` is empty) and is reported.
"""

from __future__ import annotations

import geopandas as gpd
import pandas as pd

from market_platform.errors import InputError

DEFAULT_MAX_DISTANCE_M = 2_000.0
_METRIC_CRS = "EPSG:3035"
KEY = ["osm_type", "osm_id"]


def assign_regions(
    markets: pd.DataFrame,
    regions: gpd.GeoDataFrame,
    max_distance_m: float = DEFAULT_MAX_DISTANCE_M,
) -> pd.DataFrame:
    """One row per market: key, ``kreis_ags``, ``land_ags``, ``assignment``, ``distance_m``.

    ``assignment`` is ``inside``, ``border`` (touched several Kreise; lowest AGS won),
    ``nearest`` (rule 2) or ``unassigned``.
    """
    points = gpd.GeoDataFrame(
        markets[KEY].reset_index(drop=True),
        geometry=gpd.points_from_xy(markets["lon"], markets["lat"]),
        crs="EPSG:4326",
    )
    polygons = regions[["ags", "geometry"]].to_crs("EPSG:4326")

    hits = gpd.sjoin(points, polygons, how="inner", predicate="intersects")
    hits = hits.reset_index(names="row")
    touches = hits.groupby("row")["ags"].transform("size")
    inside = hits.sort_values(["row", "ags"]).drop_duplicates("row")
    inside = inside.assign(
        assignment=(touches.loc[inside.index] > 1).map({True: "border", False: "inside"}),
        distance_m=0.0,
    )[["row", "ags", "assignment", "distance_m"]]

    outside = points.loc[~points.index.isin(inside["row"])]
    nearest = pd.DataFrame(columns=["row", "ags", "assignment", "distance_m"])
    if not outside.empty:
        near = gpd.sjoin_nearest(
            outside.to_crs(_METRIC_CRS),
            polygons.to_crs(_METRIC_CRS),
            how="left",
            max_distance=max_distance_m,
            distance_col="distance_m",
        ).reset_index(names="row")
        near = near.sort_values(["row", "ags"]).drop_duplicates("row")
        near["assignment"] = near["ags"].notna().map({True: "nearest", False: "unassigned"})
        nearest = near[["row", "ags", "assignment", "distance_m"]]

    parts = [part for part in (inside, nearest) if not part.empty]
    placed = pd.concat(parts, ignore_index=True) if parts else nearest
    placed = placed.set_index("row").sort_index()
    result = points[KEY].join(placed)
    result = result.rename(columns={"ags": "kreis_ags"})
    result["kreis_ags"] = result["kreis_ags"].where(result["kreis_ags"].notna(), None)
    result["land_ags"] = result["kreis_ags"].map(lambda a: a[:2] if isinstance(a, str) else None)
    result["distance_m"] = result["distance_m"].astype(float).round(1)
    columns = KEY + ["kreis_ags", "land_ags", "assignment", "distance_m"]
    return result[columns].sort_values(KEY).reset_index(drop=True)


def require_some_inside(assigned: pd.DataFrame, extract: str, regions: str) -> None:
    """Refuse an extract none of whose markets lies in any Kreis.

    That is an extract of another country, or a regions file with the wrong coordinate
    system or swapped axes; writing it would close every market and fill the statistics
    with empty rows.
    """
    if not assigned.empty and (assigned["assignment"] == "unassigned").all():
        raise InputError(
            extract,
            f"none of its {len(assigned)} markets lies in a Kreis of {regions} "
            "(an extract outside Germany, or regions in the wrong coordinate system?)",
        )
