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


def test_two_concurrent_runs_of_the_main_job_each_run_every_step_once(
    celery_redis, stack, market_db, reference_tables
):
    """Both runs write the same market database; the market_db pool lets one write at a time,
    and the second applies an extract already applied, which changes nothing."""
    launched = [
        harness.launch(harness.MARKETS, celery_redis.env, stack.instance, stack.logs, market_db)
        for _ in range(2)
    ]
    runs = [item.wait() for item in launched]

    prefix = celery_redis.env["CELERY_QUEUE_PREFIX"]
    for run, item in zip(runs, launched):
        assert_succeeded(stack.instance, run, item.log)
        assert_each_step_ran_once_on_its_queue(stack.instance, run, harness.MARKETS, "celery",
                                               prefix)
    assert runs[0].run_id != runs[1].run_id
    assert harness.tables(market_db, harness.MARKETS) == reference_tables["markets_job"]
