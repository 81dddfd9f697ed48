"""From source files to flagged hourly observations: read, validate, resample, flag.

Where the files come from (``OCCUPANCY_SOURCES``)
-------------------------------------------------
``OCCUPANCY_SOURCES`` lists files or folders, separated by ``os.pathsep`` (``:`` on Linux).
A folder contributes every observation CSV in it (its ``sensors.csv``, ``facilities.csv`` or
``locations.csv`` is read as metadata, not as observations). When the variable is unset, the
three shared real datasets are used: ``heidenheim``, ``swm_munich`` and ``auckland`` under
``OCCUPANCY_DATA_DIR``, which defaults to ``shared/data/occupancy`` beside the repository
checkout (``/work/shared/data/occupancy`` for ``/work/main``). Set ``OCCUPANCY_SOURCES`` to an
empty string to ingest landing files only.

Files dropped into ``OCCUPANCY_LANDING_DIR`` (see ``market_platform.settings``) are ingested by
the landing sensor, one run per file, in addition to these sources.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from market_platform.errors import InputError
from market_platform.occupancy import adapters, features, quality, resample, schema

DATASETS = ("heidenheim", "swm_munich", "auckland")

STORED_COLUMNS = ["site_id", "hour_utc", "value", "capacity", "n_samples", "flags"]


def default_data_dir() -> Path:
    repository = Path(__file__).resolve().parents[2]
    fallback = repository.parent / "shared" / "data" / "occupancy"
    return Path(os.environ.get("OCCUPANCY_DATA_DIR", fallback)).resolve()


def source_paths() -> list[Path]:
    """The configured observation sources (``OCCUPANCY_SOURCES``, else the shared datasets)."""
    configured = os.environ.get("OCCUPANCY_SOURCES")
    if configured is None:
        return [default_data_dir() / name for name in DATASETS]
    return [Path(p).expanduser().resolve() for p in configured.split(os.pathsep) if p.strip()]


def read_sources(paths: list[Path]) -> list[schema.Observations]:
    """Every observation file under ``paths``, read and validated (the first bad file raises)."""
    files = [f for path in paths for f in adapters.observation_files(path)]
    return [adapters.read_observations(f) for f in files]


def combine(batches: list[schema.Observations]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Readings and sites of several files; a site may not get conflicting readings."""
    if not batches:
        empty = pd.DataFrame({c: pd.Series(dtype=object) for c in schema.OBSERVATION_COLUMNS})
        return empty, schema.empty_sites()
    readings = pd.concat([b.readings.assign(source=b.source) for b in batches], ignore_index=True)
    sites = pd.concat([b.sites.astype(object) for b in batches], ignore_index=True)
    sites = sites.drop_duplicates("site_id", keep="last").reset_index(drop=True)

    if len(batches) > 1:
        dupes = readings.drop_duplicates(["site_id", "ts_utc", "value"])
        clash = dupes.duplicated(["site_id", "ts_utc"], keep=False)
        if clash.any():
            first = dupes[clash].iloc[0]
            raise InputError(
                first["source"],
                f"row {int(first['row'])}, site {first['site_id']}: another file holds a "
                f"different value for {first['ts_utc']:%Y-%m-%dT%H:%M:%SZ}",
            )
        readings = dupes
    return readings.drop(columns="source"), sites


def hourly_observations(readings: pd.DataFrame, sites: pd.DataFrame) -> pd.DataFrame:
    """Hourly values per site with capacity and quality flags (``STORED_COLUMNS``)."""
    kinds = dict(zip(sites["site_id"], sites["kind"]))
    hourly = resample.to_hourly(readings, kinds)
    meta = sites.set_index("site_id")
    parts = []
    for site_id, group in hourly.groupby("site_id", sort=True):
        site = meta.loc[site_id]
        years = range(group["hour_utc"].min().year - 1, group["hour_utc"].max().year + 2)
        holiday_set = features.holiday_dates(site["country"], site["subdivision"], tuple(years))
        flags = quality.flag_hours(
            group["hour_utc"], group["value"], site["timezone"], holiday_set
        )
        parts.append(group.assign(capacity=site["capacity"], flags=flags))
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype=float) for c in STORED_COLUMNS})
    return pd.concat(parts, ignore_index=True)[STORED_COLUMNS]


def load(paths: list[Path]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Hourly flagged observations and site metadata from source files or folders."""
    readings, sites = combine(read_sources(paths))
    return hourly_observations(readings, sites), sites


def local_day_of(hours: pd.Series, timezone: str = schema.BERLIN) -> np.ndarray:
    """The local calendar day of each UTC hour, as ``YYYY-MM-DD`` (the partition key)."""
    return pd.DatetimeIndex(hours).tz_convert(timezone).strftime("%Y-%m-%d").to_numpy()
