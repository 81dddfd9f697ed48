"""The occupancy tables on SQLite and PostgreSQL: upserts make reruns idempotent."""

from __future__ import annotations

import pandas as pd
import pytest

from market_platform import db
from market_platform.occupancy import store


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_db_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'occupancy.sqlite'}"
    return request.getfixturevalue("postgres_url")


def test_reruns_replace_rows_and_times_stay_utc(any_db_url):
    engine = db.get_engine(any_db_url)
    store.create_tables(engine)
    hours = pd.date_range("2025-10-26T00:00Z", periods=3, freq="h")
    sites = pd.DataFrame([{"site_id": "s", "dataset": "t", "name": "S", "kind": "count",
                           "capacity": None, "latitude": None, "longitude": None,
                           "timezone": "Europe/Berlin", "country": "DE", "subdivision": "BY",
                           "osm_market_id": None}])
    hourly = pd.DataFrame({"site_id": "s", "hour_utc": hours, "value": [1.0, float("nan"), 3.0],
                           "capacity": float("nan"), "n_samples": [2, 0, 2], "flags": 0})
    forecast = pd.DataFrame({"site_id": "s", "hour_utc": hours, "model": "m",
                             "forecast": 1.0, "lower_80": 0.5, "upper_80": 1.5,
                             "lower_95": 0.0, "upper_95": 2.0})
    for value in (1.0, 7.0):
        with engine.begin() as conn:
            store.write_sites(conn, sites)
            store.write_observations(conn, hourly.assign(value=[value, float("nan"), 3.0]))
            store.write_forecasts(conn, forecast.assign(forecast=value), "2025-10-25")

    stored = store.read_observations(engine)
    assert stored["value"].tolist() == [7.0, 3.0]  # the gap hour is not stored
    assert list(stored["hour_utc"]) == [hours[0], hours[2]]
    forecasts = store.read_forecasts(engine, run="2025-10-25")
    assert len(forecasts) == 3 and forecasts["forecast"].eq(7.0).all()
    window = store.read_observations(engine, start=hours[1], end=hours[2] + pd.Timedelta("1h"))
    assert window["value"].tolist() == [3.0]
