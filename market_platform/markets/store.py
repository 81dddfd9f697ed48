"""The ``markets``, ``market_changes`` and ``market_snapshots`` tables.

One extract is one snapshot, identified by the first 16 hex digits of its sha256. Applying a
snapshot upserts its markets, marks the ones it lacks as closed and records what changed since
the snapshot applied before it, all in one transaction. Applying the same snapshot again finds
nothing to change, so the tables stay identical.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from market_platform import db
from market_platform.errors import InputError
from market_platform.markets.changes import KEY, TRACKED, diff_markets

FIELDS = [
    "market_type", "name", "brand", "operator", "opening_hours",
    "street", "housenumber", "postcode", "city", "lon", "lat",
]

#: The address found by reverse geocoding (``market_platform.outside``), kept beside the OSM
#: address and never written by a snapshot; ``address_source`` says which one a market has.
GEOCODED_FIELDS = [
    "geocoded_street", "geocoded_housenumber", "geocoded_postcode", "geocoded_city",
]

metadata = sa.MetaData()

# One lock for every writer of the market tables and the tables derived from them.
WRITE_LOCK = "market_platform.markets"

snapshots_table = sa.Table(
    "market_snapshots",
    metadata,
    sa.Column("snapshot_id", sa.String(16), primary_key=True),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("source_format", sa.String(16), nullable=False),
    sa.Column("size_bytes", sa.BigInteger, nullable=False),
    sa.Column("osm_timestamp", sa.String(32)),
    sa.Column("markets", sa.Integer, nullable=False),
    sa.Column("load_seq", sa.Integer, nullable=False),
    sa.Column("previous_snapshot_id", sa.String(16)),
)

markets_table = sa.Table(
    "markets",
    metadata,
    sa.Column("osm_type", sa.String(8), primary_key=True),
    sa.Column("osm_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("market_type", sa.String(32), nullable=False),
    *(sa.Column(name, sa.Text) for name in FIELDS[1:9]),
    sa.Column("lon", sa.Float, nullable=False),
    sa.Column("lat", sa.Float, nullable=False),
    sa.Column("status", sa.String(8), nullable=False),
    sa.Column("first_seen", sa.String(16), nullable=False),
    sa.Column("last_seen", sa.String(16), nullable=False),
    sa.Column("closed_in", sa.String(16)),
    *(sa.Column(name, sa.Text) for name in GEOCODED_FIELDS),
    sa.Column("address_source", sa.String(12)),
)

changes_table = sa.Table(
    "market_changes",
    metadata,
    sa.Column("snapshot_id", sa.String(16), primary_key=True),
    sa.Column("osm_type", sa.String(8), primary_key=True),
    sa.Column("osm_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("previous_snapshot_id", sa.String(16)),
    sa.Column("change", sa.String(8), nullable=False),
    sa.Column("fields", sa.Text, nullable=False),
    *(sa.Column(f"{c}_{side}", sa.Text) for c in TRACKED for side in ("old", "new")),
    sa.Column("moved_m", sa.Float),
)


@dataclass(frozen=True)
class Snapshot:
    """What identifies one extract."""

    sha256: str
    source: str
    source_format: str
    size_bytes: int
    osm_timestamp: datetime | None

    @property
    def snapshot_id(self) -> str:
        return self.sha256[:16]


@dataclass(frozen=True)
class ApplyResult:
    snapshot_id: str
    previous_snapshot_id: str | None
    baseline: bool
    markets: int
    opened: int
    changed: int
    closed: int


def create_tables(conn: Connection) -> None:
    metadata.create_all(conn)
    _add_missing_columns(conn)
    if db.ensure_postgis(conn):
        # A generated column keeps the PostGIS point in step with lon/lat on every upsert.
        conn.execute(sa.text(
            "ALTER TABLE markets ADD COLUMN IF NOT EXISTS geom geometry(Point, 4326) "
            "GENERATED ALWAYS AS (ST_SetSRID(ST_MakePoint(lon, lat), 4326)) STORED"
        ))
        conn.execute(sa.text(
            "CREATE INDEX IF NOT EXISTS markets_geom_idx ON markets USING GIST (geom)"
        ))


def _add_missing_columns(conn: Connection) -> None:
    """Add the columns a database created by an older version lacks (the geocoded address)."""
    # Column names from an empty result: reflecting the types would warn on PostGIS' geometry.
    present = set(conn.execute(sa.text("SELECT * FROM markets WHERE 1 = 0")).keys())
    for column in markets_table.columns:
        if column.name not in present:
            kind = column.type.compile(dialect=conn.dialect)
            conn.execute(sa.text(f"ALTER TABLE markets ADD COLUMN {column.name} {kind}"))


# Below this many open markets the closing guard does not apply: small test databases and
# tiny extracts change by large shares legitimately.
GUARD_MIN_MARKETS = 20


def apply_snapshot(
    engine: Engine,
    snapshot: Snapshot,
    markets: pd.DataFrame,
    max_closed_share: float | None = None,
) -> ApplyResult:
    """Upsert ``markets`` as the new state and record the changes, in one transaction.

    With ``max_closed_share``, an extract that would close more than that share of the open
    markets is refused before anything is written: a PBF cut at a block boundary reads as a
    valid, smaller extract, and so does an extract of another region.
    """
    with db.begin_write(engine, WRITE_LOCK) as conn:
        create_tables(conn)
        load_seq, previous = _place_in_history(conn, snapshot.snapshot_id)
        stored = pd.read_sql(sa.select(markets_table), conn)
        open_before = stored[stored["status"] == "open"]
        baseline = stored.empty

        changes = diff_markets(open_before[KEY + FIELDS], markets[KEY + FIELDS])
        _guard_closures(changes, len(open_before), max_closed_share, snapshot.source)
        if not baseline:
            rows = changes.assign(
                snapshot_id=snapshot.snapshot_id, previous_snapshot_id=previous
            ).to_dict("records")
            db.upsert(conn, changes_table, rows, ["snapshot_id", *KEY])

        db.upsert(conn, markets_table, _market_rows(stored, markets, snapshot), KEY)
        closed = changes[changes["change"] == "closed"]
        if not closed.empty:
            _close(conn, closed, snapshot.snapshot_id)

        db.upsert(conn, snapshots_table, [{
            "snapshot_id": snapshot.snapshot_id,
            "sha256": snapshot.sha256,
            "source": snapshot.source,
            "source_format": snapshot.source_format,
            "size_bytes": snapshot.size_bytes,
            "osm_timestamp": _iso(snapshot.osm_timestamp),
            "markets": len(markets),
            "load_seq": load_seq,
            "previous_snapshot_id": previous,
        }], ["snapshot_id"])

    counts = changes["change"].value_counts() if not baseline else {}
    return ApplyResult(
        snapshot_id=snapshot.snapshot_id,
        previous_snapshot_id=previous,
        baseline=baseline,
        markets=len(markets),
        opened=int(counts.get("opened", 0)),
        changed=int(counts.get("changed", 0)),
        closed=int(counts.get("closed", 0)),
    )


def _guard_closures(changes: pd.DataFrame, open_before: int, limit: float | None,
                    source: str) -> None:
    if limit is None or open_before < GUARD_MIN_MARKETS:
        return
    closed = int((changes["change"] == "closed").sum())
    if closed / open_before > limit:
        raise InputError(
            source,
            f"would close {closed} of {open_before} open markets ({closed / open_before:.0%}, "
            f"more than {limit:.0%}): a truncated file or an extract of another region? "
            "Set MARKET_PLATFORM_MAX_CLOSED_SHARE=1 to apply it anyway",
        )


def _place_in_history(conn: Connection, snapshot_id: str) -> tuple[int, str | None]:
    """The load sequence number and predecessor of ``snapshot_id``.

    Re-applying the newest snapshot keeps its place, so reruns change nothing; re-applying an
    older one after a newer is a real change of state and gets a new place at the end.
    """
    rows = conn.execute(
        sa.select(snapshots_table.c.snapshot_id, snapshots_table.c.load_seq,
                  snapshots_table.c.previous_snapshot_id)
        .order_by(snapshots_table.c.load_seq.desc())
    ).all()
    if rows and rows[0].snapshot_id == snapshot_id:
        return rows[0].load_seq, rows[0].previous_snapshot_id
    if not rows:
        return 1, None
    return rows[0].load_seq + 1, rows[0].snapshot_id


def _market_rows(stored: pd.DataFrame, markets: pd.DataFrame, snapshot: Snapshot) -> list[dict]:
    first_seen = stored.set_index(KEY)["first_seen"] if not stored.empty else None
    rows = markets[KEY + FIELDS].copy()
    rows["status"] = "open"
    rows["last_seen"] = snapshot.snapshot_id
    rows["closed_in"] = None
    if first_seen is not None:
        known = first_seen.reindex(pd.MultiIndex.from_frame(rows[KEY])).to_numpy()
        rows["first_seen"] = pd.Series(known, index=rows.index).fillna(snapshot.snapshot_id)
    else:
        rows["first_seen"] = snapshot.snapshot_id
    # A market that reopened starts a new life.
    if not stored.empty:
        was_closed = stored[stored["status"] == "closed"].set_index(KEY).index
        reopened = pd.MultiIndex.from_frame(rows[KEY]).isin(was_closed)
        rows.loc[reopened, "first_seen"] = snapshot.snapshot_id
    rows = rows.astype(object).where(rows.notna(), None)
    return rows.to_dict("records")


def _close(conn: Connection, closed: pd.DataFrame, snapshot_id: str) -> None:
    statement = (
        markets_table.update()
        .where(markets_table.c.osm_type == sa.bindparam("key_type"))
        .where(markets_table.c.osm_id == sa.bindparam("key_id"))
        .values(status="closed", closed_in=snapshot_id)
    )
    params = [
        {"key_type": row.osm_type, "key_id": int(row.osm_id)}
        for row in closed.itertuples(index=False)
    ]
    conn.execute(statement, params)


def read_open_markets(engine: Engine) -> pd.DataFrame:
    with engine.connect() as conn:
        query = sa.select(markets_table).where(markets_table.c.status == "open")
        return pd.read_sql(query, conn)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
