"""The Overpass QL query for the markets of one bounding box.

Built from the same tag lists as the readers (``markets.tags``), so a live query asks for
exactly what a PBF extract would give. ``out center`` gives ways and relations a point and
keeps the node list of ways, which the reader uses to tell closed ways from open ones.
"""

from __future__ import annotations

from market_platform.markets.tags import MARKET_SHOPS, MARKETPLACE


def market_query(bbox: tuple[float, float, float, float], timeout: float) -> str:
    """``[out:json]`` query for the market tags inside ``bbox`` (min_lon, min_lat, max_lon,
    max_lat), with the server-side ``timeout`` in seconds."""
    west, south, east, north = bbox
    shops = "|".join(MARKET_SHOPS)
    # Overpass orders a bbox south, west, north, east; 7 decimals is OSM's own precision.
    corners = ",".join(f"{value:.7f}" for value in (south, west, north, east))
    return (
        f"[out:json][timeout:{int(timeout)}][bbox:{corners}];\n"
        f'(nwr["shop"~"^({shops})$"];nwr["amenity"="{MARKETPLACE}"];);\n'
        "out center;"
    )
