"""One market per shop when a mapper drew it twice: as a node and on its building outline.

Mappers often tag a shop on a node at the entrance and again on the building it occupies.
Counted twice, such a shop would double the supermarkets of a small town. The node is kept
because it is the mapper's deliberate point (usually the entrance); the outline only
lends it the fields the node lacks.

Two shops are the same when they have the same ``market_type`` and either the same name (case
and whitespace ignored), or the same brand, or neither has a name (unless their brands
differ). Different shops in one building (a supermarket and a bakery inside a mall) stay
separate markets.
"""

from __future__ import annotations

import shapely
from shapely import STRtree

from market_platform.markets.candidates import Candidate


def merge_nodes_into_areas(candidates: list[Candidate]) -> tuple[list[Candidate], list[dict]]:
    """The candidates without the outlines that duplicate a node inside them, and the pairs.

    Each pair is ``{"kept": ("node", id), "dropped": (type, id), "market_type", "name"}``. When
    several matching nodes lie in one outline the lowest node id takes it, so that the result
    does not depend on the order of the file.
    """
    areas = [candidate for candidate in candidates if candidate.area is not None]
    nodes = [candidate for candidate in candidates if candidate.osm_type == "node"]
    if not areas or not nodes:
        return candidates, []

    tree = STRtree([area.area for area in areas])
    points = shapely.points([(node.lon, node.lat) for node in nodes])
    # covered_by, not within: a shop node placed on the outline itself still lies in the shop.
    node_index, area_index = tree.query(points, predicate="covered_by")

    owner: dict[int, Candidate] = {}
    for node_at, area_at in zip(node_index.tolist(), area_index.tolist(), strict=True):
        node, area = nodes[node_at], areas[area_at]
        if not same_market(node, area):
            continue
        if area_at not in owner or node.osm_id < owner[area_at].osm_id:
            owner[area_at] = node

    # Fill from the smallest outline first: it is the most specific one (shop before mall).
    pairs = []
    for area_at in sorted(owner, key=lambda at: areas[at].area.area):
        node, area = owner[area_at], areas[area_at]
        for field, value in area.fields.items():
            if node.fields[field] is None:
                node.fields[field] = value
        pairs.append((node, area))

    dropped = {id(area) for _, area in pairs}
    kept = [candidate for candidate in candidates if id(candidate) not in dropped]
    duplicates = [
        {
            "kept": ("node", node.osm_id),
            "dropped": (area.osm_type, area.osm_id),
            "market_type": node.market_type,
            "name": node.fields["name"],
        }
        for node, area in sorted(pairs, key=lambda pair: (pair[0].osm_id, pair[1].osm_id))
    ]
    return kept, duplicates


def same_market(first: Candidate, second: Candidate) -> bool:
    if first.market_type != second.market_type:
        return False
    names = _normalized(first, "name"), _normalized(second, "name")
    brands = _normalized(first, "brand"), _normalized(second, "brand")
    if all(names) and names[0] == names[1]:
        return True
    if all(brands) and brands[0] == brands[1]:
        return True
    return not any(names) and not (all(brands) and brands[0] != brands[1])


def _normalized(candidate: Candidate, field: str) -> str:
    value = candidate.fields.get(field) or ""
    return "".join(value.split()).casefold()
