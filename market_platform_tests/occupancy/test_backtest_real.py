"""The rolling-origin backtest and the choice per site on the real Heidenheim and Munich series.

Measured (4 weekly origins per site, 168 h each, MAE relative to the one-week-earlier
baseline, mean over the scored sites; scikit-learn 1.9.1, statsmodels 0.14.6):

| dataset | sites | median_4w | mstl | gbm_global | choice (held-out) | choice (in-sample) |
|---|---|---|---|---|---|---|
| Heidenheim | 6 of 6 | 1.064 | 1.310 | 0.803 | 0.818 | 0.799 |
| Munich | 17 of 17 | 0.855 | 0.976 | 0.827 | 0.825 | 0.789 |

Each Munich facility is judged on its own last four open weeks (the ice rink, open until
2026-03-01 from the first data on 2026-01-19, on two), never on the weeks it was closed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from market_platform.occupancy import backtest, quality

from .conftest import HEIDENHEIM_END, MUNICH_END, build_group


@pytest.fixture(scope="module")
def groups(real_hourly):
    hourly, sites = real_hourly
    return {
        "heidenheim": build_group(hourly, sites, "heidenheim.", HEIDENHEIM_END),
        "munich": build_group(hourly, sites, "swm.", MUNICH_END),
    }


@pytest.fixture(scope="module")
def results(groups):
    return {
        "heidenheim": backtest.run(groups["heidenheim"], HEIDENHEIM_END),
        "munich": backtest.run(groups["munich"], MUNICH_END),
    }


EXPECTED = {
    # dataset: (scored sites, {model or choice: (low, high)} of the mean relative MAE)
    "heidenheim": (
        6,
        {
            "median_4w": (1.00, 1.13),
            "mstl": (1.15, 1.50),
            "gbm_global": (0.76, 0.85),
            "choice_holdout_rel": (0.77, 0.85),
            "choice_rel": (0.75, 0.84),
        },
    ),
    "munich": (
        17,
        {
            "median_4w": (0.83, 0.88),
            "mstl": (0.93, 1.02),
            "gbm_global": (0.79, 0.87),
            "choice_holdout_rel": (0.79, 0.85),
            "choice_rel": (0.75, 0.83),
        },
    ),
}


@pytest.mark.parametrize("dataset", ["heidenheim", "munich"])
def test_scores_are_where_they_were_measured(results, dataset):
    scored_sites, ranges = EXPECTED[dataset]
    choice = results[dataset].choice
    scored = choice[choice["scored"]]
    relative = backtest.relative_by_model(results[dataset].scores)
    assert len(scored) == len(relative) == scored_sites

    means = relative.mean().to_dict()
    means |= scored[["choice_holdout_rel", "choice_rel"]].mean().to_dict()
    for name, (low, high) in ranges.items():
        assert low <= means[name] <= high, (name, means[name])


@pytest.mark.parametrize("dataset", ["heidenheim", "munich"])
def test_the_honest_choice_beats_both_baselines(results, dataset):
    choice = results[dataset].choice
    scored = choice[choice["scored"]]
    better_baseline = min(1.0, scored["median_4w_rel"].mean())

    # The goal of the issue: below 1.0, at most 0.85, never worse than the better baseline,
    # judged on weeks the choice did not see.
    assert scored["choice_holdout_rel"].mean() <= min(0.85, better_baseline)
    assert scored["choice_rel"].mean() <= scored["choice_holdout_rel"].mean() + 1e-9
    # On its own record no site's choice is worse than the one-week-earlier baseline.
    assert (scored["mae"] <= scored["mae_reference"] + 1e-9).all()


def test_each_munich_facility_is_judged_on_its_own_open_weeks(results, groups):
    result = results["munich"]
    origins = pd.DataFrame(
        [(site, when.tz_convert("Europe/Berlin")) for (site, _), when in result.origins.items()],
        columns=["site_id", "origin"],
    )
    per_site = origins.groupby("site_id")["origin"].agg(["size", "max"])
    assert per_site["size"].drop("swm.ice_prinzregentenstadion_eislaufbahn").eq(4).all()
    assert per_site.loc["swm.ice_prinzregentenstadion_eislaufbahn", "size"] == 2
    # Westbad closed for the summer on 2026-04-28; its last origin is the Wednesday before.
    assert str(per_site.loc["swm.pool_westbad", "max"].date()) == "2026-04-22"
    assert str(per_site.loc["swm.pool_bad_giesing_harlaching", "max"].date()) == "2026-06-24"

    flags = {s.site_id: s.flags for s in groups["munich"]}
    for (site, index), actual in result.actuals.items():
        position = result.positions[(site, index)]
        scored = np.isfinite(actual)
        assert scored.sum() >= backtest.MIN_SCORED_HOURS
        week_flags = flags[site][position : position + len(actual)]
        assert not (week_flags[scored] & quality.FLAG_CLOSED).any()


def test_scores_are_kept_per_site_model_and_origin(results):
    scores = results["heidenheim"].scores
    assert scores.groupby(["site_id", "model"])["origin"].nunique().eq(4).all()
    assert set(scores["model"]) == set(backtest.CANDIDATES)
    naive = scores[scores["model"] == "seasonal_naive"]
    assert naive["mae_rel"].dropna().eq(1.0).all()
