"""Forecasting models for 168 hourly values after a forecast origin.

Every model answers the same question: given a site's hours before grid position
``origin_pos`` (the first forecast hour), what are the next ``HORIZON`` values? Lags are read
by local wall clock (see ``features``), so a weekly pattern survives the clock changes.

``seasonal_naive``  the value at the same local hour one week earlier, as observed (the
                    reference every score is divided by); a missing week falls back to the
                    week before it
``median_4w``       the median of the same local hour in the last four weeks, as observed
``mstl``            statsmodels MSTL with daily and weekly seasonality on ``log1p`` of the
                    last ``MSTL_WEEKS`` clean weeks (multiplicative seasonality that survives
                    zero hours), with the trend held flat and nothing above the highest
                    clean hour it was fitted on
``gbm_global``      one scikit-learn histogram gradient boosting model with absolute-error loss
                    for all sites of a group, on hour of week, public holidays, closed-hour
                    share and clean weekly lags, each site scaled by its capacity (people
                    inside) or its recent level (counts); only lags of at least a week are
                    used, so one model serves all 168 horizons
"""

from __future__ import annotations

import functools
import warnings

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingRegressor
from statsmodels.tsa.seasonal import MSTL
from threadpoolctl import ThreadpoolController

from market_platform.occupancy.features import HORIZON, SiteSeries, lag_values

BASELINES = ("seasonal_naive", "median_4w")
MODELS = (*BASELINES, "mstl", "gbm_global")

MSTL_WEEKS = 4
#: MSTL never forecasts more than this times the highest clean hour it was fitted on.
MSTL_CEILING = 1.0
#: One fast pass instead of statsmodels' robust defaults: five times quicker and, on these
#: series, no worse once outages are already masked.
MSTL_STL_KWARGS = {"inner_iter": 1, "outer_iter": 0}
#: Parallelism comes from processes, one per core (Dask workers). Within a process, OpenMP
#: threads made a 30,000-row fit 10x slower on the 2-core machine (12 s against 1.1 s).
GBM_THREADS = 1
#: Weekly origins before a forecast origin that the global model learns from.
GBM_TRAINING_WEEKS = 30
#: At most this many rows per fit, sampled by site-week, so the cost stays flat with more sites.
GBM_MAX_ROWS = 30_000
GBM_PARAMS = dict(
    loss="absolute_error",
    learning_rate=0.1,
    max_iter=100,
    max_leaf_nodes=31,
    min_samples_leaf=40,
    l2_regularization=1.0,
    categorical_features=[0],
    early_stopping=False,
    random_state=0,
)
FEATURE_NAMES = [
    "hour_of_week",
    "hour_of_day",
    "day_of_week",
    "holiday",
    "holiday_week_before",
    "is_occupancy",
    "lag_1w",
    "lag_2w",
    "lag_3w",
    "lag_4w",
    "median_4w",
    "recent_hour_of_day",
    "recent_level",
    "closed_share",
]


def _targets(origin_pos: int) -> slice:
    return slice(origin_pos, origin_pos + HORIZON)


def _fallback(series: SiteSeries, origin_pos: int, forecast: np.ndarray) -> np.ndarray:
    """Holes left by a model become the clean hour-of-week mean of the last 8 weeks, else 0."""
    missing = np.isnan(forecast)
    if not missing.any():
        return forecast
    start = max(0, origin_pos - 8 * HORIZON)
    history = series.clean[start:origin_pos]
    how = series.hour_of_week[start:origin_pos]
    sums = np.bincount(how[~np.isnan(history)], history[~np.isnan(history)], minlength=168)
    counts = np.bincount(how[~np.isnan(history)], minlength=168)
    profile = np.divide(sums, counts, out=np.zeros(168), where=counts > 0)
    target_how = series.hour_of_week[_targets(origin_pos)]
    return np.where(missing, profile[target_how], forecast)


def seasonal_naive(series: SiteSeries, origin_pos: int) -> np.ndarray:
    targets = _targets(origin_pos)
    forecast = lag_values(series, series.value, 1, origin_pos, targets)
    for weeks in range(2, 5):
        holes = np.isnan(forecast)
        if not holes.any():
            break
        forecast[holes] = lag_values(series, series.value, weeks, origin_pos, targets)[holes]
    return _fallback(series, origin_pos, forecast)


