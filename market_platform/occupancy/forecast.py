"""Fit, backtest, choose and forecast: the whole modelling step for groups of sites.

Sites are modelled in groups, one per dataset, so the global model learns from sites that
measure the same thing (footfall at German sensors, people inside Munich pools, ...). For each
group :func:`run_group` backtests every candidate, fits the chosen ones at the forecast origin
``end`` and forecasts the next 168 hours. A site in a closure at ``end`` (see ``quality``) is
forecast as closed: model ``closed``, zero people, zero-width intervals, and a note saying
since when.

Prediction intervals come from the chosen candidate's own backtest errors (actual minus
forecast), whose quantiles are taken per local hour of day, so that an interval is narrow in
closed hours and wide at the peak (four origins give 28 errors per hour). Every value is then
clipped to ``[0, capacity]`` (capacity where it is known), so nothing negative or above
capacity is published.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from market_platform.occupancy import backtest, features, models, quality
from market_platform.occupancy import choice as choosing
from market_platform.occupancy.features import HORIZON, SiteSeries

#: Error quantiles for the 95 % and 80 % intervals: lower 95, lower 80, upper 80, upper 95.
QUANTILES = [0.025, 0.10, 0.90, 0.975]
#: Relative offsets when a site could not be backtested: deliberately wide.
DEFAULT_RELATIVE_OFFSETS = [-0.9, -0.5, 0.5, 1.0]
MIN_ERRORS = 48
#: A site with no reading in this many days before the origin is not forecast.
STALE_DAYS = 28
#: The model name of a forecast for a site in a closure at the forecast origin.
CLOSED_MODEL = "closed"
FORECAST_COLUMNS = [
    "site_id",
    "hour_utc",
    "model",
    "forecast",
    "lower_80",
    "upper_80",
    "lower_95",
    "upper_95",
]


@dataclass
class GroupResult:
    """Backtest scores, the choice per site, forecasts and what was skipped or fallen back."""

    scores: pd.DataFrame
    choice: pd.DataFrame
    forecasts: pd.DataFrame
    notes: dict[str, str] = field(default_factory=dict)
    history: dict[str, pd.Series] = field(default_factory=dict, repr=False)


def run_group(group: list[SiteSeries], end: pd.Timestamp) -> GroupResult:
    """Backtest, choose and forecast 168 hours after ``end`` for one group of sites."""
    live, notes = _drop_stale(group, end)
    if not live:
        return GroupResult(_empty_scores(), pd.DataFrame(), _empty_forecasts(), notes)
    result = backtest.run(live, end)
    notes |= result.notes

    chosen = dict(zip(result.choice["site_id"], result.choice["model"]))
    closed = {s.site_id for s in live if quality.closed_at(s.flags, s.value, s.position(end))}
    notes |= {s.site_id: _closed_note(s, end) for s in live if s.site_id in closed}
    needs_gbm = [s for s in live if "gbm" in chosen[s.site_id] and s.site_id not in closed]
    gbm: dict[str, np.ndarray] = {}
    if needs_gbm:
        booster = models.GlobalBoosting().fit([(s, s.position(end)) for s in live])
        predicted = booster.predict_many([(s, s.position(end)) for s in needs_gbm])
        gbm = {s.site_id: forecast for s, forecast in zip(needs_gbm, predicted)}

    frames, history = [], {}
    for series in live:
        origin = series.position(end)
        if series.site_id in closed:
            frames.append(_closed_forecast(series, origin))
        else:
            name = chosen[series.site_id]
            point = _candidate_forecast(series, origin, name, gbm.get(series.site_id))
            quantiles = _error_quantiles(result, series, name)
            frames.append(_with_intervals(series, origin, name, point, quantiles))
        start = max(0, origin - 14 * 24)
        history[series.site_id] = pd.Series(
            series.value[start:origin], index=series.hours[start:origin]
        )
    return GroupResult(result.scores, result.choice, pd.concat(frames), notes, history)


def run_all(series: list[SiteSeries], end: pd.Timestamp) -> GroupResult:
    """:func:`run_group` for each dataset's sites, results stacked."""
    groups: dict[str, list[SiteSeries]] = {}
    for item in series:
        groups.setdefault(item.dataset, []).append(item)
    results = [run_group(members, end) for _, members in sorted(groups.items())]
    if not results:
        return GroupResult(_empty_scores(), pd.DataFrame(), _empty_forecasts())
    return GroupResult(
        pd.concat([r.scores for r in results], ignore_index=True),
        pd.concat([r.choice for r in results], ignore_index=True),
        pd.concat([r.forecasts for r in results], ignore_index=True),
        {k: v for r in results for k, v in r.notes.items()},
        {k: v for r in results for k, v in r.history.items()},
    )


def _drop_stale(group: list[SiteSeries], end: pd.Timestamp):
    live, notes = [], {}
    for series in group:
        origin = series.position(end)
        recent = series.value[max(0, origin - STALE_DAYS * 24) : origin]
        if origin == 0 or not np.isfinite(recent).any():
            notes[series.site_id] = (
                f"site {series.site_id}: no reading in the {STALE_DAYS} days before "
                f"{end:%Y-%m-%d %H:%M}Z; not forecast"
            )
        else:
            live.append(series)
    return live, notes


