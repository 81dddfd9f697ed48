"""One site's hourly series on a UTC grid, with local-time calendar features and weekly lags.

Everything is stored per UTC hour and modelled in the site's local time. Two rules make the
clock changes harmless:

* Calendar features (hour of day, hour of week, weekday, holiday) come from the local wall
  clock of each UTC hour. The spring-forward night simply has no 02:00; the fall-back night
  has two UTC hours that are both local 02:00, and both keep their own row.
* "The same hour one week earlier" is looked up by wall clock, not by subtracting 168 UTC
  hours, so that a 12:00 peak is compared with the 12:00 of last week after a switch. A wall
  time that does not exist (the spring gap) has no lag; a repeated one takes its first hour.

Values that a quality flag marks are removed from ``clean``, which is what models learn from;
``value`` keeps what the sensor said (the naive baselines use it as observed).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import holidays as holidays_lib
import numpy as np
import pandas as pd

HOUR = pd.Timedelta(hours=1)
HORIZON = 168
WEEKS_OF_LAGS = 4


@dataclass
class SiteSeries:
    """A site's hourly values on a complete UTC grid that runs ``HORIZON`` hours past its data.

    ``lag_pos[k - 1][i]`` is the grid position of the hour with the same local wall time
    ``k`` weeks before position ``i`` (or -1), so lags can be cut at any forecast origin.
    """

    site_id: str
    dataset: str
    kind: str
    timezone: str
    capacity: float
    hours: pd.DatetimeIndex
    value: np.ndarray
    flags: np.ndarray
    n_observed: int
    hour_of_day: np.ndarray = field(repr=False, default=None)
    day_of_week: np.ndarray = field(repr=False, default=None)
    hour_of_week: np.ndarray = field(repr=False, default=None)
    holiday: np.ndarray = field(repr=False, default=None)
    lag_pos: list[np.ndarray] = field(repr=False, default=None)

    @property
    def clean(self) -> np.ndarray:
        return np.where(self.flags == 0, self.value, np.nan)

    def position(self, when: pd.Timestamp) -> int:
        """Grid position of the UTC hour ``when`` (the first forecast hour of an origin)."""
        return int(self.hours.searchsorted(when))


@functools.lru_cache(maxsize=64)
def holiday_dates(country: str | None, subdivision: str | None, years: tuple[int, ...]) -> set:
    """Public holidays of a country and, where given, its Land or region."""
    if not country:
        return set()
    calendar = holidays_lib.country_holidays(country, subdiv=subdivision or None, years=years)
    return set(calendar.keys())


def site_holidays(site: dict, years: range) -> set:
    return holiday_dates(site.get("country"), site.get("subdivision"), tuple(years))


def build_series(
    site: dict, hour_utc: pd.Series, value: pd.Series, flags: pd.Series, end: pd.Timestamp
) -> SiteSeries:
    """A :class:`SiteSeries` for one site from its stored hourly rows up to ``end`` (exclusive).

    The grid starts at the first stored hour and ends ``HORIZON`` hours after ``end``, so the
    forecast hours have their features too. Hours without a row are gaps (NaN).
    """
    observed = pd.Series(value.to_numpy(dtype=float), index=pd.DatetimeIndex(hour_utc))
    observed = observed[observed.index < end]
    start = observed.index.min() if len(observed) else end - HOUR * HORIZON
    grid = pd.date_range(start, end + HOUR * (HORIZON - 1), freq=HOUR, tz="UTC")
    flag_series = pd.Series(flags.to_numpy(dtype=np.int64), index=pd.DatetimeIndex(hour_utc))
    flag_series = flag_series[flag_series.index < end]

    series = SiteSeries(
        site_id=site["site_id"],
        dataset=site.get("dataset") or "",
        kind=site.get("kind") or "count",
        timezone=site.get("timezone") or "Europe/Berlin",
        capacity=_number(site.get("capacity")),
        hours=grid,
        value=observed.reindex(grid).to_numpy(dtype=float),
        flags=flag_series.reindex(grid).fillna(0).to_numpy(dtype=np.int64),
        n_observed=int(observed.notna().sum()),
    )
    add_calendar(series, site_holidays(site, range(grid[0].year - 1, grid[-1].year + 2)))
    return series


def add_calendar(series: SiteSeries, holiday_set: set) -> None:
    wall = series.hours.tz_convert(series.timezone).tz_localize(None)
    series.hour_of_day = wall.hour.to_numpy()
    series.day_of_week = wall.dayofweek.to_numpy()
    series.hour_of_week = series.day_of_week * 24 + series.hour_of_day
    series.holiday = np.array([d in holiday_set for d in wall.date], dtype=bool)

    positions = pd.Series(np.arange(len(wall)), index=wall)
    positions = positions[~positions.index.duplicated(keep="first")]
    series.lag_pos = [
        positions.reindex(wall - pd.Timedelta(days=7 * k)).fillna(-1).to_numpy(dtype=np.int64)
        for k in range(1, WEEKS_OF_LAGS + 1)
    ]


def lag_values(
    series: SiteSeries, values: np.ndarray, weeks: int, origin_pos: int, targets: slice
) -> np.ndarray:
    """Values ``weeks`` weeks (by wall clock) before the target hours, known at the origin."""
    positions = series.lag_pos[weeks - 1][targets]
    usable = (positions >= 0) & (positions < origin_pos)
    out = np.full(len(positions), np.nan)
    out[usable] = values[positions[usable]]
    return out


def _number(value) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return float("nan")
    return number
