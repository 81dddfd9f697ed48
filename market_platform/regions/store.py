"""The ``market_regions`` and ``regional_statistics`` tables."""

from __future__ import annotations

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from market_platform import db
from market_platform.markets.store import WRITE_LOCK
from market_platform.regions.statistics import TYPE_COLUMNS

metadata = sa.MetaData()

market_regions_table = sa.Table(
    "market_regions",
    metadata,
    sa.Column("osm_type", sa.String(8), primary_key=True),
    sa.Column("osm_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("snapshot_id", sa.String(16), nullable=False),
    sa.Column("kreis_ags", sa.String(5)),
    sa.Column("land_ags", sa.String(2)),
    sa.Column("assignment", sa.String(12), nullable=False),
    sa.Column("distance_m", sa.Float),
)

statistics_table = sa.Table(
    "regional_statistics",
    metadata,
    sa.Column("snapshot_id", sa.String(16), primary_key=True),
    sa.Column("level", sa.String(8), primary_key=True),
    sa.Column("ags", sa.String(5), primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("population", sa.BigInteger, nullable=False),
    sa.Column("area_km2", sa.Float, nullable=False),
    sa.Column("markets", sa.Integer, nullable=False),
    *(sa.Column(column, sa.Integer, nullable=False) for column in TYPE_COLUMNS),
    sa.Column("markets_per_10k", sa.Float, nullable=False),
    sa.Column("markets_per_km2", sa.Float, nullable=False),
    sa.Column("top_brands", sa.Text, nullable=False),
    sa.Column("top_brand_share", sa.Float),
    sa.Column("markets_change", sa.Integer),
    sa.Column("previous_snapshot_id", sa.String(16)),
)


def replace_market_regions(engine: Engine, snapshot_id: str, regions: pd.DataFrame) -> None:
    """The assignment of the current open markets replaces the previous one as a whole."""
    rows = _records(regions.assign(snapshot_id=snapshot_id))
    with db.begin_write(engine, WRITE_LOCK) as conn:
        metadata.create_all(conn)
        conn.execute(market_regions_table.delete())
        db.upsert(conn, market_regions_table, rows, ["osm_type", "osm_id"])


def replace_statistics(engine: Engine, snapshot_id: str, stats: pd.DataFrame,
                       previous_snapshot_id: str | None) -> None:
    """The statistics of one snapshot, replaced as a whole, so reruns give identical rows."""
    rows = _records(stats.assign(snapshot_id=snapshot_id,
                                 previous_snapshot_id=previous_snapshot_id))
    with db.begin_write(engine, WRITE_LOCK) as conn:
        metadata.create_all(conn)
        conn.execute(statistics_table.delete().where(
            statistics_table.c.snapshot_id == snapshot_id))
        db.upsert(conn, statistics_table, rows, ["snapshot_id", "level", "ags"])


def read_statistics(engine: Engine, snapshot_id: str | None) -> pd.DataFrame:
    if snapshot_id is None:
        return pd.DataFrame()
    with engine.begin() as conn:
        metadata.create_all(conn)
        query = sa.select(statistics_table).where(statistics_table.c.snapshot_id == snapshot_id)
        return pd.read_sql(query, conn)


def _records(frame: pd.DataFrame) -> list[dict]:
    frame = frame.astype(object).where(frame.notna(), None)
    return frame.to_dict("records")