def median_4w(series: SiteSeries, origin_pos: int) -> np.ndarray:
    targets = _targets(origin_pos)
    lags = np.vstack(
        [lag_values(series, series.value, k, origin_pos, targets) for k in range(1, 5)]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        forecast = np.nanmedian(lags, axis=0)
    return _fallback(series, origin_pos, forecast)


def mstl(series: SiteSeries, origin_pos: int) -> np.ndarray:
    """MSTL on the local wall-clock grid, so that the daily period stays 24 local hours."""
    start = max(0, origin_pos - MSTL_WEEKS * HORIZON)
    clean = series.clean[start:origin_pos]
    if np.isnan(clean).mean() > 0.5 or len(clean) < 2 * HORIZON:
        return seasonal_naive(series, origin_pos)

    # Regular local grid: the repeated autumn hour is averaged, the spring gap interpolated,
    # as are gaps and flagged hours (for fitting only; nothing here is stored).
    wall = series.hours[start : origin_pos + HORIZON].tz_convert(series.timezone)
    wall = wall.tz_localize(None)
    history = pd.Series(np.log1p(clean), index=wall[: len(clean)]).groupby(level=0).mean()
    grid = pd.date_range(history.index[0], history.index[-1], freq="h")
    filled = history.reindex(grid).interpolate(limit_direction="both").to_numpy()

    fit = MSTL(filled, periods=(24, 168), iterate=1, stl_kwargs=dict(MSTL_STL_KWARGS)).fit()
    seasonal = np.asarray(fit.seasonal)
    level = float(np.mean(np.asarray(fit.trend)[-24:]))
    steps = ((wall[len(clean) :] - grid[-1]) / pd.Timedelta(hours=1)).to_numpy().astype(int)
    week = seasonal[-168:, 1][(steps - 1) % 168]
    day = seasonal[-24:, 0][(steps - 1) % 24]
    forecast = np.expm1(level + week + day)
    # Seasonal components added in log space multiply their errors; after a masked day they
    # can forecast several times anything ever seen. Nothing above the history's peak.
    ceiling = MSTL_CEILING * np.nanmax(clean) if np.isfinite(clean).any() else np.inf
    return np.clip(forecast, 0, ceiling)


def site_scale(series: SiteSeries, origin_pos: int) -> float:
    """A site's recent level: the clean mean of the four weeks before the origin."""
    for weeks in (4, 12, 1000):
        recent = series.clean[max(0, origin_pos - weeks * HORIZON) : origin_pos]
        if np.isfinite(recent).any():
            level = float(np.nanmean(recent))
            if level > 0:
                return level
    return 1.0


def gbm_scale(series: SiteSeries, origin_pos: int) -> float:
    """What the global model divides a site's values by: its capacity where the values are
    people inside (a share is comparable across sites and seasons), else its recent level."""
    if series.kind == "occupancy" and series.capacity > 0:
        return float(series.capacity)
    return site_scale(series, origin_pos)


def gbm_features(series: SiteSeries, origin_pos: int, scale: float) -> np.ndarray:
    """The ``FEATURE_NAMES`` rows of the ``HORIZON`` hours after ``origin_pos``."""
    targets = _targets(origin_pos)
    n = len(series.hours[targets])
    clean = series.clean / scale
    lags = np.vstack([lag_values(series, clean, k, origin_pos, targets) for k in range(1, 5)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        median = np.nanmedian(lags, axis=0)

    hour = series.hour_of_day[targets]
    week_before = series.lag_pos[0][targets]
    holiday_before = np.where(week_before >= 0, series.holiday[np.maximum(week_before, 0)], 0)

    recent = clean[max(0, origin_pos - HORIZON) : origin_pos]
    recent_hod = series.hour_of_day[max(0, origin_pos - HORIZON) : origin_pos]
    hod_mean = _group_mean(recent_hod, recent, 24)
    history = clean[max(0, origin_pos - 8 * HORIZON) : origin_pos]
    history_how = series.hour_of_week[max(0, origin_pos - 8 * HORIZON) : origin_pos]
    closed = _group_mean(history_how, (history == 0).astype(float), 168, where=~np.isnan(history))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        recent_level = np.nanmean(recent) if len(recent) else np.nan

    how = series.hour_of_week[targets]
    return np.column_stack(
        [
            how,
            hour,
            series.day_of_week[targets],
            series.holiday[targets],
            holiday_before,
            np.full(n, series.kind == "occupancy", dtype=float),
            lags.T,
            median,
            hod_mean[hour],
            np.full(n, recent_level),
            closed[how],
        ]
    ).astype(float)


def _group_mean(
    keys: np.ndarray, values: np.ndarray, size: int, where: np.ndarray | None = None
) -> np.ndarray:
    ok = ~np.isnan(values) if where is None else where & ~np.isnan(values)
    sums = np.bincount(keys[ok], values[ok], minlength=size)
    counts = np.bincount(keys[ok], minlength=size)
    return np.divide(sums, counts, out=np.full(size, np.nan), where=counts > 0)


@functools.lru_cache(maxsize=1)
def _controller() -> ThreadpoolController:
    # Finding the loaded thread pools takes milliseconds; threadpool_limits() does it on every
    # call, which cost 30 ms per series in predictions alone. Look once, reuse.
    return ThreadpoolController()


def _one_thread():
    return _controller().limit(limits=GBM_THREADS, user_api="openmp")


class GlobalBoosting:
    """The global gradient boosting model of a group of sites, fitted for one origin index."""

    def __init__(self, training_weeks: int = GBM_TRAINING_WEEKS, max_rows: int = GBM_MAX_ROWS):
        self.training_weeks = training_weeks
        self.max_rows = max_rows
        self.model: HistGradientBoostingRegressor | None = None

    def fit(self, sites: list[tuple[SiteSeries, int]]) -> GlobalBoosting:
        """Learn from the weeks before each ``(series, origin_pos)``."""
        blocks = []
        for series, origin_pos in sites:
            for week in range(1, self.training_weeks + 1):
                pseudo = origin_pos - week * HORIZON
                if pseudo - 2 * HORIZON < 0:
                    break
                blocks.append((series, pseudo))
        rng = np.random.default_rng(0)
        if len(blocks) * HORIZON > self.max_rows:
            keep = rng.choice(len(blocks), self.max_rows // HORIZON, replace=False)
            blocks = [blocks[i] for i in sorted(keep)]

        features, targets = [], []
        for series, pseudo in blocks:
            scale = gbm_scale(series, pseudo)
            y = series.clean[_targets(pseudo)] / scale
            ok = ~np.isnan(y)
            if ok.any():
                features.append(gbm_features(series, pseudo, scale)[ok])
                targets.append(y[ok])
        if not features:
            return self
        self.model = HistGradientBoostingRegressor(**GBM_PARAMS)
        with _one_thread():
            self.model.fit(np.vstack(features), np.concatenate(targets))
        return self

    def predict(self, series: SiteSeries, origin_pos: int) -> np.ndarray:
        return self.predict_many([(series, origin_pos)])[0]

    def predict_many(self, items: list[tuple[SiteSeries, int]]) -> list[np.ndarray]:
        """Forecasts for several ``(series, origin_pos)`` in one call (a call costs ~10 ms)."""
        if self.model is None:
            return [seasonal_naive(series, origin_pos) for series, origin_pos in items]
        scales = [gbm_scale(series, origin_pos) for series, origin_pos in items]
        rows = [gbm_features(s, p, scale) for (s, p), scale in zip(items, scales)]
        with _one_thread():
            predicted = self.model.predict(np.vstack(rows))
        ends = np.cumsum([len(r) for r in rows])[:-1]
        return [
            np.clip(part * scale, 0, None)
            for part, scale in zip(np.split(predicted, ends), scales)
        ]


LOCAL_MODELS = {"seasonal_naive": seasonal_naive, "median_4w": median_4w, "mstl": mstl}
