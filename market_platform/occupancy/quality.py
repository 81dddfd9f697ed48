"""Flags for hourly values that must not teach or judge a model, kept next to the values.

Sensors fail silently: the Heidenheim ones report whole days of zeros during an outage and
then, when they reconnect, one slot holding the backlog of thousands of counts. Both are kept
in the table (so that nothing is lost and the flags can be reviewed), flagged, and left out of
training and scoring.

``FLAG_OUTAGE``  an entire local day of zeros at a site that is normally busy on that weekday
                 (public holidays are exempt: a closed shop on a holiday is real, not a failure)
``FLAG_BACKLOG`` an hour far above anything the site normally sees: more than ``SPIKE_FACTOR``
                 times its 99th percentile, or more than ``AFTER_OUTAGE_FACTOR`` times it right
                 after an outage or gap
"""

from __future__ import annotations

import numpy as np
import pandas as pd

FLAG_OUTAGE = 1
FLAG_BACKLOG = 2
FLAG_NAMES = {FLAG_OUTAGE: "outage", FLAG_BACKLOG: "backlog"}

SPIKE_FACTOR = 4.0
AFTER_OUTAGE_FACTOR = 1.5
#: Hours a local day must have to be judged an outage day (the DST days have 23 and 25).
MIN_HOURS_FOR_OUTAGE = 12


def flag_hours(
    hour_utc: pd.Series, value: pd.Series, timezone: str, holiday_dates: set
) -> np.ndarray:
    """Quality flags (a bit mask per hour) for one site's complete hourly UTC grid."""
    values = value.to_numpy(dtype=float)
    local_day = pd.DatetimeIndex(hour_utc).tz_convert(timezone).normalize().tz_localize(None)
    flags = np.zeros(len(values), dtype=np.int64)

    outage_days = _outage_days(local_day, values, holiday_dates)
    outage = np.isin(local_day.to_numpy(), outage_days.to_numpy())
    flags[outage] |= FLAG_OUTAGE
    flags[_backlog_hours(values, outage)] |= FLAG_BACKLOG
    return flags


def describe(flags: np.ndarray) -> dict[str, int]:
    """Hours per flag name, for logs and metadata."""
    return {name: int(((flags & bit) > 0).sum()) for bit, name in FLAG_NAMES.items()}


def _outage_days(local_day: pd.DatetimeIndex, values: np.ndarray, holidays: set) -> pd.Index:
    frame = pd.DataFrame({"day": local_day, "value": values}).dropna()
    daily = frame.groupby("day")["value"].agg(["sum", "size"])
    weekday = daily.index.dayofweek
    # "Normally busy": more than half of this weekday's other days saw anyone at all.
    busy_share = (daily["sum"] > 0).groupby(weekday).transform("mean")
    is_holiday = np.array([d.date() in holidays for d in daily.index], dtype=bool)
    outage = (
        (daily["sum"] == 0)
        & (daily["size"] >= MIN_HOURS_FOR_OUTAGE)
        & (busy_share > 0.5)
        & ~is_holiday
    )
    return daily.index[outage.to_numpy()]


def _backlog_hours(values: np.ndarray, outage: np.ndarray) -> np.ndarray:
    positive = values[(values > 0) & ~outage]
    if positive.size < 48:
        return np.zeros(len(values), dtype=bool)
    p99 = float(np.percentile(positive, 99))
    spike = values > SPIKE_FACTOR * p99

    # The hour a sensor comes back after a silent day carries what it missed.
    silent = pd.Series(np.where(outage | np.isnan(values), 0.0, values))
    silent_before = silent.shift(1).rolling(24, min_periods=1).sum().fillna(0).to_numpy() == 0
    after_outage = silent_before & (values > AFTER_OUTAGE_FACTOR * p99)
    return (spike | after_outage) & ~np.isnan(values)
