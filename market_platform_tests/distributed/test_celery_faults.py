"""Celery faults: a worker killed in the middle of a step, a broker down, priority order."""

from __future__ import annotations

import socket

import pytest

from market_platform.execution import celery_app
from market_platform.execution.config import CelerySettings
from market_platform_tests.distributed import harness, services
from market_platform_tests.distributed.checks import (
    assert_each_step_ran_once_on_its_queue,
    assert_succeeded,
)
from market_platform_tests.distributed.conftest import (
    forget_redis_bindings,
    RABBITMQ_URL,
    REDIS_SHORT_VISIBILITY_URL,
    REDIS_URL,
    start_celery,
)
from market_platform_tests.distributed.locks import blocked_on_lock, holding_lock

pytestmark = pytest.mark.postgres


#: Redis hands a vanished worker's step out again after this many seconds (kombu's
#: visibility timeout); short here so the test waits little, longer than any step of the job.
REDIS_VISIBILITY_TIMEOUT = 15


@pytest.mark.parametrize("broker", ["rabbitmq", "redis"])
def test_killed_worker_step_is_delivered_again_and_tables_are_whole(
    broker, stack, market_db, reference_tables
):
    """A step is acknowledged only when done; its worker dying puts it back on the queue:
    at once on RabbitMQ (the connection drops), after the visibility timeout on Redis."""
    if broker == "rabbitmq":
        cluster, cleanup = start_celery(stack, RABBITMQ_URL)
    else:
        cluster, cleanup = start_celery(stack, REDIS_SHORT_VISIBILITY_URL,
                                        CELERY_VISIBILITY_TIMEOUT=REDIS_VISIBILITY_TIMEOUT)
    with cleanup:
        first = harness.launch(harness.MARKETS, cluster.env, stack.instance, stack.logs,
                               market_db)
        assert_succeeded(stack.instance, first.wait(), first.log)

        with holding_lock(market_db, "markets") as release:
            again = harness.launch(harness.MARKETS, cluster.env, stack.instance, stack.logs,
                                   market_db)
            waiting = harness.wait_for(lambda: blocked_on_lock(market_db),
                                       "the markets step to block", timeout=180)
            # The whole io worker dies, as when its host goes down, mid-transaction.
            cluster.services["io"].kill()
            release(waiting)
            replacement = services.start_celery_worker(
                "io", cluster.env, stack.logs, concurrency=3,
                tag=cluster.env["CELERY_QUEUE_PREFIX"].rstrip("-") + "r",
            )
            cleanup.callback(replacement.stop)
            run = again.wait()

    # Retried success: the step was acknowledged late, so the broker handed it to the new
    # worker; the killed attempt's transaction was rolled back by PostgreSQL.
    assert_succeeded(stack.instance, run, again.log)
    attempts = harness.placed(stack.instance, run.run_id)["markets"]
    assert len(attempts) == 2
    assert attempts[0]["worker"] != attempts[1]["worker"]
    assert attempts[1]["worker"] == replacement_name(cluster)
    delay = attempts[1]["at"] - attempts[0]["at"]
    print(f"{broker}: the killed step started again after {delay:.1f} s")
    if broker == "redis":
        # Redis knows nothing of the dead connection; kombu restores the step once it has
        # been unacknowledged for the visibility timeout.
        assert delay >= REDIS_VISIBILITY_TIMEOUT - 1
    else:
        assert delay < REDIS_VISIBILITY_TIMEOUT
    assert harness.tables(market_db, harness.MARKETS) == reference_tables["markets_job"]


def replacement_name(cluster) -> str:
    return f"io-{cluster.env['CELERY_QUEUE_PREFIX'].rstrip('-')}r@{socket.gethostname()}"


