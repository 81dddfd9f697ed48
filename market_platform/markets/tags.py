"""Which OSM tags make a market, which make a former one, and which fields a market row keeps.

Pure functions over a plain ``{key: value}`` mapping, shared by the PBF and the Overpass readers
so that both apply exactly the same rules.
"""

from __future__ import annotations

from collections.abc import Mapping

#: ``shop=*`` values that count as a market; the value becomes ``market_type``.
MARKET_SHOPS = (
    "supermarket",
    "convenience",
    "greengrocer",
    "butcher",
    "bakery",
    "beverages",
    "chemist",
    "department_store",
    "mall",
)

#: ``market_type`` of ``amenity=marketplace`` (weekly and farmers' markets).
MARKETPLACE = "marketplace"

#: Row field -> OSM key it is read from.
FIELD_KEYS = {
    "name": "name",
    "brand": "brand",
    "operator": "operator",
    "opening_hours": "opening_hours",
    "street": "addr:street",
    "housenumber": "addr:housenumber",
    "postcode": "addr:postcode",
    "city": "addr:city",
}

# Lifecycle prefixes (wiki: Lifecycle_prefix) that mean "was a market, is not one now".
_LIFECYCLE_PREFIXES = ("disused", "abandoned")

#: Why an object that looks like a market is not one; the keys of ``MarketsRead.excluded``.
LIFECYCLE = "lifecycle"
CLOSED = "closed"

#: Keys a PBF object needs at least one of to be looked at (a cheap C++ pre-filter).
FILTER_KEYS = ("shop", "amenity") + tuple(
    f"{prefix}:{key}" for prefix in _LIFECYCLE_PREFIXES for key in ("shop", "amenity")
)

#: ``(key, value)`` pairs of which a PBF object needs one to reach Python: live markets,
#: vacant shops and former markets, so that the exclusions can be counted.
FILTER_TAGS = (
    tuple(("shop", value) for value in MARKET_SHOPS)
    + (("shop", "vacant"), ("amenity", MARKETPLACE))
    + tuple((f"{prefix}:shop", value) for prefix in _LIFECYCLE_PREFIXES for value in MARKET_SHOPS)
    + tuple((f"{prefix}:amenity", MARKETPLACE) for prefix in _LIFECYCLE_PREFIXES)
)


def describe_market_tags() -> str:
    """The tag rule in words, for messages such as "no markets found (...)"."""
    return f"shop={'|'.join(MARKET_SHOPS)} / amenity={MARKETPLACE}"


def market_type(tags: Mapping[str, str]) -> str | None:
    """The market type of live tags, or None when they describe no market.

    ``shop`` wins over ``amenity=marketplace`` when an object carries both, because the shop
    value is the more specific statement (a butcher's stall on a market square is a butcher).
    """
    shop = tags.get("shop")
    if shop in MARKET_SHOPS:
        return shop
    if tags.get("amenity") == MARKETPLACE:
        return MARKETPLACE
    return None


def classify(tags: Mapping[str, str]) -> tuple[str | None, str | None]:
    """``(market_type, None)`` for a market, ``(None, reason)`` for an excluded one.

    Both are None for objects that never looked like a market. A live ``shop=supermarket``
    next to a left-over ``disused:shop=supermarket`` stays a market: the lifecycle-prefixed key
    describes the past, the plain key the present (two such Lidl ways exist in the Overpass file,
    both with current opening hours).
    """
    kind = market_type(tags)
    if kind is None:
        return None, (LIFECYCLE if _is_former_market(tags) else None)
    if tags.get("disused") == "yes" or tags.get("abandoned") == "yes":
        return None, LIFECYCLE
    if tags.get("opening_hours", "").strip().lower() == "closed":
        return None, CLOSED
    return kind, None


def _is_former_market(tags: Mapping[str, str]) -> bool:
    if tags.get("shop") == "vacant":
        return True
    return any(
        tags.get(f"{prefix}:shop") in MARKET_SHOPS or tags.get(f"{prefix}:amenity") == MARKETPLACE
        for prefix in _LIFECYCLE_PREFIXES
    )


def market_fields(tags: Mapping[str, str]) -> dict[str, str | None]:
    """The row fields of a market: stripped values, None where the tag is missing or blank."""
    fields = {}
    for field, key in FIELD_KEYS.items():
        value = tags.get(key, "").strip()
        fields[field] = value or None
    return fields
