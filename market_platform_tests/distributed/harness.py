"""Runs through the Dagster CLI as separate processes, and the tables they leave behind."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
from dagster._core.storage.dagster_run import RunsFilter

from market_platform import db
from market_platform.execution.placement import placements
from market_platform_tests.conftest import MUENCHEN

DAGSTER = str(Path(sys.executable).parent / "dagster")
ROOT = Path(__file__).resolve().parents[2]
RUN_TIMEOUT = 300.0
PARTITION = "2023-12-10"

MARKET_TABLES = {
    "markets": ["osm_type", "osm_id"],
    "market_changes": ["snapshot_id", "osm_type", "osm_id"],
    "market_snapshots": ["load_seq"],
    "market_regions": ["osm_type", "osm_id"],
    "regional_statistics": ["snapshot_id", "level", "ags"],
}
OCCUPANCY_TABLES = {
    "occupancy_sites": ["site_id"],
    "occupancy_observations": ["site_id", "hour_utc"],
    "occupancy_backtest_scores": ["site_id", "model", "origin_utc", "forecast_run"],
    "occupancy_forecasts": ["site_id", "hour_utc", "forecast_run"],
}


@dataclass(frozen=True)
class JobSpec:
    module: str
    attribute: str
    job: str
    tables: dict

    def run_config(self, market_db_url: str, extra: dict | None = None) -> dict:
        config = {"resources": {"market_db": {"config": {"url": market_db_url}}}}
        if self.job == "markets_job":
            config["ops"] = {"osm_extract": {"config": {"source": str(MUENCHEN)}}}
        return config | (extra or {})

    @property
    def tags(self) -> dict:
        return {"dagster/partition": PARTITION} if self.job == "occupancy_job" else {}


MARKETS = JobSpec("market_platform.definitions", "defs", "markets_job", MARKET_TABLES)
OCCUPANCY = JobSpec("market_platform.definitions", "defs", "occupancy_job", OCCUPANCY_TABLES)
PROBE_CHAIN = JobSpec("market_platform.execution.probe", "probe_defs", "probe_chain_job", {})
PROBE_FAULTS = JobSpec("market_platform.execution.probe", "probe_defs", "probe_faults_job", {})


@dataclass
class LaunchedRun:
    """A ``dagster job execute`` process; ``wait`` returns the run as stored in PostgreSQL."""

    process: subprocess.Popen
    marker: str
    log: Path
    instance: dg.DagsterInstance

    def run(self):
        runs = self.instance.get_runs(RunsFilter(tags={"test/marker": self.marker}), limit=1)
        return runs[0] if runs else None

    def wait(self, timeout: float = RUN_TIMEOUT):
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            self._abandon()
            raise AssertionError(f"run did not end within {timeout:.0f} s:\n{tail(self.log)}")
        run = self.run()
        assert run is not None, f"no run was stored:\n{tail(self.log)}"
        return run


    def _abandon(self) -> None:
        # A killed orchestrator never frees its pool slots, and the next test's run would wait
        # for them forever; the daemon's run monitoring does this in a deployment.
        run = self.run()
        if run is not None:
            if not run.is_finished:
                self.instance.report_run_failed(run)
            self.instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)


def tail(path: Path, lines: int = 60) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def launch(spec: JobSpec, env: dict, instance, log_dir: Path, market_db_url: str = "",
           run_config: dict | None = None, tags: dict | None = None) -> LaunchedRun:
    marker = uuid.uuid4().hex[:12]
    config = run_config if run_config is not None else spec.run_config(market_db_url)
    config_file = log_dir / f"run-{marker}.json"
    config_file.write_text(json.dumps(config))
    log = log_dir / f"run-{spec.job}-{marker}.log"
    all_tags = {"test/marker": marker, **spec.tags, **(tags or {})}
    with log.open("wb") as handle:
        process = subprocess.Popen(
            [DAGSTER, "job", "execute", "-m", spec.module, "-a", spec.attribute, "-j", spec.job,
             "-c", str(config_file), "--tags", json.dumps(all_tags)],
            env=env, stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            cwd=str(log_dir), start_new_session=True,
        )
    return LaunchedRun(process, marker, log, instance)


def run_job(spec: JobSpec, env: dict, instance, log_dir: Path, market_db_url: str = "",
            **kwargs):
    return launch(spec, env, instance, log_dir, market_db_url, **kwargs).wait()


def tables(url: str, spec: JobSpec) -> dict[str, list[dict]]:
    engine = db.get_engine(url)
    return {name: db.read_table(engine, name, order) for name, order in spec.tables.items()}


def events(instance, run_id: str) -> list[tuple[str | None, str]]:
    """(step key, event type) of every Dagster event of a run, in order."""
    found = []
    for entry in instance.all_logs(run_id):
        if entry.dagster_event:
            found.append((entry.dagster_event.step_key, entry.dagster_event.event_type_value))
    return found


def step_counts(instance, run_id: str, event_type: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for step_key, kind in events(instance, run_id):
        if kind == event_type and step_key:
            counts[step_key] = counts.get(step_key, 0) + 1
    return counts


def wait_for(condition, what: str, timeout: float = 120.0, every: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def placed(instance, run_id: str) -> dict[str, list[dict]]:
    by_step: dict[str, list[dict]] = {}
    for row in placements(instance, run_id):
        by_step.setdefault(row["step_key"], []).append(row)
    return by_step


def tables_present(url: str) -> list[str]:
    import sqlalchemy as sa

    return sorted(sa.inspect(db.get_engine(url)).get_table_names())


def errors(instance, run_id: str) -> list[str]:
    """The error texts (with causes) attached to a run's events."""
    found = []
    for entry in instance.all_logs(run_id):
        data = entry.dagster_event.event_specific_data if entry.dagster_event else None
        error = getattr(data, "error", None)
        if error is not None:
            found.append(error.to_string())
    return found