def _closed_note(series: SiteSeries, end: pd.Timestamp) -> str:
    closed = (series.flags[: series.position(end)] & quality.FLAG_CLOSED) > 0
    # The closure is the last run of closed hours; hours after the last reading have no flag.
    last = int(np.flatnonzero(closed)[-1])
    opened = np.flatnonzero(~closed[:last])
    start = int(opened[-1]) + 1 if len(opened) else 0
    since = series.hours[start].tz_convert(series.timezone)
    return (
        f"site {series.site_id}: closed since {since:%Y-%m-%d} (nobody inside or counted for "
        f"{(last + 1 - start) // 24} days); forecast as closed (0) until it reports people again"
    )


def _closed_forecast(series: SiteSeries, origin: int) -> pd.DataFrame:
    zeros = np.zeros(len(series.hours[origin : origin + HORIZON]))
    frame = pd.DataFrame(
        {"site_id": series.site_id, "hour_utc": series.hours[origin : origin + HORIZON],
         "model": CLOSED_MODEL, "forecast": zeros}
    )
    for label in ("lower_80", "upper_80", "lower_95", "upper_95"):
        frame[label] = zeros
    return frame[FORECAST_COLUMNS]


def _candidate_forecast(series, origin, name, gbm_forecast) -> np.ndarray:
    parts = {}
    for part in choosing.BLENDS.get(name, (name,)):
        if part == "gbm_global":
            parts[part] = gbm_forecast
        else:
            parts[part] = models.LOCAL_MODELS[part](series, origin)
    return choosing.combine(parts, name)


def _error_quantiles(result: backtest.Backtest, series: SiteSeries, name: str) -> np.ndarray:
    """Quantiles (rows: ``QUANTILES``) of backtest errors per local hour of day (columns)."""
    errors, hours = [], []
    for index in range(backtest.N_ORIGINS):
        actual = result.actuals.get((series.site_id, index))
        if actual is None:
            continue
        position = result.positions[(series.site_id, index)]
        forecast = result.forecasts[(series.site_id, name, index)]
        ok = np.isfinite(actual)
        errors.append(actual[ok] - forecast[ok])
        hours.append(series.hour_of_day[position : position + len(actual)][ok])
    pooled = np.concatenate(errors) if errors else np.array([])
    hour_of_day = np.concatenate(hours) if hours else np.array([], dtype=int)
    if pooled.size < MIN_ERRORS:
        return None
    table = np.empty((len(QUANTILES), 24))
    overall = np.quantile(pooled, QUANTILES)
    for hour in range(24):
        in_hour = pooled[hour_of_day == hour]
        table[:, hour] = np.quantile(in_hour, QUANTILES) if in_hour.size >= 10 else overall
    return table


def _with_intervals(series, origin, name, point, quantiles) -> pd.DataFrame:
    cap = series.capacity if np.isfinite(series.capacity) and series.capacity > 0 else np.inf
    point = np.clip(point, 0, cap)
    hours = series.hour_of_day[origin : origin + HORIZON]
    if quantiles is None:
        # No backtest to learn from: a deliberately wide band around the forecast.
        level = models.site_scale(series, origin)
        offsets = np.outer(DEFAULT_RELATIVE_OFFSETS, point + 0.1 * level)
    else:
        offsets = quantiles[:, hours]
    frame = pd.DataFrame(
        {
            "site_id": series.site_id,
            "hour_utc": series.hours[origin : origin + HORIZON],
            "model": name,
            "forecast": point,
        }
    )
    for row, label in ((0, "lower_95"), (1, "lower_80")):
        frame[label] = np.clip(point + offsets[row], 0, point)
    for row, label in ((2, "upper_80"), (3, "upper_95")):
        frame[label] = np.clip(point + offsets[row], point, cap)
    # A wider level may not end up narrower than the 80 % band after clipping.
    frame["lower_95"] = np.minimum(frame["lower_95"], frame["lower_80"])
    frame["upper_95"] = np.maximum(frame["upper_95"], frame["upper_80"])
    return frame[FORECAST_COLUMNS]


def _empty_scores() -> pd.DataFrame:
    columns = ["site_id", "dataset", "model", "origin", "n_hours", "mae", "mae_rel"]
    return pd.DataFrame(columns=columns)


def _empty_forecasts() -> pd.DataFrame:
    return pd.DataFrame(columns=FORECAST_COLUMNS)


def series_from_observations(
    observations: pd.DataFrame, sites: pd.DataFrame, end: pd.Timestamp
) -> list[SiteSeries]:
    """Model inputs from stored observations before ``end``, quality flags recomputed.

    Flags are recomputed on the whole history because an ingest run may have seen only part
    of it (one landing file), and "normally busy" needs many weeks to judge.
    """
    meta = sites.set_index("site_id")
    series = []
    for site_id, rows in observations.groupby("site_id", sort=True):
        if site_id not in meta.index:
            continue
        site = meta.loc[site_id].to_dict() | {"site_id": site_id}
        rows = rows[rows["hour_utc"] < end]
        if rows.empty:
            continue
        grid = pd.date_range(rows["hour_utc"].min(), rows["hour_utc"].max(), freq="h")
        values = rows.set_index("hour_utc")["value"].reindex(grid)
        years = range(grid[0].year - 1, grid[-1].year + 2)
        holiday_set = features.site_holidays(site, years)
        flags = quality.flag_hours(pd.Series(grid), values, site["timezone"], holiday_set)
        series.append(
            features.build_series(site, pd.Series(grid), values, pd.Series(flags), end)
        )
    return series
