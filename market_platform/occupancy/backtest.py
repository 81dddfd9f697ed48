"""Rolling-origin backtest: four weekly origins, 168 hours each, and the model choice per site.

Origins are local midnights one, two, three and four weeks before the forecast origin
``end``. At each origin every model forecasts the next 168 hours from what was known then,
and is scored by the mean absolute error over the hours that have a clean value (gaps,
outage days and backlog spikes are not scored). ``mae_rel`` divides a model's MAE by that of
the one-week-earlier baseline at the same site and origin.

The choice per site is the candidate (a model or an equal-weight blend of two) with the lowest
MAE summed over the origins; ties go to the simpler candidate, earlier in ``CANDIDATES``. Its
score is in-sample, so ``choice_holdout_rel`` also reports the honest leave-one-origin-out
score: at each origin, the candidate the other three origins would have chosen.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from market_platform.occupancy import models
from market_platform.occupancy.features import HORIZON, SiteSeries

N_ORIGINS = 4
#: Hours of clean history an origin needs before it, for four weekly lags and a fit.
MIN_HISTORY_HOURS = 4 * HORIZON
#: An origin with fewer clean hours than this is not scored (a closed or silent week).
MIN_SCORED_HOURS = 72
BLENDS = {
    "blend_gbm_median": ("gbm_global", "median_4w"),
    "blend_gbm_naive": ("gbm_global", "seasonal_naive"),
    "blend_mstl_median": ("mstl", "median_4w"),
    "blend_gbm_mstl": ("gbm_global", "mstl"),
    "blend_gbm_mstl_median": ("gbm_global", "mstl", "median_4w"),
}
CANDIDATES = (*models.MODELS, *BLENDS)
REFERENCE = "seasonal_naive"


@dataclass
class Backtest:
    """Scores per site, candidate and origin, forecasts kept for intervals and charts."""

    scores: pd.DataFrame
    choice: pd.DataFrame
    forecasts: dict[tuple[str, str, int], np.ndarray] = field(repr=False)
    actuals: dict[tuple[str, int], np.ndarray] = field(repr=False)
    notes: dict[str, str]
    positions: dict[tuple[str, int], int] = field(default_factory=dict, repr=False)


def origin_times(end: pd.Timestamp, timezone: str, n_origins: int = N_ORIGINS) -> list:
    """UTC instants of the local midnights 1..n weeks before ``end`` (oldest first)."""
    local_end = end.tz_convert(timezone).normalize().tz_localize(None)
    local = [local_end - pd.Timedelta(days=7 * k) for k in range(n_origins, 0, -1)]
    return [
        pd.Timestamp(t).tz_localize(timezone, ambiguous=True, nonexistent="shift_forward")
        .tz_convert("UTC")
        for t in local
    ]


def usable_origins(series: SiteSeries, end: pd.Timestamp) -> list[int]:
    """Positions of the backtest origins that have enough clean history before them."""
    positions = [series.position(t) for t in origin_times(end, series.timezone)]
    observed = np.cumsum(np.isfinite(series.clean))
    return [p for p in positions if p > 0 and observed[p - 1] >= MIN_HISTORY_HOURS]


def run(group: list[SiteSeries], end: pd.Timestamp) -> Backtest:
    """Backtest every model on every site of ``group`` (one global model per origin index)."""
    plans = {s.site_id: usable_origins(s, end) for s in group}
    notes = {
        s.site_id: (
            f"site {s.site_id}: {s.n_observed} hours of history, too little for a weekly "
            f"model and its backtest (needs {MIN_HISTORY_HOURS} clean hours before "
            f"{origin_times(end, s.timezone)[0]:%Y-%m-%d}); using the one-week-earlier baseline"
        )
        for s in group
        if not plans[s.site_id]
    }
    forecasts: dict[tuple[str, str, int], np.ndarray] = {}
    actuals: dict[tuple[str, int], np.ndarray] = {}
    positions: dict[tuple[str, int], int] = {}

    for index in range(N_ORIGINS):
        members = [
            (s, plans[s.site_id][-N_ORIGINS + index])
            for s in group
            if len(plans[s.site_id]) >= N_ORIGINS - index
        ]
        if not members:
            continue
        booster = models.GlobalBoosting().fit(members)
        for series, origin_pos in members:
            key = (series.site_id, index)
            actuals[key] = series.clean[origin_pos : origin_pos + HORIZON]
            positions[key] = origin_pos
            for name, model in models.LOCAL_MODELS.items():
                forecasts[(series.site_id, name, index)] = model(series, origin_pos)
            forecasts[(series.site_id, "gbm_global", index)] = booster.predict(series, origin_pos)
            for blend, parts in BLENDS.items():
                stacked = [forecasts[(series.site_id, p, index)] for p in parts]
                forecasts[(series.site_id, blend, index)] = np.mean(stacked, axis=0)

    scores = _scores(group, plans, end, forecasts, actuals)
    choice = choose(scores, [s.site_id for s in group])
    return Backtest(scores, choice, forecasts, actuals, notes, positions)


def _scores(group, plans, end, forecasts, actuals) -> pd.DataFrame:
    rows = []
    for series in group:
        times = origin_times(end, series.timezone)
        for index in range(N_ORIGINS):
            actual = actuals.get((series.site_id, index))
            if actual is None:
                continue
            ok = np.isfinite(actual)
            if ok.sum() < MIN_SCORED_HOURS:
                ok[:] = False
            for name in CANDIDATES:
                error = np.abs(forecasts[(series.site_id, name, index)][ok] - actual[ok])
                rows.append(
                    {
                        "site_id": series.site_id,
                        "dataset": series.dataset,
                        "model": name,
                        "origin": times[index],
                        "n_hours": int(ok.sum()),
                        "mae": float(error.mean()) if ok.any() else np.nan,
                    }
                )
    scores = pd.DataFrame(
        rows, columns=["site_id", "dataset", "model", "origin", "n_hours", "mae"]
    )
    reference = scores[scores["model"] == REFERENCE].set_index(["site_id", "origin"])["mae"]
    ref = reference.reindex(pd.MultiIndex.from_frame(scores[["site_id", "origin"]])).to_numpy()
    scores["mae_rel"] = np.where(ref > 0, scores["mae"] / np.where(ref > 0, ref, 1), np.nan)
    return scores


def choose(scores: pd.DataFrame, site_ids: list[str]) -> pd.DataFrame:
    """The chosen candidate per site with its in-sample and leave-one-origin-out scores."""
    rows = []
    for site_id in site_ids:
        site = scores[(scores["site_id"] == site_id) & scores["mae"].notna()]
        if site.empty or site["n_hours"].sum() == 0:
            rows.append({"site_id": site_id, "model": REFERENCE, "scored": False})
            continue
        table = site.pivot_table(index="origin", columns="model", values="mae", sort=True)
        table = table[[c for c in CANDIDATES if c in table.columns]]
        total = table.sum()
        chosen = _best(total)
        reference = total[REFERENCE]
        if not reference > 0:
            # Nothing to beat (a closed site scored on a few zero hours): keep the baseline.
            rows.append({"site_id": site_id, "model": REFERENCE, "scored": False})
            continue

        holdout_errors = []
        for origin in table.index:
            others = table.drop(index=origin)
            pick = _best(others.sum()) if len(others) else chosen
            holdout_errors.append(table.loc[origin, pick])
        rows.append(
            {
                "site_id": site_id,
                "model": chosen,
                "scored": True,
                "mae": float(total[chosen] / len(table)),
                "mae_reference": float(reference / len(table)),
                "choice_rel": float(total[chosen] / reference),
                "choice_holdout_rel": float(np.sum(holdout_errors) / reference),
                "median_4w_rel": float(total["median_4w"] / reference),
            }
        )
    return pd.DataFrame(rows)


def _best(total: pd.Series) -> str:
    # idxmin keeps the first of equal values, i.e. the simpler candidate.
    return str(total.idxmin())


def relative_by_model(scores: pd.DataFrame) -> pd.DataFrame:
    """Per site and candidate: MAE summed over origins divided by the reference's."""
    scored = scores.dropna(subset=["mae"])
    totals = scored.groupby(["dataset", "site_id", "model"])["mae"].sum().unstack("model")
    relative = totals.div(totals[REFERENCE], axis=0)
    return relative[totals[REFERENCE] > 0]
