"""Wall time of markets_job in-process, and how much of it is Dagster's own overhead.

Run by hand: ``.venv/bin/python benchmarks/markets_job.py``. For each shared extract it runs
(a) the plain domain functions one after the other, as the job's steps call them, and
(b) the whole job in-process through Dagster, each on a fresh SQLite database, best of three.
The difference is what Dagster adds: step orchestration, event storage, the IO manager's
pickles, asset checks.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import dagster as dg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from market_platform import db, sources  # noqa: E402
from market_platform.definitions import build_defs  # noqa: E402
from market_platform.markets import store  # noqa: E402
from market_platform.markets.reading import read_markets  # noqa: E402
from market_platform.regions import statistics as stats  # noqa: E402
from market_platform.regions import store as region_store  # noqa: E402
from market_platform.regions.assignment import assign_regions  # noqa: E402
from market_platform.regions.loading import build_regions, load_kreise, load_population  # noqa
from market_platform.regions.maps import markets_choropleth  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
EXTRACTS = [
    SHARED / "osm" / "muenchen_altstadt_2020-07-20.osm.pbf",
    SHARED / "osm" / "lauf_an_der_pegnitz_2020-01-15.osm.pbf",
    SHARED / "osm" / "helgoland_2026-07.osm.pbf",
    SHARED / "osm" / "lidl_germany_overpass_2024-01-21.json",
]
KREISE = SHARED / "regions" / "vg250_kreise_2018-12-31_sim200.geojson"
POPULATION = SHARED / "regions" / "population_kreise_2018-12-31.csv"
REPEATS = 3


def plain(extract: Path, workdir: Path) -> float:
    started = time.perf_counter()
    url = f"sqlite:///{workdir / 'plain.sqlite'}"
    engine = db.get_engine(url)
    local = sources.fetch(str(extract), workdir)
    read = read_markets(local.path)
    snapshot = store.Snapshot(local.sha256, local.source, read.source_format, local.size, None)
    regions = build_regions(load_kreise(KREISE), load_population(POPULATION), "population")
    applied = store.apply_snapshot(engine, snapshot, read.markets)
    open_markets = store.read_open_markets(engine)
    assigned = assign_regions(open_markets, regions)
    region_store.replace_market_regions(engine, applied.snapshot_id, assigned)
    placed = open_markets.merge(assigned, on=["osm_type", "osm_id"])
    kreise = stats.covered_kreise(regions, read.bbox, placed["kreis_ags"])
    table = stats.regional_statistics(placed, regions, kreise)
    region_store.replace_statistics(engine, applied.snapshot_id, table, None)
    markets_choropleth(regions, table[table["level"] == "kreis"], "benchmark")
    return time.perf_counter() - started


def through_dagster(extract: Path, workdir: Path) -> float:
    os.environ["MARKET_PLATFORM_DATA_DIR"] = str(workdir / "data")
    defs = build_defs(market_db_url=f"sqlite:///{workdir / 'job.sqlite'}",
                      io_dir=str(workdir / "io"))
    job = defs.resolve_job_def("markets_job")
    started = time.perf_counter()
    result = job.execute_in_process(
        run_config={"ops": {"osm_extract": {"config": {"source": str(extract)}}}},
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert result.success
    return time.perf_counter() - started


def main() -> None:
    os.environ["REGIONS_FILE"] = str(KREISE)
    os.environ["POPULATION_FILE"] = str(POPULATION)
    print("| extract | plain functions (s) | markets_job in-process (s) | Dagster overhead (s) |")
    print("| --- | ---: | ---: | ---: |")
    for extract in EXTRACTS:
        plain_times, job_times = [], []
        for _ in range(REPEATS):
            with tempfile.TemporaryDirectory() as first, tempfile.TemporaryDirectory() as second:
                plain_times.append(plain(extract, Path(first)))
                job_times.append(through_dagster(extract, Path(second)))
        best_plain, best_job = min(plain_times), min(job_times)
        print(f"| {extract.name} | {best_plain:.2f} | {best_job:.2f} | "
              f"{best_job - best_plain:.2f} ({(best_job - best_plain) / best_job:.0%}) |")


if __name__ == "__main__":
    main()
