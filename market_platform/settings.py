"""Configuration from environment variables, with the defaults documented in the README.

Kept free of Dagster so that plain functions, benchmarks and tests read the same values.
"""

import os
from pathlib import Path

# A small real German region: Bremen, from Geofabrik's daily extracts.
DEFAULT_OSM_EXTRACT = "https://download.geofabrik.de/europe/germany/bremen-latest.osm.pbf"

# BKG VG250 Kreise (31.12.2018, simplified 200 m) and the Destatis population summed per Kreis,
# both as published by OpenDataLab (dl-de/by-2-0), pinned to one commit.
_OPENDATALAB = (
    "https://raw.githubusercontent.com/opendatalab-de/simple-geodata-selector/"
    "309fa25bc9d26d8e560b1ee81de0084a52f7a9e0/src/data"
)
DEFAULT_REGIONS_FILE = f"{_OPENDATALAB}/landkreise_sim200.geojson"
DEFAULT_POPULATION_FILE = f"{_OPENDATALAB}/destatis.json"


def dagster_home() -> Path:
    return Path(os.environ.get("DAGSTER_HOME", Path.cwd() / ".dagster_home")).resolve()


def data_dir() -> Path:
    """Where the market database (SQLite default) and the download cache live."""
    return Path(os.environ.get("MARKET_PLATFORM_DATA_DIR", dagster_home() / "data")).resolve()


def cache_dir() -> Path:
    return Path(os.environ.get("MARKET_PLATFORM_CACHE_DIR", data_dir() / "cache")).resolve()


def market_db_url() -> str:
    default = f"sqlite:///{data_dir() / 'markets.sqlite'}"
    return os.environ.get("MARKET_DB_URL", default)


def osm_extract() -> str:
    return os.environ.get("OSM_EXTRACT", DEFAULT_OSM_EXTRACT)


def regions_file() -> str:
    return os.environ.get("REGIONS_FILE", DEFAULT_REGIONS_FILE)


def population_file() -> str:
    return os.environ.get("POPULATION_FILE", DEFAULT_POPULATION_FILE)


def osm_landing_dir() -> Path:
    return Path(os.environ.get("OSM_LANDING_DIR", data_dir() / "landing" / "osm")).resolve()


def occupancy_landing_dir() -> Path:
    default = data_dir() / "landing" / "occupancy"
    return Path(os.environ.get("OCCUPANCY_LANDING_DIR", default)).resolve()


def io_storage_dir() -> Path:
    """Intermediates between steps; a folder every worker can read in a distributed setup."""
    return Path(os.environ.get("MARKET_PLATFORM_IO_DIR", dagster_home() / "io")).resolve()


def max_closed_share() -> float:
    """Largest share of open markets one extract may close before it is refused as suspect."""
    return float(os.environ.get("MARKET_PLATFORM_MAX_CLOSED_SHARE", "0.5"))
