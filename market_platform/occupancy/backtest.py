"""Rolling-origin backtest: four weekly origins per site, 168 hours each, and the choice.

Origins are local midnights whole weeks before the forecast origin ``end``. Each site gets its
own four: the latest ones, at most ``LOOKBACK_WEEKS`` back, at which it has enough clean
history and a week before and after the origin with enough clean hours. A pool closed for the
summer is thus judged on its last open weeks instead of not at all, and never on closed weeks.
At each origin every model forecasts the next 168 hours from what was known then, and is scored
by the mean absolute error over the hours that have a clean value (gaps, outage and closure
days and backlog spikes are not scored). ``mae_rel`` divides a model's MAE by that of the
one-week-earlier baseline at the same site and origin.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from market_platform.occupancy import choice as choosing
from market_platform.occupancy import models
from market_platform.occupancy.features import HORIZON, SiteSeries

N_ORIGINS = 4
#: How far back (weeks before ``end``) a site's backtest origins may lie.
LOOKBACK_WEEKS = 26
#: Hours of clean history an origin needs before it, for four weekly lags and a fit.
MIN_HISTORY_HOURS = 4 * HORIZON
#: Clean hours the week before and the week after an origin need (a closed or silent week
#: has fewer, and neither teaches the baselines nor judges the models).
MIN_SCORED_HOURS = 72
#: A global model fitted at one origin also serves the origins less than this many weeks
#: after it (never earlier ones, which would let it see their answers). Sites with origins
#: spread over months then cost a few fits, not one per week; the backtest judges a model up
#: to three weeks old, a little staler than the one fitted afresh for each forecast.
BOOSTER_REUSE_WEEKS = 4
REFERENCE = choosing.REFERENCE
CANDIDATES = choosing.CANDIDATES


@dataclass
class Backtest:
    """Scores per site, candidate and origin, forecasts kept for intervals and charts.

    Keys ``(site_id, index)`` count a site's own origins from 0 (oldest); ``origins`` and
    ``positions`` give their UTC instant and grid position.
    """

    scores: pd.DataFrame
    choice: pd.DataFrame
    forecasts: dict[tuple[str, str, int], np.ndarray] = field(repr=False)
    actuals: dict[tuple[str, int], np.ndarray] = field(repr=False)
    notes: dict[str, str]
    positions: dict[tuple[str, int], int] = field(default_factory=dict, repr=False)
    origins: dict[tuple[str, int], pd.Timestamp] = field(default_factory=dict, repr=False)


def origin_times(end: pd.Timestamp, timezone: str, n_origins: int = N_ORIGINS) -> list:
    """UTC instants of the local midnights 1..n weeks before ``end`` (oldest first)."""
    local_end = end.tz_convert(timezone).normalize().tz_localize(None)
    local = [local_end - pd.Timedelta(days=7 * k) for k in range(n_origins, 0, -1)]
    return [
        pd.Timestamp(t).tz_localize(timezone, ambiguous=True, nonexistent="shift_forward")
        .tz_convert("UTC")
        for t in local
    ]


def usable_origins(series: SiteSeries, end: pd.Timestamp) -> list[pd.Timestamp]:
    """The site's latest ``N_ORIGINS`` usable backtest origins (oldest first)."""
    clean = np.isfinite(series.clean)
    observed = np.concatenate([[0], np.cumsum(clean)])
    chosen = []
    for when in reversed(origin_times(end, series.timezone, LOOKBACK_WEEKS)):
        p = series.position(when)
        if p < HORIZON or p + HORIZON > len(clean):
            continue
        history = observed[p]
        week_before = observed[p] - observed[p - HORIZON]
        week_after = observed[p + HORIZON] - observed[p]
        if (
            history >= MIN_HISTORY_HOURS
            and week_before >= MIN_SCORED_HOURS
            and week_after >= MIN_SCORED_HOURS
        ):
            chosen.append(when)
            if len(chosen) == N_ORIGINS:
                break
    return chosen[::-1]


