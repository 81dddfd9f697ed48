"""Flags for hourly values that must not teach or judge a model, kept next to the values.

Sensors fail silently: the Heidenheim ones report whole days of zeros during an outage and
then, when they reconnect, one slot holding the backlog of thousands of counts. Places also
close for weeks on purpose: Munich's indoor pools and saunas close for the summer, the ice
rink after the winter, and report zero people inside meanwhile. All of these are kept in the
table (so that nothing is lost and the flags can be reviewed), flagged, and left out of
training and scoring.

``FLAG_CLOSED``  a run of at least ``CLOSURE_MIN_DAYS`` local days without a single person
                 (zeros or no data) that does not end in a backlog: a planned or seasonal
                 closure. A sensor that was merely down delivers what it missed when it comes
                 back, a closed place has nothing to deliver; that is how the two are told apart
``FLAG_OUTAGE``  an entire local day of zeros, outside a closure, at a site that is normally
                 busy on that weekday (public holidays are exempt: a closed shop on a holiday
                 is real, not a failure)
``FLAG_BACKLOG`` an hour far above anything the site normally sees: more than ``SPIKE_FACTOR``
                 times its 99th percentile, or more than ``AFTER_OUTAGE_FACTOR`` times it after
                 a silent day
"""

from __future__ import annotations

import numpy as np
import pandas as pd

FLAG_OUTAGE = 1
FLAG_BACKLOG = 2
FLAG_CLOSED = 4
FLAG_NAMES = {FLAG_OUTAGE: "outage", FLAG_BACKLOG: "backlog", FLAG_CLOSED: "closed"}

SPIKE_FACTOR = 4.0
AFTER_OUTAGE_FACTOR = 1.5
#: Hours a local day must have to be judged an outage day (the DST days have 23 and 25).
MIN_HOURS_FOR_OUTAGE = 12
#: Silent days in a row from which a silence is a closure rather than an outage. The longest
#: Heidenheim outage is 11 days and ends in a backlog; the shortest Munich closure is 9 days.
CLOSURE_MIN_DAYS = 7
#: Positive hours a site needs before its 99th percentile can judge spikes.
MIN_POSITIVE_HOURS = 48


def flag_hours(
    hour_utc: pd.Series, value: pd.Series, timezone: str, holiday_dates: set
) -> np.ndarray:
    """Quality flags (a bit mask per hour) for one site's complete hourly UTC grid."""
    values = value.to_numpy(dtype=float)
    local_day = pd.DatetimeIndex(hour_utc).tz_convert(timezone).normalize().tz_localize(None)
    days = local_day.to_numpy()
    flags = np.zeros(len(values), dtype=np.int64)

    backlog = _backlog_hours(values)
    closure_days = _closure_days(local_day, values, backlog)
    closed = np.isin(days, closure_days.to_numpy())
    flags[closed] |= FLAG_CLOSED

    outage_days = _outage_days(local_day, values, holiday_dates, closed)
    flags[np.isin(days, outage_days.to_numpy())] |= FLAG_OUTAGE
    flags[backlog] |= FLAG_BACKLOG
    return flags


def describe(flags: np.ndarray) -> dict[str, int]:
    """Hours per flag name, for logs and metadata."""
    return {name: int(((flags & bit) > 0).sum()) for bit, name in FLAG_NAMES.items()}


def closed_at(flags: np.ndarray, values: np.ndarray, position: int) -> bool:
    """Whether a site is in a closure at grid ``position``: its last known hour before it is.

    Hours after the last reading carry no flag yet, so they do not decide.
    """
    known = np.flatnonzero(np.isfinite(values[:position]) | (flags[:position] != 0))
    return len(known) > 0 and bool(flags[known[-1]] & FLAG_CLOSED)


def _silent_days(local_day: pd.DatetimeIndex, values: np.ndarray) -> pd.DataFrame:
    """Per local day: people seen (gaps count as none), observed hours, whether nobody came."""
    frame = pd.DataFrame({"day": local_day, "value": values})
    daily = frame.groupby("day")["value"].agg(["sum", "count"])
    daily["silent"] = daily["sum"] == 0
    return daily


def _closure_days(
    local_day: pd.DatetimeIndex, values: np.ndarray, backlog: np.ndarray
) -> pd.Index:
    daily = _silent_days(local_day, values)
    silent = daily["silent"].to_numpy()
    # A run of silent days is a block of equal values of this counter.
    run_id = np.cumsum(~silent)
    closure = np.zeros(len(daily), dtype=bool)
    backlog_days = set(local_day[backlog])
    for run in np.unique(run_id[silent]):
        members = np.flatnonzero(silent & (run_id == run))
        if len(members) < CLOSURE_MIN_DAYS:
            continue
        after = members[-1] + 1
        if after < len(daily) and daily.index[after] in backlog_days:
            continue
        closure[members] = True
    return daily.index[closure]


def _outage_days(
    local_day: pd.DatetimeIndex, values: np.ndarray, holidays: set, closed: np.ndarray
) -> pd.Index:
    keep = ~np.isnan(values) & ~closed
    frame = pd.DataFrame({"day": local_day[keep], "value": values[keep]})
    daily = frame.groupby("day")["value"].agg(["sum", "size"])
    weekday = daily.index.dayofweek
    # "Normally busy": more than half of this weekday's open days saw anyone at all.
    busy_share = (daily["sum"] > 0).groupby(weekday).transform("mean")
    is_holiday = np.array([d.date() in holidays for d in daily.index], dtype=bool)
    outage = (
        (daily["sum"] == 0)
        & (daily["size"] >= MIN_HOURS_FOR_OUTAGE)
        & (busy_share > 0.5)
        & ~is_holiday
    )
    return daily.index[outage.to_numpy()]


def _backlog_hours(values: np.ndarray) -> np.ndarray:
    positive = values[values > 0]
    if positive.size < MIN_POSITIVE_HOURS:
        return np.zeros(len(values), dtype=bool)
    p99 = float(np.percentile(positive, 99))
    spike = values > SPIKE_FACTOR * p99

    # The hour a sensor comes back after a silent day carries what it missed.
    silent = pd.Series(np.where(np.isnan(values), 0.0, values))
    silent_before = silent.shift(1).rolling(24, min_periods=1).sum().fillna(0).to_numpy() == 0
    after_outage = silent_before & (values > AFTER_OUTAGE_FACTOR * p99)
    return (spike | after_outage) & ~np.isnan(values)
