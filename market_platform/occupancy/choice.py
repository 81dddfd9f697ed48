"""Which candidate forecasts a site: its own backtest, shrunk toward its group's.

Four weekly origins are little evidence: the candidate that happened to win them at one site
wins the next week hardly more often than the runner-up. The same candidate's record over all
sites of the group (the dataset: footfall sensors, pools...) is far steadier, so a site's score
for each candidate is

    SITE_WEIGHT * (its own MAE summed over its origins / the reference's)
    + (1 - SITE_WEIGHT) * (the mean of that ratio over the group's sites)

and the lowest score wins, among the candidates that are not worse than the one-week-earlier
reference at the site itself (so the choice never loses to the reference on its own record;
the reference always qualifies). Ties go to the simpler candidate, earlier in ``CANDIDATES``.

The choice is scored twice. ``choice_rel`` is in-sample: judged on the origins it was made
on. ``choice_holdout_rel`` is honest: each origin is judged by the candidate chosen without
that week, i.e. without the site's own score at it and without any other site's score for the
same week (leave one origin out).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from market_platform.occupancy import models

REFERENCE = "seasonal_naive"
BLENDS = {
    "blend_gbm_median": ("gbm_global", "median_4w"),
    "blend_gbm_naive": ("gbm_global", "seasonal_naive"),
    "blend_mstl_median": ("mstl", "median_4w"),
    "blend_gbm_mstl": ("gbm_global", "mstl"),
    "blend_gbm_mstl_median": ("gbm_global", "mstl", "median_4w"),
}
CANDIDATES = (*models.MODELS, *BLENDS)
#: Weight of a site's own record against its group's (0: one choice per group, 1: per site).
SITE_WEIGHT = 0.3
#: Scored origins a site needs for a choice of its own.
MIN_ORIGINS = 2
CHOICE_COLUMNS = [
    "site_id",
    "model",
    "scored",
    "n_origins",
    "mae",
    "mae_reference",
    "choice_rel",
    "choice_holdout_rel",
    "median_4w_rel",
]


def choose(scores: pd.DataFrame, site_ids: list[str]) -> pd.DataFrame:
    """The chosen candidate per site (``CHOICE_COLUMNS``) from per-origin backtest scores."""
    table = scores.dropna(subset=["mae"]).pivot_table(
        index=["site_id", "origin"], columns="model", values="mae"
    )
    table = table[[c for c in CANDIDATES if c in table.columns]]
    n_origins = table.groupby(level="site_id").size() if len(table) else pd.Series(dtype=int)
    reference = table[REFERENCE].groupby(level="site_id").sum() if len(table) else n_origins
    eligible = [
        s for s in site_ids if n_origins.get(s, 0) >= MIN_ORIGINS and reference.get(s, 0) > 0
    ]
    table = table[table.index.get_level_values("site_id").isin(eligible)]
    group_ratio = _GroupRatios(table)

    rows = []
    for site_id in site_ids:
        if site_id not in eligible:
            rows.append({"site_id": site_id, "model": REFERENCE, "scored": False,
                         "n_origins": int(n_origins.get(site_id, 0))})
            continue
        site = table.loc[site_id]
        chosen = _pick(site, group_ratio.without(None))
        held_out = sum(
            site.loc[origin, _pick(site.drop(index=origin), group_ratio.without(origin))]
            for origin in site.index
        )
        total = site.sum()
        rows.append(
            {
                "site_id": site_id,
                "model": chosen,
                "scored": True,
                "n_origins": len(site),
                "mae": float(total[chosen] / len(site)),
                "mae_reference": float(total[REFERENCE] / len(site)),
                "choice_rel": float(total[chosen] / total[REFERENCE]),
                "choice_holdout_rel": float(held_out / total[REFERENCE]),
                "median_4w_rel": float(total["median_4w"] / total[REFERENCE]),
            }
        )
    return pd.DataFrame(rows, columns=CHOICE_COLUMNS)


class _GroupRatios:
    """Mean over the group's sites of each candidate's MAE ratio, leaving out one week."""

    def __init__(self, table: pd.DataFrame):
        self.table = table
        self.cache: dict = {}

    def without(self, origin) -> pd.Series:
        if origin not in self.cache:
            kept = self.table
            if origin is not None:
                kept = kept[kept.index.get_level_values("origin") != origin]
            self.cache[origin] = _ratios(kept.groupby(level="site_id").sum()).mean()
        return self.cache[origin]


def _ratios(totals: pd.DataFrame) -> pd.DataFrame:
    totals = totals[totals[REFERENCE] > 0]
    return totals.div(totals[REFERENCE], axis=0)


def _pick(site: pd.DataFrame, group: pd.Series) -> str:
    """The winning candidate for one site's origins (rows) given the group's mean ratios."""
    total = site.sum()
    if not total[REFERENCE] > 0:
        return REFERENCE
    own = total / total[REFERENCE]
    score = SITE_WEIGHT * own + (1 - SITE_WEIGHT) * group.reindex(own.index).fillna(own)
    allowed = own[own <= 1.0].index
    # idxmin keeps the first of equal values, i.e. the simpler candidate.
    return str(score[allowed].idxmin())


def combine(forecasts: dict[str, np.ndarray], name: str) -> np.ndarray:
    """A candidate's forecast from its models' forecasts (a blend is their mean)."""
    return np.mean([forecasts[part] for part in BLENDS.get(name, (name,))], axis=0)
