"""Addresses for markets whose OSM data lacks street or house number, by reverse geocoding.

State lives in the market database: ``geocoded_addresses`` keeps every answer (also "nothing
found") keyed by the coordinates rounded to 5 decimals (about 1 m), and the ``markets`` table
gets the answer in its ``geocoded_*`` columns. After a new extract only markets at coordinates
never asked before cost a request: a market that did not move finds its answer in the table.
An address mapped in OSM is never replaced: such markets get ``address_source = 'osm'`` and no
geocoded fields.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from market_platform import db
from market_platform.markets import store as market_store
from market_platform.markets.store import GEOCODED_FIELDS, markets_table
from market_platform.outside.geocoder import Address

logger = logging.getLogger(__name__)

#: Decimal places of the coordinate key: 1e-5 degrees is about 1.1 m of latitude.
DECIMALS = 5
OSM = "osm"
GEOCODED = "geocoded"
NOT_FOUND = "not_found"

metadata = sa.MetaData()

geocoded_table = sa.Table(
    "geocoded_addresses",
    metadata,
    sa.Column("lat_e5", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("lon_e5", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("found", sa.Boolean, nullable=False),
    sa.Column("street", sa.Text),
    sa.Column("housenumber", sa.Text),
    sa.Column("postcode", sa.Text),
    sa.Column("city", sa.Text),
    sa.Column("geocoder", sa.Text, nullable=False),
)


@dataclass(frozen=True)
class Point:
    """A rounded coordinate: the key of one geocoding answer."""

    lat_e5: int
    lon_e5: int

    @classmethod
    def of(cls, lat: float, lon: float) -> Point:
        scale = 10**DECIMALS
        return cls(int(round(lat * scale)), int(round(lon * scale)))

    @property
    def lat(self) -> float:
        return self.lat_e5 / 10**DECIMALS

    @property
    def lon(self) -> float:
        return self.lon_e5 / 10**DECIMALS


@dataclass(frozen=True)
class GeocodeReport:
    markets: int
    with_osm_address: int
    needing_address: int
    points: int
    cache_hits: int
    #: Points asked this time; retries after a refusal are not counted here.
    asked: int
    geocoded: int
    not_found: int


def create_tables(engine: Engine) -> None:
    with engine.begin() as conn:
        market_store.create_tables(conn)
        metadata.create_all(conn)


def needing_address(markets: pd.DataFrame) -> pd.Series:
    """Which markets lack street or house number in OSM."""
    return markets["street"].isna() | markets["housenumber"].isna()


def pending_points(engine: Engine) -> tuple[pd.DataFrame, list[Point], set[Point]]:
    """Open markets, the points of those needing an address, and the points already known."""
    create_tables(engine)
    with engine.connect() as conn:
        markets = pd.read_sql(
            sa.select(markets_table.c.osm_type, markets_table.c.osm_id, markets_table.c.lon,
                      markets_table.c.lat, markets_table.c.street, markets_table.c.housenumber)
            .where(markets_table.c.status == "open"),
            conn,
        )
        known = {
            Point(row.lat_e5, row.lon_e5)
            for row in conn.execute(sa.select(geocoded_table.c.lat_e5, geocoded_table.c.lon_e5))
        }
    need = markets[needing_address(markets)]
    points = sorted({Point.of(lat, lon) for lat, lon in zip(need["lat"], need["lon"])},
                    key=lambda p: (p.lat_e5, p.lon_e5))
    return markets, points, known


def fetch_missing(
    engine: Engine,
    points: Iterable[Point],
    reverse: Callable[[float, float], Address],
    geocoder: str,
    log: Callable[[str], None] = logger.info,
) -> tuple[int, int]:
    """Ask ``reverse`` for every point and store each answer at once, so that a run cut short
    keeps what it learnt and never asks for it again. Returns (found, not found)."""
    found = not_found = 0
    points = list(points)
    for number, point in enumerate(points, start=1):
        address = reverse(point.lat, point.lon)
        with engine.begin() as conn:
            _store_answer(conn, point, address, geocoder)
        found += address.found
        not_found += not address.found
        if number % 100 == 0:
            log(f"geocoded {number}/{len(points)} points ({found} found)")
    return found, not_found


def _store_answer(conn: Connection, point: Point, address: Address, geocoder: str) -> None:
    db.upsert(conn, geocoded_table, [{
        "lat_e5": point.lat_e5,
        "lon_e5": point.lon_e5,
        "found": address.found,
        "street": address.street,
        "housenumber": address.housenumber,
        "postcode": address.postcode,
        "city": address.city,
        "geocoder": geocoder,
    }], ["lat_e5", "lon_e5"])


def apply_addresses(engine: Engine, markets: pd.DataFrame) -> tuple[int, int]:
    """Write the known answers into the ``geocoded_*`` columns of ``markets``, in one
    transaction; markets with an OSM address get none. Returns (geocoded, not found)."""
    with engine.begin() as conn:
        known = pd.read_sql(sa.select(geocoded_table), conn)
        answers = {(r.lat_e5, r.lon_e5): r for r in known.itertuples(index=False)}
        rows = [_market_update(row, answers) for row in markets.itertuples(index=False)]
        if rows:
            conn.execute(
                markets_table.update()
                .where(markets_table.c.osm_type == sa.bindparam("key_type"))
                .where(markets_table.c.osm_id == sa.bindparam("key_id"))
                .values({name: sa.bindparam(name) for name in [*GEOCODED_FIELDS,
                                                              "address_source"]}),
                rows,
            )
    sources = pd.Series([row["address_source"] for row in rows], dtype=object)
    return int((sources == GEOCODED).sum()), int((sources == NOT_FOUND).sum())


def _market_update(market, answers: dict) -> dict:
    row = {"key_type": market.osm_type, "key_id": int(market.osm_id)}
    empty = dict.fromkeys(GEOCODED_FIELDS)
    if pd.notna(market.street) and pd.notna(market.housenumber):
        return {**row, **empty, "address_source": OSM}
    point = Point.of(market.lat, market.lon)
    answer = answers.get((point.lat_e5, point.lon_e5))
    if answer is None:
        return {**row, **empty, "address_source": None}
    if not answer.found:
        return {**row, **empty, "address_source": NOT_FOUND}
    return {
        **row,
        "geocoded_street": _text(answer.street),
        "geocoded_housenumber": _text(answer.housenumber),
        "geocoded_postcode": _text(answer.postcode),
        "geocoded_city": _text(answer.city),
        "address_source": GEOCODED,
    }


def _text(value) -> str | None:
    return None if value is None or pd.isna(value) else str(value)


def geocode_markets(
    engine: Engine,
    reverse: Callable[[float, float], Address],
    geocoder: str,
    log: Callable[[str], None] = logger.info,
) -> GeocodeReport:
    """Geocode the open markets that need it, asking only for points never asked before."""
    markets, points, known = pending_points(engine)
    missing = [point for point in points if point not in known]
    log(
        f"{len(markets)} open markets, {int(needing_address(markets).sum())} without street "
        f"or house number at {len(points)} points; {len(points) - len(missing)} known, "
        f"{len(missing)} to ask {geocoder}"
    )
    fetch_missing(engine, missing, reverse, geocoder, log)
    geocoded, not_found = apply_addresses(engine, markets)
    return GeocodeReport(
        markets=len(markets),
        with_osm_address=int((~needing_address(markets)).sum()),
        needing_address=int(needing_address(markets).sum()),
        points=len(points),
        cache_hits=len(points) - len(missing),
        asked=len(missing),
        geocoded=geocoded,
        not_found=not_found,
    )
