"""The occupancy tables and their reads and writes (SQLAlchemy Core, SQLite or PostgreSQL).

Times are stored in UTC (``*_utc`` columns, ``DateTime(timezone=True)``: ``timestamptz`` on
PostgreSQL; SQLite keeps the UTC wall time). Every write is an upsert on the table's key, so a
rerun of a partition replaces its rows instead of adding new ones; callers wrap each asset's
writes in one ``engine.begin()`` transaction, so a failure leaves the tables as they were.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from market_platform.db import upsert

metadata = sa.MetaData()

sites_table = sa.Table(
    "occupancy_sites",
    metadata,
    sa.Column("site_id", sa.String(200), primary_key=True),
    sa.Column("dataset", sa.String(50)),
    sa.Column("name", sa.String(300)),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("capacity", sa.Float),
    sa.Column("latitude", sa.Float),
    sa.Column("longitude", sa.Float),
    sa.Column("timezone", sa.String(50), nullable=False),
    sa.Column("country", sa.String(2)),
    sa.Column("subdivision", sa.String(10)),
    # The OSM market this site counts people for, where one is known (markets.osm_id).
    sa.Column("osm_market_id", sa.String(50)),
)

observations_table = sa.Table(
    "occupancy_observations",
    metadata,
    sa.Column("site_id", sa.String(200), primary_key=True),
    sa.Column("hour_utc", sa.DateTime(timezone=True), primary_key=True),
    sa.Column("value", sa.Float, nullable=False),
    sa.Column("capacity", sa.Float),
    sa.Column("n_samples", sa.Integer, nullable=False),
    sa.Column("flags", sa.Integer, nullable=False),
)

scores_table = sa.Table(
    "occupancy_backtest_scores",
    metadata,
    sa.Column("site_id", sa.String(200), primary_key=True),
    sa.Column("model", sa.String(50), primary_key=True),
    sa.Column("origin_utc", sa.DateTime(timezone=True), primary_key=True),
    sa.Column("forecast_run", sa.String(20), primary_key=True),
    sa.Column("dataset", sa.String(50)),
    sa.Column("n_hours", sa.Integer),
    sa.Column("mae", sa.Float),
    sa.Column("mae_rel", sa.Float),
    sa.Column("chosen", sa.Boolean, nullable=False),
)

forecasts_table = sa.Table(
    "occupancy_forecasts",
    metadata,
    sa.Column("site_id", sa.String(200), primary_key=True),
    sa.Column("hour_utc", sa.DateTime(timezone=True), primary_key=True),
    # The partition key (local day) whose data the forecast was made from.
    sa.Column("forecast_run", sa.String(20), primary_key=True),
    sa.Column("model", sa.String(50), nullable=False),
    sa.Column("forecast", sa.Float, nullable=False),
    sa.Column("lower_80", sa.Float, nullable=False),
    sa.Column("upper_80", sa.Float, nullable=False),
    sa.Column("lower_95", sa.Float, nullable=False),
    sa.Column("upper_95", sa.Float, nullable=False),
)

OBSERVATION_KEY = ["site_id", "hour_utc"]
FORECAST_KEY = ["site_id", "hour_utc", "forecast_run"]
SCORE_KEY = ["site_id", "model", "origin_utc", "forecast_run"]


def create_tables(engine: Engine) -> None:
    metadata.create_all(engine)


def write_sites(conn: Connection, sites: pd.DataFrame) -> int:
    columns = [c.name for c in sites_table.columns]
    return upsert(conn, sites_table, _records(sites[columns]), ["site_id"])


def write_observations(
    conn: Connection,
    hourly: pd.DataFrame,
    window: tuple[pd.Timestamp, pd.Timestamp] | None = None,
) -> int:
    """Upsert hourly observations; gap hours (no value) are not stored.

    With ``window`` (start inclusive, end exclusive, UTC), the sites in ``hourly`` first lose
    what was stored for them in that window: the newest delivery for a day is the truth for
    it, and an hour it no longer has must not survive from an older one.
    """
    if window is not None and not hourly.empty:
        table = observations_table.c
        conn.execute(observations_table.delete().where(
            table.site_id.in_(sorted(hourly["site_id"].unique())),
            table.hour_utc >= window[0].to_pydatetime(),
            table.hour_utc < window[1].to_pydatetime(),
        ))
    rows = hourly.dropna(subset=["value"])
    columns = [c.name for c in observations_table.columns]
    return upsert(conn, observations_table, _records(rows[columns]), OBSERVATION_KEY)


def write_scores(conn: Connection, scores: pd.DataFrame, chosen: dict, run: str) -> int:
    frame = scores.rename(columns={"origin": "origin_utc"}).assign(forecast_run=run)
    frame["chosen"] = [chosen.get(s) == m for s, m in zip(frame["site_id"], frame["model"])]
    columns = [c.name for c in scores_table.columns]
    return upsert(conn, scores_table, _records(frame[columns]), SCORE_KEY)


def write_forecasts(conn: Connection, forecasts: pd.DataFrame, run: str) -> int:
    frame = forecasts.assign(forecast_run=run)
    columns = [c.name for c in forecasts_table.columns]
    return upsert(conn, forecasts_table, _records(frame[columns]), FORECAST_KEY)


def read_sites(engine: Engine) -> pd.DataFrame:
    with engine.connect() as conn:
        return pd.read_sql(sa.select(sites_table).order_by(sites_table.c.site_id), conn)


def read_observations(
    engine: Engine,
    start: pd.Timestamp | None = None,
    end: pd.Timestamp | None = None,
    site_ids: Iterable[str] | None = None,
) -> pd.DataFrame:
    """Stored observations with ``start <= hour_utc < end``, ``hour_utc`` as UTC timestamps."""
    table = observations_table
    query = sa.select(table).order_by(table.c.site_id, table.c.hour_utc)
    if start is not None:
        query = query.where(table.c.hour_utc >= _db_time(start))
    if end is not None:
        query = query.where(table.c.hour_utc < _db_time(end))
    if site_ids is not None:
        query = query.where(table.c.site_id.in_(list(site_ids)))
    with engine.connect() as conn:
        frame = pd.read_sql(query, conn)
    frame["hour_utc"] = as_utc(frame["hour_utc"])
    return frame


def read_forecasts(engine: Engine, run: str | None = None) -> pd.DataFrame:
    query = sa.select(forecasts_table).order_by(
        forecasts_table.c.site_id, forecasts_table.c.hour_utc
    )
    if run is not None:
        query = query.where(forecasts_table.c.forecast_run == run)
    with engine.connect() as conn:
        frame = pd.read_sql(query, conn)
    frame["hour_utc"] = as_utc(frame["hour_utc"])
    return frame


def as_utc(values: pd.Series) -> pd.Series:
    """UTC timestamps from what the driver returns (naive UTC on SQLite, aware on PostgreSQL)."""
    stamps = pd.to_datetime(values)
    if stamps.dt.tz is None:
        return stamps.dt.tz_localize("UTC")
    return stamps.dt.tz_convert("UTC")


def _db_time(when: pd.Timestamp):
    return pd.Timestamp(when).tz_convert("UTC").to_pydatetime()


def _records(frame: pd.DataFrame) -> list[dict]:
    records = []
    for row in frame.to_dict("records"):
        records.append({k: _plain(v) for k, v in row.items()})
    return records


def _plain(value):
    if isinstance(value, pd.Timestamp):
        return value.tz_convert("UTC").to_pydatetime() if value.tzinfo else value.to_pydatetime()
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return None if math.isnan(value) else float(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if value is pd.NA or value is pd.NaT:
        return None
    return value
