"""What changed between two extracts: markets opened, changed and closed.

A market "changed" when its name, brand or type differ, or when it moved more than
``MOVE_THRESHOLD_M``; other edits (opening hours, address) update the row silently, since
mappers touch those all the time and nobody needs an alert for a fixed house number.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

KEY = ["osm_type", "osm_id"]
MOVE_THRESHOLD_M = 25.0
TRACKED = ("name", "brand", "market_type")
_EARTH_RADIUS_M = 6_371_008.8


def distance_m(lon1, lat1, lon2, lat2) -> np.ndarray:
    """Great-circle distance in metres (haversine), vectorised."""
    lon1, lat1, lon2, lat2 = (
        np.radians(np.asarray(v, dtype=float)) for v in (lon1, lat1, lon2, lat2)
    )
    a = (
        np.sin((lat2 - lat1) / 2) ** 2
        + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * _EARTH_RADIUS_M * np.arcsin(np.sqrt(a))


def diff_markets(before: pd.DataFrame, after: pd.DataFrame) -> pd.DataFrame:
    """Rows ``osm_type, osm_id, change, fields, old_*, new_*, moved_m`` sorted by key.

    ``before`` holds the markets open before this extract, ``after`` those in it.
    """
    merged = before.merge(after, on=KEY, how="outer", suffixes=("_old", "_new"), indicator=True)
    merged["change"] = merged["_merge"].map(
        {"left_only": "closed", "right_only": "opened", "both": None}
    )

    both = merged["_merge"] == "both"
    moved = distance_m(merged["lon_old"], merged["lat_old"], merged["lon_new"], merged["lat_new"])
    merged["moved_m"] = np.where(both, np.round(moved, 1), np.nan)

    fields = pd.Series([[] for _ in range(len(merged))], index=merged.index)
    for column in TRACKED:
        differs = both & ~_same(merged[f"{column}_old"], merged[f"{column}_new"])
        fields[differs] = fields[differs].map(lambda f, c=column: f + [c])
    far = both & (merged["moved_m"] > MOVE_THRESHOLD_M)
    fields[far] = fields[far].map(lambda f: f + ["location"])

    changed = both & fields.map(bool)
    merged.loc[changed, "change"] = "changed"
    merged["fields"] = fields.map(",".join)

    result = merged[merged["change"].notna()]
    columns = KEY + ["change", "fields"]
    columns += [f"{c}_{side}" for c in TRACKED for side in ("old", "new")] + ["moved_m"]
    result = result[columns].sort_values(KEY).reset_index(drop=True)
    return result.astype(object).where(result.notna(), None)


def _same(old: pd.Series, new: pd.Series) -> pd.Series:
    return (old == new) | (old.isna() & new.isna())
