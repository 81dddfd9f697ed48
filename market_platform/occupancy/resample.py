"""Readings to one value per site and UTC hour, by a rule that depends on what is measured.

* ``count`` sites (people passing a sensor in a slot): the hour's value is the **sum** of its
  slots, and only when every slot of the hour is there. The number of slots per hour comes
  from the site's median reading interval (two for 30-minute sensors). An hour with a missing
  slot would undercount, so it becomes a gap instead.
* ``occupancy`` sites (people inside at an instant, sampled irregularly): the hour's value is
  the **mean** of the samples taken in ``[hour, hour + 1 h)``; an hour without a sample is a gap.

Gaps stay NaN on a complete hourly UTC grid between a site's first and last reading: nothing
is interpolated or carried forward here.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

HOUR = pd.Timedelta(hours=1)

HOURLY_COLUMNS = ["site_id", "hour_utc", "value", "n_samples"]


def to_hourly(readings: pd.DataFrame, kinds: dict[str, str]) -> pd.DataFrame:
    """Hourly values per site (``HOURLY_COLUMNS``) from validated readings.

    ``kinds`` maps each site id to ``count`` or ``occupancy``; a site missing from it is
    treated as ``count``.
    """
    parts = [
        _site_hourly(site_id, group, kinds.get(site_id, "count"))
        for site_id, group in readings.groupby("site_id", sort=True)
    ]
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype=float) for c in HOURLY_COLUMNS})
    return pd.concat(parts, ignore_index=True)


def slots_per_hour(timestamps: pd.Series) -> int:
    """How many readings an hour of a regularly reporting sensor holds (at least one)."""
    steps = timestamps.sort_values().diff().dropna()
    steps = steps[steps > pd.Timedelta(0)]
    if steps.empty:
        return 1
    return max(1, int(round(HOUR / steps.median())))


def _site_hourly(site_id: str, readings: pd.DataFrame, kind: str) -> pd.DataFrame:
    hours = readings["ts_utc"].dt.floor(HOUR)
    grouped = readings["value"].groupby(hours)
    if kind == "occupancy":
        values = grouped.mean()
        counts = grouped.size()
    else:
        values = grouped.sum()
        counts = grouped.size()
        values = values.where(counts >= slots_per_hour(readings["ts_utc"]))

    grid = pd.date_range(hours.min(), hours.max(), freq=HOUR, tz="UTC")
    return pd.DataFrame(
        {
            "site_id": site_id,
            "hour_utc": grid,
            "value": values.reindex(grid).to_numpy(dtype=float),
            "n_samples": counts.reindex(grid).fillna(0).to_numpy(dtype=np.int64),
        }
    )
