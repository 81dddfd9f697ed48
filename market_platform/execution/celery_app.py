"""The Celery app of the platform: what the executor sends with and what the workers run.

Start a worker with ``celery -A market_platform.execution.celery_app worker -Q io`` (or
``scripts/start_celery_worker.sh io``). Compared with ``dagster_celery.app`` it

* declares the ``io``, ``cpu`` and ``dagster`` queues (with ``CELERY_QUEUE_PREFIX``) with
  ``x-max-priority``, so RabbitMQ honours priorities on them; dagster-celery declares only
  ``dagster`` and lets the others be created without it (DAGSTER-NOTES §3.1);
* keeps ``task_default_priority`` as configured, where dagster-celery's ``make_app`` overwrites
  it with 5 (DAGSTER-NOTES §4 #8, after dagster-io/dagster#33281);
* acknowledges a step only when it has finished (``task_acks_late``) and requeues it when its
  worker dies, so a killed worker's step is run again instead of being lost;
* registers Dagster's three tasks on this app (dagster-io/dagster#22027) and records on which
  worker and queue each step runs (``market_platform.execution.placement``).
"""

from __future__ import annotations

from celery import Celery, signals
from dagster_celery.config import (
    TASK_EXECUTE_JOB_NAME,
    TASK_EXECUTE_PLAN_NAME,
    TASK_RESUME_JOB_NAME,
)
from dagster_celery.tasks import create_execute_job_task, create_resume_job_task, create_task
from kombu import Exchange, Queue, binding

from market_platform.defs.work import CPU, IO
from market_platform.execution.config import CelerySettings, is_redis

#: The queue of steps that declare no kind and are not routed otherwise.
FALLBACK_QUEUE = "dagster"
MAX_PRIORITY = 9


def make_app(settings: CelerySettings) -> Celery:
    app = Celery("market_platform", broker=settings.broker, backend=settings.backend)
    names = [settings.queue(kind) for kind in (IO, CPU, FALLBACK_QUEUE)]
    transport = {
        # Fail a send after a few quick tries instead of hanging the run on a dead broker.
        "max_retries": 3,
        "interval_start": 0,
        "interval_step": 0.5,
        "interval_max": 1,
    }
    if is_redis(settings.broker):
        transport |= {
            "visibility_timeout": settings.visibility_timeout,
            # One list per priority instead of kombu's four buckets [0, 3, 6, 9].
            "priority_steps": list(range(MAX_PRIORITY + 1)),
            "queue_order_strategy": "priority",
            # kombu sweeps for steps of vanished workers only every interval x throttle
            # seconds (10 x 10 by default); sweeping every tenth of the timeout makes
            # CELERY_VISIBILITY_TIMEOUT, not the sweep, what decides when a step comes back.
            "unacked_restore_interval": max(1, min(10, settings.visibility_timeout // 10)),
            "unacked_restore_throttle": 1,
        }
    app.conf.update(
        task_queues=[_queue(name) for name in names],
        task_default_queue=settings.queue(FALLBACK_QUEUE),
        task_queue_max_priority=10,
        task_default_priority=settings.default_priority,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_transport_options=transport,
        broker_connection_retry_on_startup=True,
        result_expires=24 * 3600,
        worker_hijack_root_logger=False,
    )
    # shared=False: Celery would otherwise add these tasks to every app created later in the
    # process (the executor's and the module's), warning of duplicates each time.
    create_task(app, shared=False)
    create_execute_job_task(app, shared=False)
    create_resume_job_task(app, shared=False)
    return app


def _queue(name: str) -> Queue:
    """A queue on a direct exchange of its own, bound to the routing keys dagster-celery sends
    with (``<queue>.execute_plan`` and the run launcher's two).

    Not a topic exchange with ``<queue>.#``: on Redis, a worker that restores a dead worker's
    unacknowledged step looks its exchange up as ``direct`` unless it declared that exchange
    itself, and a topic pattern then matches nothing, so a cpu worker restoring an io step
    silently dropped it (kombu's ``Channel.typeof`` default; ``deadletter_queue`` is None).
    Exact keys match under either reading.
    """
    exchange = Exchange(name, type="direct")
    keys = (TASK_EXECUTE_PLAN_NAME, TASK_EXECUTE_JOB_NAME, TASK_RESUME_JOB_NAME)
    return Queue(
        name,
        exchange,
        bindings=[binding(exchange, routing_key=f"{name}.{key}") for key in keys],
        queue_arguments={"x-max-priority": 10},
    )


def broker_priority(priority: int, broker: str) -> int:
    """The broker's number for a Dagster priority (higher runs first), within 0..9.

    RabbitMQ serves higher numbers first, as dagster-celery assumes; kombu's Redis transport
    serves lower numbers first (DAGSTER-NOTES §4 #9), so the scale is turned around there.
    """
    priority = max(0, min(MAX_PRIORITY, priority))
    return MAX_PRIORITY - priority if is_redis(broker) else priority


@signals.task_prerun.connect
def _report_placement(task=None, kwargs=None, **_):
    if task is None or task.name != TASK_EXECUTE_PLAN_NAME or not kwargs:
        return
    from dagster import DagsterInstance
    from dagster._grpc.types import ExecuteStepArgs
    from dagster._serdes import unpack_value

    from market_platform.execution import placement

    args = unpack_value(kwargs["execute_step_args_packed"], as_type=ExecuteStepArgs)
    routing_key = (task.request.delivery_info or {}).get("routing_key") or ""
    queue = routing_key.rsplit(".", 1)[0]
    with DagsterInstance.from_ref(args.instance_ref) as instance:
        run = instance.get_run_by_id(args.run_id)
        for step_key in args.step_keys_to_execute or []:
            placement.report(instance, run, step_key, "celery", task.request.hostname, queue)


#: The app ``celery -A market_platform.execution.celery_app worker`` loads, from the environment.
app = make_app(CelerySettings.from_env())
