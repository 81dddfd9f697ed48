"""deploy/dagster.yaml: Dagster's runs, events and schedules in PostgreSQL (dagster-postgres)."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import sqlalchemy as sa
from dagster_postgres.event_log import PostgresEventLogStorage

from market_platform.definitions import build_defs
from market_platform_tests.conftest import MUENCHEN

ROOT = Path(__file__).resolve().parents[1]


def test_markets_job_on_postgres_storage_from_dagster_yaml(
    postgres_url, sqlite_url, tmp_path, monkeypatch, job_env
):
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "deploy" / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("DAGSTER_PG_URL", postgres_url.replace("+psycopg2", ""))

    with dg.DagsterInstance.get() as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        # dagster-postgres's own, with a race-safe pool initialisation (pg_storage.py).
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"

        job = build_defs(market_db_url=sqlite_url, io_dir=str(tmp_path / "io")).resolve_job_def(
            "markets_job"
        )
        result = job.execute_in_process(
            run_config={"ops": {"osm_extract": {"config": {"source": str(MUENCHEN)}}}},
            instance=instance,
        )
        assert result.success
        run_id = result.run_id

    # The run and its materializations are rows in PostgreSQL, readable by any other process.
    engine = sa.create_engine(postgres_url)
    with engine.connect() as conn:
        status = conn.execute(
            sa.text("SELECT status FROM runs WHERE run_id = :r"), {"r": run_id}
        ).scalar_one()
        materialized = conn.execute(sa.text(
            "SELECT count(DISTINCT asset_key) FROM event_logs "
            "WHERE run_id = :r AND dagster_event_type = 'ASSET_MATERIALIZATION'"
        ), {"r": run_id}).scalar_one()
    engine.dispose()
    assert status == "SUCCESS"
    assert materialized == 6