def test_stopped_broker_fails_the_run_before_any_step_and_a_rerun_succeeds(
    stack, market_db, reference_tables
):
    port = services.free_port()
    broker = services.start_redis(port, stack.logs)
    try:
        cluster, cleanup = start_celery(stack, f"redis://127.0.0.1:{port}/0")
        with cleanup:
            broker.stop()
            failed = harness.launch(harness.MARKETS, cluster.env, stack.instance, stack.logs,
                                    market_db)
            run = failed.wait()

            # A clear failure: nothing was sent, nothing ran, nothing was written.
            assert run.is_failure
            assert harness.step_counts(stack.instance, run.run_id, "STEP_START") == {}
            errors = harness.errors(stack.instance, run.run_id)
            assert any(f"redis://127.0.0.1:{port}/0 is unreachable" in e for e in errors)
            assert harness.tables_present(market_db) == []

            broker = services.start_redis(port, stack.logs)
            rerun = harness.launch(harness.MARKETS, cluster.env, stack.instance, stack.logs,
                                   market_db)
            run = rerun.wait()
    finally:
        broker.stop()

    assert_succeeded(stack.instance, run, rerun.log)
    assert_each_step_ran_once_on_its_queue(stack.instance, run, harness.MARKETS, "celery",
                                           cluster.env["CELERY_QUEUE_PREFIX"])
    assert harness.tables(market_db, harness.MARKETS) == reference_tables["markets_job"]


@pytest.mark.parametrize("broker", [REDIS_URL, RABBITMQ_URL], ids=["redis", "rabbitmq"])
def test_higher_priority_is_served_first_on_both_brokers(broker):
    import uuid

    settings = CelerySettings(broker=broker, backend="rpc://",
                              queue_prefix=f"prio{uuid.uuid4().hex[:8]}-")
    app = celery_app.make_app(settings)
    queue = app.amqp.queues[settings.queue("io")]

    def served_order(mapping) -> list[int]:
        for priority in (1, 9, 5):  # Dagster priorities: higher should run first
            app.send_task("probe.priority", args=[priority], queue=queue.name,
                          routing_key=f"{queue.name}.execute_plan", priority=mapping(priority))
        order = []
        with app.connection_for_read() as conn:
            simple = conn.SimpleQueue(queue)
            for _ in range(3):
                message = simple.get(timeout=10)
                order.append(message.decode()[0][0])
                message.ack()
            simple.close()
        return order

    try:
        assert served_order(lambda p: celery_app.broker_priority(p, broker)) == [9, 5, 1]
        if broker.startswith("redis"):
            # dagster-celery passes its numbers through; kombu's Redis transport serves the
            # lowest first (DAGSTER-NOTES §4 #9). When this fails upstream is fixed: drop
            # the inversion in celery_app.broker_priority.
            assert served_order(lambda p: p) == [1, 5, 9]
    finally:
        with app.connection_for_write() as conn:
            queue.bind(conn.default_channel).delete()


def test_a_worker_of_another_queue_restores_a_step_to_its_own_queue_on_redis():
    """On Redis any worker may restore a dead worker's unacknowledged step, and it routes the
    step by its own idea of the exchange: ``direct`` unless it declared that exchange itself.
    A cpu worker restoring an io step must still find the io queue (it found nothing, and the
    step was dropped, while the queues sat on topic exchanges)."""
    import uuid

    from kombu import Exchange, Queue

    prefix = f"restore{uuid.uuid4().hex[:8]}-"
    settings = CelerySettings(broker=REDIS_URL, backend="rpc://", queue_prefix=prefix)
    app = celery_app.make_app(settings)
    io = settings.queue("io")
    topic = f"{prefix}topic"
    try:
        with app.connection_for_write() as conn:
            app.amqp.queues[io].bind(conn.default_channel).declare()
            Queue(topic, Exchange(topic, type="topic"), routing_key=f"{topic}.#").bind(
                conn.default_channel).declare()
        with app.connection_for_read() as conn:
            stranger = conn.channel()  # has declared nothing, like the cpu worker
            try:
                assert list(stranger._lookup(io, f"{io}.execute_plan")) == [io]
                # What the topic binding gave such a worker: no queue at all.
                assert not stranger._lookup(topic, f"{topic}.execute_plan")
            finally:
                stranger.close()
    finally:
        forget_redis_bindings(REDIS_URL, prefix)
