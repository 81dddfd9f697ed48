"""Market statistics per Kreis, per Land and for Germany.

Only the Kreise an extract covers are counted (those its bounding box touches, plus any that
received a market): a city extract says nothing about the rest of the country, and counting
its zero markets there would make every figure above the Kreis meaningless. Länder and
Germany are sums over those Kreise, so Germany = sum of Länder = sum of Kreise by construction
for markets, population and area.
"""

from __future__ import annotations

import geopandas as gpd
import pandas as pd
from shapely.geometry import box

from market_platform.markets.tags import MARKET_SHOPS, MARKETPLACE
from market_platform.regions.loading import LAENDER

MARKET_TYPES = (*MARKET_SHOPS, MARKETPLACE)
TYPE_COLUMNS = [f"n_{t}" for t in MARKET_TYPES]
ADDITIVE_COLUMNS = ["markets", *TYPE_COLUMNS, "population", "area_km2"]
TOP_BRANDS = 5


def covered_kreise(
    regions: gpd.GeoDataFrame,
    bbox: tuple[float, float, float, float] | None,
    assigned: pd.Series,
) -> list[str]:
    """Kreise an extract covers: touched by its bounding box or holding one of its markets."""
    keys = set(assigned.dropna())
    if bbox is not None:
        touched = regions[regions.geometry.intersects(box(*bbox))]
        keys |= set(touched["ags"])
    return sorted(keys)


def regional_statistics(
    markets: pd.DataFrame,
    regions: gpd.GeoDataFrame,
    kreise: list[str],
    previous: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per region: ``level`` (kreis, land, germany), ``ags``, counts and ratios.

    ``markets`` holds one row per market with ``kreis_ags``, ``market_type`` and ``brand``;
    ``previous`` is the statistics table of the previous extract, for ``markets_change``.
    """
    base = pd.DataFrame(regions.loc[regions["ags"].isin(kreise)].drop(columns="geometry"))
    placed = markets[markets["kreis_ags"].isin(kreise)].assign(
        land_ags=lambda m: m["kreis_ags"].str.slice(0, 2),
        germany="DE",
        brand=lambda m: canonical_brands(m["brand"]),
    )

    levels = [
        _level(placed, base, "kreis", "kreis_ags", base.set_index("ags")["name"]),
        _level(placed, base, "land", "land_ags", LAENDER),
        _level(placed, base, "germany", "germany", {"DE": "Deutschland"}),
    ]
    stats = pd.concat(levels, ignore_index=True)

    stats["markets_per_10k"] = (stats["markets"] / stats["population"] * 1e4).round(4)
    stats["markets_per_km2"] = (stats["markets"] / stats["area_km2"]).round(6)
    stats["area_km2"] = stats["area_km2"].round(2)
    stats["markets_change"] = _change(stats, previous)
    return stats.sort_values(["level", "ags"], key=_level_order).reset_index(drop=True)


def canonical_brands(brands: pd.Series) -> pd.Series:
    """Spell each brand the way most of its markets do: "LIDL" and "Lidl" are one brand."""
    cleaned = brands.where(brands.notna(), None).map(
        lambda b: b.strip() if isinstance(b, str) and b.strip() else None
    )
    keys = cleaned.map(lambda b: b.casefold() if b else None)
    spellings = pd.DataFrame({"key": keys, "brand": cleaned}).dropna()
    counts = spellings.value_counts().reset_index(name="n")
    best = counts.sort_values(["key", "n", "brand"], ascending=[True, False, True])
    best = best.drop_duplicates("key").set_index("key")["brand"]
    return keys.map(best)


def _level(placed, base, level, key, names) -> pd.DataFrame:
    region_key = {"kreis": base["ags"], "land": base["land_ags"], "germany": "DE"}[level]
    sizes = (
        base.assign(region=region_key)
        .groupby("region")[["population", "area_km2"]]
        .sum()
    )

    counts = pd.crosstab(placed[key], placed["market_type"]) if len(placed) else pd.DataFrame()
    counts = counts.reindex(index=sizes.index, columns=list(MARKET_TYPES), fill_value=0)
    counts.columns = TYPE_COLUMNS
    frame = sizes.join(counts.fillna(0).astype("int64"))
    frame["markets"] = frame[TYPE_COLUMNS].sum(axis=1)

    brands = placed.dropna(subset=["brand"]).groupby(key)["brand"]
    top = brands.apply(lambda b: b.value_counts().sort_index().sort_values(
        ascending=False, kind="stable").head(TOP_BRANDS))
    frame["top_brands"] = [_describe_top(top, region) for region in frame.index]
    in_top = [_top_total(top, region) for region in frame.index]
    frame["top_brand_share"] = (pd.Series(in_top, index=frame.index) / frame["markets"]).where(
        frame["markets"] > 0
    ).round(4)

    frame = frame.reset_index(names="ags")
    frame.insert(0, "level", level)
    frame.insert(2, "name", frame["ags"].map(lambda a: names.get(a, a)))
    return frame


def _describe_top(top: pd.Series, region: str) -> str:
    if region not in top.index.get_level_values(0):
        return ""
    return "; ".join(f"{brand}: {count}" for brand, count in top.loc[region].items())


def _top_total(top: pd.Series, region: str) -> int:
    if region not in top.index.get_level_values(0):
        return 0
    return int(top.loc[region].sum())


def _change(stats: pd.DataFrame, previous: pd.DataFrame | None) -> pd.Series:
    """Markets gained or lost since the previous snapshot, over the Kreise both cover.

    Two extracts may cover different Kreise (a city, then all of Germany); comparing their
    Land or Germany totals would count coverage as openings. So each Kreis compares with its
    own previous row, and a Land's or Germany's change is the sum over its Kreise that were
    covered both times (empty when there are none).
    """
    empty = pd.Series([None] * len(stats), index=stats.index, dtype="Int64")
    if previous is None or previous.empty:
        return empty
    before = previous[previous["level"] == "kreis"].set_index("ags")["markets"]
    kreise = stats[stats["level"] == "kreis"]
    kreis_change = (kreise["markets"] - kreise["ags"].map(before)).astype("Int64")

    by_key = pd.Series(kreis_change.to_numpy(), index=kreise["ags"].to_numpy())
    per_land = by_key.groupby(by_key.index.str.slice(0, 2)).sum(min_count=1)
    total = by_key.sum(min_count=1)

    change = empty.copy()
    change[kreise.index] = kreis_change
    laender = stats["level"] == "land"
    change[laender] = stats.loc[laender, "ags"].map(per_land).astype("Int64")
    change[stats["level"] == "germany"] = total if pd.notna(total) else None
    return change


def _level_order(column: pd.Series) -> pd.Series:
    if column.name == "level":
        return column.map({"germany": 0, "land": 1, "kreis": 2})
    return column


def totals_agree(stats: pd.DataFrame) -> dict[str, list[str]]:
    """Which additive columns do not add up: Germany vs sum of Länder vs sum of Kreise."""
    problems: dict[str, list[str]] = {}
    by_level = {level: group for level, group in stats.groupby("level")}
    for column in ADDITIVE_COLUMNS:
        totals = {lvl: float(g[column].sum()) for lvl, g in by_level.items()}
        if len({round(v, 1) for v in totals.values()}) > 1:
            problems[column] = [f"{lvl}={v:g}" for lvl, v in sorted(totals.items())]
    return problems