def run(group: list[SiteSeries], end: pd.Timestamp) -> Backtest:
    """Backtest every model on every site of ``group`` (global models shared by the group)."""
    plans = {s.site_id: usable_origins(s, end) for s in group}
    notes = {
        s.site_id: _too_little_note(s, end, len(plans[s.site_id]))
        for s in group
        if len(plans[s.site_id]) < choosing.MIN_ORIGINS
    }
    boosters = _boosters(group, sorted({t for times in plans.values() for t in times}))

    forecasts: dict[tuple[str, str, int], np.ndarray] = {}
    actuals: dict[tuple[str, int], np.ndarray] = {}
    positions: dict[tuple[str, int], int] = {}
    origins: dict[tuple[str, int], pd.Timestamp] = {}
    served: dict[models.GlobalBoosting, list[tuple[SiteSeries, int, int]]] = {}
    for series in group:
        for index, when in enumerate(plans[series.site_id]):
            key = (series.site_id, index)
            origin_pos = series.position(when)
            actuals[key] = series.clean[origin_pos : origin_pos + HORIZON]
            positions[key], origins[key] = origin_pos, when
            for name, model in models.LOCAL_MODELS.items():
                forecasts[(series.site_id, name, index)] = model(series, origin_pos)
            served.setdefault(boosters[when], []).append((series, origin_pos, index))

    for booster, items in served.items():
        predicted = booster.predict_many([(series, pos) for series, pos, _ in items])
        for (series, _, index), forecast in zip(items, predicted):
            forecasts[(series.site_id, "gbm_global", index)] = forecast
    for site_id, index in actuals:
        parts = {m: forecasts[(site_id, m, index)] for m in models.MODELS}
        for blend in choosing.BLENDS:
            forecasts[(site_id, blend, index)] = choosing.combine(parts, blend)

    scores = _scores(group, forecasts, actuals, origins)
    choice = choosing.choose(scores, [s.site_id for s in group])
    return Backtest(scores, choice, forecasts, actuals, notes, positions, origins)


def _too_little_note(series: SiteSeries, end: pd.Timestamp, n_origins: int) -> str:
    return (
        f"site {series.site_id}: {series.n_observed} hours of history and {n_origins} usable "
        f"backtest origin(s) in the {LOOKBACK_WEEKS} weeks before {end:%Y-%m-%d}, too little "
        f"for a weekly model and its backtest (an origin needs {MIN_HISTORY_HOURS} clean hours "
        f"before it and {MIN_SCORED_HOURS} in the week before and after it; a choice needs "
        f"{choosing.MIN_ORIGINS} origins); using the one-week-earlier baseline"
    )


def _boosters(group: list[SiteSeries], times: list[pd.Timestamp]) -> dict:
    """A global model per origin instant, each fitted at or before it (never after)."""
    boosters, fitted_at, booster = {}, None, None
    for when in times:
        if fitted_at is None or when - fitted_at >= pd.Timedelta(weeks=BOOSTER_REUSE_WEEKS):
            booster = models.GlobalBoosting().fit([(s, s.position(when)) for s in group])
            fitted_at = when
        boosters[when] = booster
    return boosters


def _scores(group, forecasts, actuals, origins) -> pd.DataFrame:
    rows = []
    datasets = {s.site_id: s.dataset for s in group}
    for (site_id, index), actual in actuals.items():
        ok = np.isfinite(actual)
        for name in CANDIDATES:
            error = np.abs(forecasts[(site_id, name, index)][ok] - actual[ok])
            rows.append(
                {
                    "site_id": site_id,
                    "dataset": datasets[site_id],
                    "model": name,
                    "origin": origins[(site_id, index)],
                    "n_hours": int(ok.sum()),
                    "mae": float(error.mean()),
                }
            )
    scores = pd.DataFrame(
        rows, columns=["site_id", "dataset", "model", "origin", "n_hours", "mae"]
    )
    reference = scores[scores["model"] == REFERENCE].set_index(["site_id", "origin"])["mae"]
    ref = reference.reindex(pd.MultiIndex.from_frame(scores[["site_id", "origin"]])).to_numpy()
    scores["mae_rel"] = np.where(ref > 0, scores["mae"] / np.where(ref > 0, ref, 1), np.nan)
    return scores


def relative_by_model(scores: pd.DataFrame) -> pd.DataFrame:
    """Per site and candidate: MAE summed over origins divided by the reference's."""
    scored = scores.dropna(subset=["mae"])
    totals = scored.groupby(["dataset", "site_id", "model"])["mae"].sum().unstack("model")
    relative = totals.div(totals[REFERENCE], axis=0)
    return relative[totals[REFERENCE] > 0]
