"""Shared fixtures: the real data in ../shared/data and fresh market databases."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from market_platform import db

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
OSM = SHARED_DATA / "osm"
REGIONS = SHARED_DATA / "regions"

MUENCHEN = OSM / "muenchen_altstadt_2020-07-20.osm.pbf"
LAUF = OSM / "lauf_an_der_pegnitz_2020-01-15.osm.pbf"
HELGOLAND = OSM / "helgoland_2026-07.osm.pbf"
LIDL = OSM / "lidl_germany_overpass_2024-01-21.json"
KREISE = REGIONS / "vg250_kreise_2018-12-31_sim200.geojson"
POPULATION = REGIONS / "population_kreise_2018-12-31.csv"

PG_ADMIN_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"


@pytest.fixture(scope="session", autouse=True)
def _shared_data_present():
    if not SHARED_DATA.is_dir():
        pytest.exit(f"{SHARED_DATA} is missing: the tests read the real data from ../shared/data")


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'markets.sqlite'}"


def create_database(prefix: str, scheme: str = "postgresql") -> str:
    """A new, empty PostgreSQL database on the local server; its SQLAlchemy URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as error:
        pytest.fail(f"PostgreSQL on 127.0.0.1:5432 is not reachable: {error}")
    finally:
        admin.dispose()
    return f"{scheme}://postgres@127.0.0.1:5432/{name}"


def drop_database(url: str) -> None:
    """Drop a database made by ``create_database``, closing this process's pooled engine."""
    db.get_engine(url).dispose()
    db.get_engine.cache_clear()
    name = url.rsplit("/", 1)[1]
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@pytest.fixture
def postgres_url():
    """A fresh PostgreSQL database, dropped afterwards, also when the test fails."""
    url = create_database("mp_test", scheme="postgresql+psycopg2")
    yield url
    drop_database(url)


@pytest.fixture(params=["sqlite", "postgres"])
def market_db_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'markets.sqlite'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture(scope="session")
def regions_frame():
    from market_platform.regions.loading import build_regions, load_kreise, load_population

    return build_regions(load_kreise(KREISE), load_population(POPULATION), str(POPULATION))


@pytest.fixture
def job_env(monkeypatch, tmp_path):
    """Environment of a markets_job run: real regions, a private data folder, no default."""
    monkeypatch.setenv("REGIONS_FILE", str(KREISE))
    monkeypatch.setenv("POPULATION_FILE", str(POPULATION))
    monkeypatch.setenv("MARKET_PLATFORM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("OSM_EXTRACT", raising=False)
