"""Occupancy throughput and accuracy: fit + backtest + choice + 7-day forecast per series.

The real series (6 Heidenheim sensors, 17 Munich facilities, 21 Auckland sensors) are tiled
with shifted ids (``<site>~<tile>``) to a few hundred series. Work is cut into groups of
``--tiles-per-group`` tiles of one dataset; a group is the unit of work, because its global
gradient boosting model is fitted once for all of its series.

It prints two markdown tables: accuracy per dataset and candidate on the untiled series (with
the choice per site scored held-out and in-sample, and a line per site that could not be
scored), and throughput in one process and on a ``distributed`` LocalCluster with 1 and 2
worker processes of one thread each (cluster start-up and imports excluded, data shipped with
the tasks included). Throughput is given in wall-clock and in CPU seconds of the working
processes: the latter holds when other work shares the machine.

    .venv/bin/python benchmarks/occupancy_bench.py --tiles 8 --tiles-per-group 4
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
import warnings

import pandas as pd

from market_platform.occupancy import backtest, features, forecast, ingest

ENDS = {
    "heidenheim": pd.Timestamp("2024-01-01", tz="Europe/Berlin").tz_convert("UTC"),
    "swm_munich": pd.Timestamp("2026-07-01", tz="Europe/Berlin").tz_convert("UTC"),
    "auckland": pd.Timestamp("2026-01-01", tz="Pacific/Auckland").tz_convert("UTC"),
}


def load_groups() -> dict[str, list[features.SiteSeries]]:
    hourly, sites = ingest.load([ingest.default_data_dir() / name for name in ingest.DATASETS])
    meta = sites.set_index("site_id")
    groups: dict[str, list[features.SiteSeries]] = {name: [] for name in ENDS}
    for site_id, rows in hourly.groupby("site_id", sort=True):
        site = meta.loc[site_id].to_dict() | {"site_id": site_id}
        end = ENDS[site["dataset"]]
        groups[site["dataset"]].append(
            features.build_series(site, rows["hour_utc"], rows["value"], rows["flags"], end)
        )
    return groups


def tiled_work(groups, tiles: int, tiles_per_group: int) -> list[tuple]:
    """(end, series) work units: each a dataset's series repeated over a few tiles."""
    work = []
    for dataset, members in groups.items():
        for first in range(0, tiles, tiles_per_group):
            unit = [
                dataclasses.replace(s, site_id=f"{s.site_id}~{tile}")
                for tile in range(first, min(first + tiles_per_group, tiles))
                for s in members
            ]
            work.append((ENDS[dataset], unit))
    # Largest first, so that two workers finish close together.
    return sorted(work, key=lambda item: -len(item[1]))


def run_unit(item) -> tuple[int, float]:
    """Series forecast and CPU seconds spent by this process on one work unit."""
    end, series = item
    started = time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = forecast.run_group(series, end)
    return int(result.forecasts["site_id"].nunique()), time.process_time() - started


def accuracy_table(groups) -> str:
    """Mean over the scored sites of each candidate's MAE relative to the reference."""
    lines = []
    for dataset, members in groups.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = backtest.run(members, ENDS[dataset])
        relative = backtest.relative_by_model(result.scores)
        scored = result.choice[result.choice["scored"]]
        relative = relative[relative.index.get_level_values("site_id").isin(scored["site_id"])]
        row = {"dataset": dataset, "sites scored": f"{len(scored)} of {len(members)}"}
        row |= {c: f"{relative[c].mean():.3f}" for c in backtest.CANDIDATES}
        row["choice (held-out)"] = f"{scored['choice_holdout_rel'].mean():.3f}"
        row["choice (in-sample)"] = f"{scored['choice_rel'].mean():.3f}"
        lines.append(row)
        for note in result.notes.values():
            print(f"- {note}")
    return pd.DataFrame(lines).to_markdown(index=False)


def single_process(work) -> dict:
    started = time.perf_counter()
    done = [run_unit(item) for item in work]
    seconds = time.perf_counter() - started
    return _row("single process", done, seconds)


def _row(mode: str, done: list[tuple[int, float]], seconds: float) -> dict:
    return {
        "mode": mode,
        "series": sum(n for n, _ in done),
        "seconds": seconds,
        "cpu seconds": sum(cpu for _, cpu in done),
    }


def on_dask(work, n_workers: int) -> dict:
    from distributed import Client, LocalCluster

    with LocalCluster(
        n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster, Client(cluster) as client:
        client.run(_warm_up)
        started = time.perf_counter()
        futures = client.map(run_unit, work, pure=False)
        done = client.gather(futures)
        seconds = time.perf_counter() - started
    return _row(f"dask, {n_workers} worker(s)", done, seconds)


def _warm_up() -> None:
    import market_platform.occupancy.forecast  # noqa: F401 - imports paid before the clock


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiles", type=int, default=8)
    parser.add_argument("--tiles-per-group", type=int, default=4)
    parser.add_argument("--skip-accuracy", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true")
    args = parser.parse_args()

    groups = load_groups()
    hours = [s.n_observed for members in groups.values() for s in members]
    print(f"cores: {os.cpu_count()}; real series: {len(hours)}; "
          f"median history: {int(pd.Series(hours).median())} hours\n")
    if not args.skip_accuracy:
        print("## Accuracy: mean MAE relative to the one-week-earlier baseline\n")
        print(accuracy_table(groups), "\n")

    if args.skip_throughput:
        return
    work = tiled_work(groups, args.tiles, args.tiles_per_group)
    rows = [single_process(work), on_dask(work, 1), on_dask(work, 2)]
    table = pd.DataFrame(rows)
    table["series/s"] = table["series"] / table["seconds"]
    table["s/series"] = table["seconds"] / table["series"]
    # CPU time per series does not grow when other work shares the cores; wall time does.
    table["cpu s/series"] = table["cpu seconds"] / table["series"]
    table["speed-up vs 1 worker"] = table["seconds"].iloc[1] / table["seconds"]
    print(f"## Throughput: {len(work)} work units, {table['series'].iloc[0]} series\n")
    print(table.round(3).to_markdown(index=False))


if __name__ == "__main__":
    main()
