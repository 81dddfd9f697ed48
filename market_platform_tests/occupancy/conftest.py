"""Fixtures for the occupancy tests: the real shared series, small cuts of them, a database."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from market_platform.occupancy import features, ingest

HEIDENHEIM_END = pd.Timestamp("2024-01-01", tz="Europe/Berlin").tz_convert("UTC")
MUNICH_END = pd.Timestamp("2026-07-01", tz="Europe/Berlin").tz_convert("UTC")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    folder = ingest.default_data_dir()
    assert (folder / "heidenheim").is_dir(), f"shared occupancy data missing at {folder}"
    return folder


@pytest.fixture(scope="session")
def real_hourly(data_dir):
    """Hourly flagged observations and sites of all three real datasets (read once)."""
    return ingest.load([data_dir / name for name in ingest.DATASETS])


def build_group(hourly: pd.DataFrame, sites: pd.DataFrame, prefix: str, end: pd.Timestamp):
    meta = sites.set_index("site_id")
    group = []
    for site_id, rows in hourly[hourly["site_id"].str.startswith(prefix)].groupby("site_id"):
        site = meta.loc[site_id].to_dict() | {"site_id": site_id}
        group.append(
            features.build_series(site, rows["hour_utc"], rows["value"], rows["flags"], end)
        )
    return group


@pytest.fixture
def small_sources(tmp_path, data_dir) -> Path:
    """Two Heidenheim sensors from September 2023 and three Munich facilities, as files."""
    root = tmp_path / "sources"
    heidenheim = root / "heidenheim"
    heidenheim.mkdir(parents=True)
    shutil.copy(data_dir / "heidenheim" / "sensors.csv", heidenheim)
    for sensor in ("arkaden", "knoepfle_nord"):
        frame = pd.read_csv(data_dir / "heidenheim" / f"{sensor}.csv", dtype=str)
        frame[frame["timestamp_utc"] >= "2023-09-01"].to_csv(
            heidenheim / f"{sensor}.csv", index=False
        )
    munich = root / "swm_munich"
    munich.mkdir()
    shutil.copy(data_dir / "swm_munich" / "facilities.csv", munich)
    frame = pd.read_csv(data_dir / "swm_munich" / "persons_wide.csv", dtype=str)
    frame[["timestamp_utc", "pool_nordbad", "sauna_nordbad", "pool_westbad"]].to_csv(
        munich / "persons_wide.csv", index=False
    )
    return root


@pytest.fixture
def db_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'market.sqlite'}"
