"""dagster-postgres connections: a new one per storage call upstream, a small pool per process
with deploy/dagster.yaml's PooledPostgresStorage (dagster-io/dagster#20325)."""

from __future__ import annotations

import threading
import time

import pytest
import sqlalchemy as sa
from dagster._core.instance.ref import InstanceRef

import dagster as dg
from market_platform_tests.conftest import PG_ADMIN_URL
from market_platform_tests.distributed import harness
from market_platform_tests.distributed.checks import (
    assert_each_step_ran_once_on_its_queue,
    assert_succeeded,
)
from market_platform_tests.distributed.conftest import create_database, drop_database

pytestmark = pytest.mark.postgres

UPSTREAM_STORAGE = "storage:\n  postgres:\n    postgres_url:\n      env: DAGSTER_PG_URL\n"


def _database(url: str) -> str:
    return url.rsplit("/", 1)[1]


def sessions_opened(url: str) -> int:
    time.sleep(1.5)  # PostgreSQL publishes its statistics about once a second
    admin = sa.create_engine(PG_ADMIN_URL)
    try:
        with admin.connect() as conn:
            conn.execute(sa.text("SELECT pg_stat_clear_snapshot()"))
            return conn.execute(
                sa.text("SELECT sessions FROM pg_stat_database WHERE datname = :db"),
                {"db": _database(url)},
            ).scalar_one()
    finally:
        admin.dispose()


def _run_probe_in_process(stack, home, pg_url) -> int:
    """Sessions opened on ``pg_url`` by one in-process run of the six-step probe job."""
    env = stack.with_env(DAGSTER_HOME=home, DAGSTER_PG_URL=pg_url,
                         MARKET_PLATFORM_EXECUTOR="in_process")
    instance = dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home)))
    try:
        before = sessions_opened(pg_url)
        launched = harness.launch(harness.PROBE_CHAIN, env, instance, stack.logs,
                                  run_config={})
        run = launched.wait()
        assert_succeeded(instance, run, launched.log)
        return sessions_opened(pg_url) - before
    finally:
        instance.dispose()


def test_pooled_storage_opens_far_fewer_connections(stack, tmp_path, monkeypatch):
    counts = {}
    for name, storage in (("upstream", UPSTREAM_STORAGE), ("pooled", None)):
        home = tmp_path / name
        home.mkdir()
        yaml = (harness.ROOT / "deploy" / "dagster.yaml").read_text()
        if storage:
            start = yaml.index("storage:")
            end = yaml.index("# Runs wait")
            yaml = yaml[:start] + storage + "\n" + yaml[end:]
        (home / "dagster.yaml").write_text(yaml)
        pg_url = create_database("mp_conn")
        monkeypatch.setenv("DAGSTER_PG_URL", pg_url)
        try:
            counts[name] = _run_probe_in_process(stack, home, pg_url)
        finally:
            drop_database(pg_url)
    print(f"sessions opened by one 6-step run: {counts}")
    assert counts["pooled"] * 5 < counts["upstream"], counts


def test_connections_stay_within_the_budget_on_celery(celery_redis, stack):
    """io worker: 3 processes, cpu worker: 1, orchestrator: 1, this test: 1 -> 6 processes of
    at most pool_size + max_overflow = 3 connections each."""
    budget = 6 * 3
    peak, stop = [0], threading.Event()
    # Autocommit: inside one transaction PostgreSQL would show the same snapshot every time.
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")

    def sample():
        with admin.connect() as conn:
            while not stop.is_set():
                count = conn.execute(
                    sa.text("SELECT count(*) FROM pg_stat_activity WHERE datname = :db"),
                    {"db": _database(stack.pg_url)},
                ).scalar_one()
                peak[0] = max(peak[0], count)
                time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        config = {"ops": {"chain_start": {"config": {"sleep_seconds": 0.5}}}}
        launched = [
            harness.launch(harness.PROBE_CHAIN, celery_redis.env, stack.instance, stack.logs,
                           run_config=config)
            for _ in range(2)
        ]
        runs = [item.wait() for item in launched]
    finally:
        stop.set()
        sampler.join(timeout=10)
        admin.dispose()
    for run, item in zip(runs, launched):
        assert_succeeded(stack.instance, run, item.log)
        # Two runs of one job at once on Celery: each ran every one of its steps exactly once.
        assert_each_step_ran_once_on_its_queue(stack.instance, run, harness.PROBE_CHAIN,
                                               "celery", celery_redis.env["CELERY_QUEUE_PREFIX"])
    print(f"peak connections to the Dagster database: {peak[0]} (budget {budget})")
    assert 0 < peak[0] <= budget


def test_many_processes_meeting_a_new_pool_at_once_all_get_its_default_limit(stack):
    """dagster-io/dagster#33054: upstream, the losers of the race to insert a pool's default
    limit fail in an aborted transaction; here every caller succeeds and the pool has exactly
    the default number of slots."""
    import uuid

    pool = f"race_{uuid.uuid4().hex[:8]}"
    storage = stack.instance.event_log_storage
    start = threading.Barrier(6)
    errors = []

    def initialise():
        start.wait()
        try:
            assert storage.initialize_concurrency_limit_to_default(pool)
        except Exception as error:  # collected: an exception in a thread would be lost
            errors.append(error)

    threads = [threading.Thread(target=initialise) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    info = storage.get_concurrency_info(pool)
    assert (info.slot_count, info.limit) == (1, 1)  # deploy/dagster.yaml: default_limit 1
