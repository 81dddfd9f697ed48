"""Wall time of the forecast job and the main job on each executor, and each executor's cost
per step, on this machine's real services (PostgreSQL, Redis).

    .venv/bin/python benchmarks/executors.py [--repeat 1]

Starts its own Celery workers, Dask scheduler and workers (as the tests do), on a fresh
PostgreSQL database for Dagster's storage and another for the market tables, and stops them
at the end. Times are the runs' own start-to-end times in Dagster's storage (the CLI's
start-up is not counted); per-step overhead is a six-step chain of trivial steps divided by six.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import uuid
from contextlib import ExitStack
from pathlib import Path

import dagster as dg
from dagster._core.instance.ref import InstanceRef

from market_platform_tests.distributed import harness, services
from market_platform_tests.distributed.conftest import (
    _small_occupancy_sources,
    create_database,
    drop_database,
)
from market_platform_tests.conftest import KREISE, MUENCHEN, POPULATION

ROOT = Path(__file__).resolve().parents[1]
# Not 14/15 (benchmarks/outreach_bench.py) nor 12/13 (the tests): kombu keeps one list of
# unacknowledged messages per database.
BROKER = "redis://127.0.0.1:6379/11"
JOBS = {"forecast job": harness.OCCUPANCY, "main job": harness.MARKETS,
        "6 trivial steps": harness.PROBE_CHAIN}


def base_env(base: Path, pg_url: str) -> dict:
    sources = _small_occupancy_sources(base / "sources")
    env = {
        **os.environ,
        "DAGSTER_HOME": str(base / "home"),
        "DAGSTER_PG_URL": pg_url,
        "MARKET_PLATFORM_IO_DIR": str(base / "io"),
        "MARKET_PLATFORM_DATA_DIR": str(base / "data"),
        "REGIONS_FILE": str(KREISE),
        "POPULATION_FILE": str(POPULATION),
        "OSM_EXTRACT": str(MUENCHEN),
        "OCCUPANCY_SOURCES": os.pathsep.join(
            [str(sources / "heidenheim"), str(sources / "swm_munich")]),
    }
    return {k: v for k, v in env.items() if not k.startswith(("MARKET_PLATFORM_EXECUTOR",
                                                              "CELERY_", "DASK_"))}


def start_celery(env: dict, logs: Path, cpu_slots: int, stack: ExitStack) -> dict:
    prefix = f"b{uuid.uuid4().hex[:6]}-"
    env = {**env, "MARKET_PLATFORM_EXECUTOR": "celery", "CELERY_BROKER_URL": BROKER,
           "CELERY_QUEUE_PREFIX": prefix}
    for kind, slots in (("io", 4), ("cpu", cpu_slots)):
        worker = services.start_celery_worker(kind, env, logs, slots, prefix.rstrip("-"))
        stack.callback(worker.stop)
    return env


def start_dask(env: dict, logs: Path, workers: int, stack: ExitStack) -> dict:
    port = services.free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**env, "MARKET_PLATFORM_EXECUTOR": "dask", "DASK_SCHEDULER_ADDRESS": address}
    scheduler = services.start_dask_scheduler(port, env, logs)
    stack.callback(scheduler.stop)
    for index in range(workers):
        worker = services.start_dask_worker(address, f"all-{index}", "io=1,cpu=1", env, logs)
        stack.callback(worker.stop)
    return env


def timed_runs(spec, env, instance, logs, repeat: int) -> float:
    seconds = []
    for _ in range(repeat):
        market_db = create_database("mp_bench")
        try:
            config = spec.run_config(market_db) if spec.tables else {}
            run = harness.run_job(spec, env, instance, logs, market_db, run_config=config)
            assert run.is_success, f"{spec.job} failed on {env.get('MARKET_PLATFORM_EXECUTOR')}"
            record = instance.get_run_record_by_id(run.run_id)
            seconds.append(record.end_time - record.start_time)
        finally:
            drop_database(market_db)
    return statistics.median(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()

    base = Path(tempfile.mkdtemp(prefix="mp_bench_"))
    logs = base / "logs"
    logs.mkdir()
    (base / "home").mkdir()
    shutil.copy(ROOT / "deploy" / "dagster.yaml", base / "home" / "dagster.yaml")
    pg_url = create_database("mp_bench_dagster")
    os.environ["DAGSTER_PG_URL"] = pg_url
    env = base_env(base, pg_url)
    instance = dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(base / "home")))
    backends = [
        ("default (multiprocess)", lambda s: {**env, "MARKET_PLATFORM_EXECUTOR": "multiprocess"}),
        ("in_process", lambda s: {**env, "MARKET_PLATFORM_EXECUTOR": "in_process"}),
        ("celery, 1 cpu worker", lambda s: start_celery(env, logs, 1, s)),
        ("celery, 2 cpu workers", lambda s: start_celery(env, logs, 2, s)),
        ("dask, 1 worker", lambda s: start_dask(env, logs, 1, s)),
        ("dask, 2 workers", lambda s: start_dask(env, logs, 2, s)),
    ]
    rows = []
    try:
        for name, start in backends:
            with ExitStack() as stack:
                backend_env = start(stack)
                times = {label: timed_runs(spec, backend_env, instance, logs, args.repeat)
                         for label, spec in JOBS.items()}
            rows.append((name, times))
            print(f"{name}: " + ", ".join(f"{k} {v:.1f} s" for k, v in times.items()),
                  flush=True)
    finally:
        instance.dispose()
        drop_database(pg_url)
        shutil.rmtree(base, ignore_errors=True)

    print()
    print("| executor | forecast job (s) | main job (s) | per-step overhead (s) |")
    print("|---|---|---|---|")
    for name, times in rows:
        print(f"| {name} | {times['forecast job']:.1f} | {times['main job']:.1f} | "
              f"{times['6 trivial steps'] / 6:.2f} |")


if __name__ == "__main__":
    main()
