"""Models and forecasts: closed hours, too little history, bounds and intervals."""

from __future__ import annotations

import numpy as np
import pandas as pd

from market_platform.occupancy import features, forecast, models, quality

BERLIN = "Europe/Berlin"


def _series(
    weeks: float, capacity=float("nan"), kind="occupancy", end="2025-06-02", forecast_from=None
):
    end = pd.Timestamp(end, tz=BERLIN).tz_convert("UTC")
    origin = end if forecast_from is None else forecast_from
    hours = pd.date_range(end - pd.Timedelta(hours=int(weeks * 168)), end, freq="h",
                          inclusive="left")
    local = hours.tz_convert(BERLIN)
    is_open = (local.hour >= 9) & (local.hour < 21) & (local.dayofweek != 6)
    rng = np.random.default_rng(1)
    value = np.where(is_open, 80 + 40 * np.sin((local.hour - 9) / 12 * np.pi), 0.0)
    value = np.where(is_open, np.clip(value + rng.normal(0, 5, len(hours)), 0, None), 0.0)
    site = {"site_id": "pool", "dataset": "synthetic", "kind": kind, "capacity": capacity,
            "timezone": BERLIN, "country": "DE", "subdivision": "BY"}
    return features.build_series(site, pd.Series(hours), pd.Series(value),
                                 pd.Series(np.zeros(len(hours), dtype=int)), origin), origin


def test_too_little_history_says_so_and_falls_back_to_the_baseline():
    series, end = _series(weeks=2)
    result = forecast.run_group([series], end)
    assert "pool" in result.notes and "too little for a weekly model" in result.notes["pool"]
    assert set(result.forecasts["model"]) == {"seasonal_naive"}
    assert len(result.forecasts) == 168


def test_forecasts_stay_within_zero_and_capacity_and_intervals_nest():
    series, end = _series(weeks=12, capacity=100.0)
    result = forecast.run_group([series], end)
    frame = result.forecasts
    assert len(frame) == 168
    assert (frame["lower_95"] >= 0).all() and (frame["upper_95"] <= 100).all()
    assert (frame["lower_95"] <= frame["lower_80"]).all()
    assert (frame["lower_80"] <= frame["forecast"]).all()
    assert (frame["forecast"] <= frame["upper_80"]).all()
    assert (frame["upper_80"] <= frame["upper_95"]).all()
    # Closed hours (nights, Sundays) are forecast as closed, with a narrow interval.
    local = frame["hour_utc"].dt.tz_convert(BERLIN)
    night = frame[(local.dt.hour < 6)]
    assert night["forecast"].max() < 5 and night["upper_95"].max() < 20


def test_multiplicative_mstl_survives_zero_hours():
    series, end = _series(weeks=8)
    predicted = models.mstl(series, series.position(end))
    assert np.isfinite(predicted).all() and (predicted >= 0).all()
    assert predicted.max() > 60


def test_holidays_come_from_the_land():
    series, _ = _series(weeks=8, end="2025-06-30")
    days = pd.DatetimeIndex(series.hours).tz_convert(BERLIN)
    # Fronleichnam 2025-06-19 is a holiday in Bavaria, not in Berlin or Bremen.
    assert series.holiday[days.strftime("%Y-%m-%d") == "2025-06-19"].all()
    assert "2025-06-19" in {str(d) for d in features.holiday_dates("DE", "BY", (2025,))}
    assert "2025-06-19" not in {str(d) for d in features.holiday_dates("DE", "HB", (2025,))}


def test_stale_sites_are_not_forecast():
    later = pd.Timestamp("2025-08-01", tz=BERLIN).tz_convert("UTC")
    series, _ = _series(weeks=10, forecast_from=later)
    result = forecast.run_all([series], later)
    assert result.forecasts.empty and "no reading" in result.notes["pool"]


def test_a_site_closed_at_the_origin_is_forecast_closed():
    open_series, end = _series(weeks=12, capacity=100.0)
    value = np.where(np.arange(len(open_series.value)) >= open_series.position(end) - 10 * 24,
                     0.0, open_series.value)[: open_series.position(end)]
    hours = pd.Series(open_series.hours[: open_series.position(end)])
    flags = quality.flag_hours(hours, pd.Series(value), BERLIN, set())
    site = {"site_id": "pool", "dataset": "synthetic", "kind": "occupancy", "capacity": 100.0,
            "timezone": BERLIN, "country": "DE", "subdivision": "BY"}
    closed = features.build_series(site, hours, pd.Series(value), pd.Series(flags), end)

    result = forecast.run_group([closed], end)
    assert result.choice["scored"].all()  # judged on the open weeks before the closure
    assert set(result.forecasts["model"]) == {forecast.CLOSED_MODEL}
    assert result.forecasts[["forecast", "lower_95", "upper_95"]].eq(0).all().all()
    assert "closed since 2025-05-23" in result.notes["pool"]
