"""Assertions shared by the Celery and Dask tests."""

from __future__ import annotations

from functools import cache

from market_platform.defs.work import kind_of
from market_platform_tests.distributed import harness


def step_kinds(spec: harness.JobSpec) -> dict[str, str]:
    """Step key -> declared kind of work, read from the job definition."""
    return _step_kinds(spec.module, spec.attribute, spec.job)


@cache
def _step_kinds(module_name: str, attribute: str, job_name: str) -> dict[str, str]:
    import importlib

    module = importlib.import_module(module_name)
    job = getattr(module, attribute).resolve_job_def(job_name)
    return {node.name: kind_of(node.definition.tags) for node in job.graph.nodes}


def assert_succeeded(instance, run, log) -> None:
    assert run.is_success, f"run {run.run_id} ended {run.status}:\n{harness.tail(log)}"


def assert_each_step_ran_once_on_its_queue(instance, run, spec, backend, prefix="") -> dict:
    """Every step has exactly one placement, on a worker serving the step's kind of work."""
    kinds = step_kinds(spec)
    placed = harness.placed(instance, run.run_id)
    started = harness.step_counts(instance, run.run_id, "STEP_START")
    succeeded = harness.step_counts(instance, run.run_id, "STEP_SUCCESS")
    assert set(started) == set(succeeded) == set(placed) == set(kinds), (started, placed)
    assert set(started.values()) == set(succeeded.values()) == {1}
    for step_key, rows in placed.items():
        assert len(rows) == 1, rows
        row = rows[0]
        kind = kinds[step_key]
        assert row["backend"] == backend
        if backend == "celery":
            assert row["queue"] == f"{prefix}{kind}", row
            assert row["worker"].split("-")[0].split("@")[0] == kind, row  # <kind>-<tag>@host
        else:
            assert row["queue"] == f"{kind}=1.0", row
            assert row["worker"] == f"{kind}-1", row
        assert isinstance(row["pid"], int) and row["pid"] > 0
    return placed
