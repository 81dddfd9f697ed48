"""Both jobs through the Celery executor on Redis and on RabbitMQ, with PostgreSQL storage."""

from __future__ import annotations

import pytest

from market_platform_tests.distributed import harness
from market_platform_tests.distributed.checks import (
    assert_each_step_ran_once_on_its_queue,
    assert_succeeded,
)

pytestmark = pytest.mark.postgres


@pytest.fixture(params=["redis", "rabbitmq"])
def celery(request):
    return request.getfixturevalue(f"celery_{request.param}")


@pytest.mark.parametrize("spec", [harness.MARKETS, harness.OCCUPANCY], ids=lambda s: s.job)
def test_job_on_celery_runs_each_step_on_its_queue_and_matches_in_process(
    celery, spec, stack, market_db, reference_tables
):
    launched = harness.launch(spec, celery.env, stack.instance, stack.logs, market_db)
    run = launched.wait()

    assert_succeeded(stack.instance, run, launched.log)
    prefix = celery.env["CELERY_QUEUE_PREFIX"]
    placed = assert_each_step_ran_once_on_its_queue(
        stack.instance, run, spec, "celery", prefix
    )
    # Both pools took part: the io worker and the cpu worker are different processes.
    assert {row[0]["queue"] for row in placed.values()} == {f"{prefix}io", f"{prefix}cpu"}
    assert harness.tables(market_db, spec) == reference_tables[spec.job]
