"""Clock changes: 2025-03-30 (no local 02:00) and 2025-10-26 (02:00 twice) in Europe/Berlin."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from market_platform.occupancy import adapters, backtest, features, forecast, ingest, models

BERLIN = "Europe/Berlin"


def _synthetic_feed(tmp_path, start: str, end: str):
    """30-minute counts of a shop open 08-20 local, peaking at 12:00 local, closed Sundays."""
    slots = pd.date_range(start, end, freq="30min", tz="UTC", inclusive="left")
    local = slots.tz_convert(BERLIN)
    hour = local.hour + local.minute / 60
    open_now = (hour >= 8) & (hour < 20) & (local.dayofweek != 6)
    value = np.where(open_now, 100 - 8 * np.abs(hour - 12), 0).round()
    frame = pd.DataFrame(
        {
            "site_id": "dst_shop",
            # Offsets in local time, as a German feed would write them.
            "timestamp": local.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "value": value.astype(int),
        }
    )
    path = tmp_path / "dst_shop.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.mark.parametrize("switch", ["2025-03-30", "2025-10-26"])
def test_every_utc_hour_exactly_once_and_peak_stays_local(tmp_path, switch):
    day = pd.Timestamp(switch)
    path = _synthetic_feed(tmp_path, str(day - pd.Timedelta(weeks=10)),
                           str(day + pd.Timedelta(weeks=2)))
    assert adapters.detect_layout(path) == "canonical"
    hourly, sites = ingest.load([path])

    hours = hourly["hour_utc"]
    expected = pd.date_range(hours.min(), hours.max(), freq="h", tz="UTC")
    assert hours.is_unique and len(hours) == len(expected)
    assert hourly["value"].notna().all()

    switch_day = hourly[ingest.local_day_of(hours) == switch]
    assert len(switch_day) == (23 if switch.endswith("03-30") else 25)
    assert switch_day["value"].sum() == hourly[ingest.local_day_of(hours) == str(
        (day - pd.Timedelta(days=7)).date())]["value"].sum()

    # Forecast from the local midnight after the switch: the peak is at 12:00 local on every
    # open day, before and after the switch, for every model.
    end = pd.Timestamp(day + pd.Timedelta(days=1), tz=BERLIN).tz_convert("UTC")
    site = sites.iloc[0].to_dict()
    series = features.build_series(site, hourly["hour_utc"], hourly["value"], hourly["flags"],
                                   end)
    origin = series.position(end)
    for name, model in models.LOCAL_MODELS.items():
        predicted = pd.Series(model(series, origin), index=series.hours[origin:origin + 168])
        local = predicted.tz_convert(BERLIN)
        open_days = local[local.index.dayofweek != 6]
        peaks = open_days.groupby(open_days.index.date).idxmax()
        assert {p.hour for p in peaks} == {12}, name

    result = forecast.run_group([series], end)
    published = result.forecasts.set_index("hour_utc")["forecast"].tz_convert(BERLIN)
    assert published.index.is_unique and len(published) == 168
    weekdays = published[published.index.dayofweek != 6]
    assert {p.hour for p in weekdays.groupby(weekdays.index.date).idxmax()} == {12}


def test_backtest_origins_are_local_midnights_across_the_switch():
    end = pd.Timestamp("2025-11-09", tz=BERLIN).tz_convert("UTC")
    origins = backtest.origin_times(end, BERLIN)
    assert [o.tz_convert(BERLIN).hour for o in origins] == [0, 0, 0, 0]
    # The week from 2025-10-26 (the switch day) to 2025-11-02 is 169 hours long in UTC.
    steps = [(b - a) / pd.Timedelta(hours=1) for a, b in zip(origins, origins[1:])]
    assert steps == [168, 168, 169]
