"""The Dask executor on a real scheduler with two worker processes, and its fixed defects."""

from __future__ import annotations

import os
import signal

import pytest
import sqlalchemy as sa

from market_platform.occupancy import store
from market_platform_tests.distributed import harness
from market_platform_tests.distributed.checks import (
    assert_each_step_ran_once_on_its_queue,
    assert_succeeded,
)
from market_platform_tests.distributed.locks import blocked_on_lock, holding_lock

pytestmark = pytest.mark.postgres


def test_forecast_job_spreads_over_both_workers_and_matches_in_process(
    dask_cluster, stack, market_db, reference_tables
):
    launched = harness.launch(harness.OCCUPANCY, dask_cluster.env, stack.instance, stack.logs,
                              market_db)
    run = launched.wait()

    assert_succeeded(stack.instance, run, launched.log)
    placed = assert_each_step_ran_once_on_its_queue(stack.instance, run, harness.OCCUPANCY,
                                                    "dask")
    assert {rows[0]["worker"] for rows in placed.values()} == {"io-1", "cpu-1"}
    assert len({rows[0]["pid"] for rows in placed.values()}) == 2
    assert harness.tables(market_db, harness.OCCUPANCY) == reference_tables["occupancy_job"]


def test_two_concurrent_runs_of_one_job_each_run_every_step_once(dask_cluster, stack):
    # dagster-io/dagster#21418: upstream, the second run would report success without running.
    config = {"ops": {"chain_start": {"config": {"sleep_seconds": 1.0}}}}
    launched = [
        harness.launch(harness.PROBE_CHAIN, dask_cluster.env, stack.instance, stack.logs,
                       run_config=config)
        for _ in range(2)
    ]
    runs = [item.wait() for item in launched]

    for run, item in zip(runs, launched):
        assert_succeeded(stack.instance, run, item.log)
        assert_each_step_ran_once_on_its_queue(stack.instance, run, harness.PROBE_CHAIN, "dask")
    assert runs[0].run_id != runs[1].run_id


def _step_outputs(instance, run_id) -> dict[str, dict]:
    found = {}
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event and event.event_type_value == "STEP_OUTPUT":
            metadata = event.event_specific_data.metadata
            found[event.step_key] = {k: v.value for k, v in metadata.items()}
    return found


def test_failed_upstream_skips_downstream_retries_and_pools_hold(dask_cluster, stack):
    config = {"ops": {f"pooled_{i}": {"config": {"sleep_seconds": 1.0}} for i in range(3)}}
    launched = harness.launch(harness.PROBE_FAULTS, dask_cluster.env, stack.instance,
                              stack.logs, run_config=config)
    run = launched.wait()

    assert run.is_failure
    started = harness.step_counts(stack.instance, run.run_id, "STEP_START")
    # The downstream of the failed step never starts (upstream Dask starts it and fails it).
    assert "after_broken" not in started
    assert harness.step_counts(stack.instance, run.run_id, "STEP_FAILURE") == {"broken": 1}
    # RetryPolicy(max_retries=2) holds: flaky failed once, was retried and succeeded.
    assert harness.step_counts(stack.instance, run.run_id, "STEP_UP_FOR_RETRY") == {"flaky": 1}
    assert started["flaky"] == 1
    assert harness.step_counts(stack.instance, run.run_id, "STEP_RESTARTED") == {"flaky": 1}
    assert len(harness.placed(stack.instance, run.run_id)["flaky"]) == 2
    assert harness.step_counts(stack.instance, run.run_id, "STEP_SUCCESS")["flaky"] == 1
    # The pool probe_pool (limit 1 from deploy/dagster.yaml) lets one step run at a time.
    outputs = _step_outputs(stack.instance, run.run_id)
    spans = sorted((outputs[f"pooled_{i}"]["started"], outputs[f"pooled_{i}"]["ended"])
                   for i in range(3))
    for (_, ended), (next_started, _) in zip(spans, spans[1:]):
        assert next_started >= ended


def test_killed_worker_step_runs_again_and_tables_are_whole(
    dask_cluster, stack, market_db, reference_tables
):
    store.create_tables(sa.create_engine(market_db))
    with holding_lock(market_db, "occupancy_forecasts") as release:
        launched = harness.launch(harness.OCCUPANCY, dask_cluster.env, stack.instance,
                                  stack.logs, market_db)
        # The forecast step is now inside its write transaction, waiting for our lock.
        waiting = harness.wait_for(lambda: blocked_on_lock(market_db),
                                   "the forecast step to block", timeout=180)
        run = launched.run()
        victim = harness.placed(stack.instance, run.run_id)["occupancy_forecasts"][0]
        os.kill(victim["pid"], signal.SIGKILL)
        release(waiting)

    run = launched.wait()
    # Retried success: the nanny restarts the worker process and the scheduler hands the task
    # to it again; the killed attempt's transaction was rolled back.
    assert_succeeded(stack.instance, run, launched.log)
    attempts = harness.placed(stack.instance, run.run_id)["occupancy_forecasts"]
    assert len(attempts) == 2 and attempts[0]["pid"] != attempts[1]["pid"]
    assert harness.tables(market_db, harness.OCCUPANCY) == reference_tables["occupancy_job"]
