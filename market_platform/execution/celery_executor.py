"""Dagster's Celery executor with the platform's queues, priorities and a broker check.

The orchestration loop is dagster-celery's own (``core_celery_execution_loop``: pools, retries,
skips after failures). What changes is how a step is sent:

* the queue is the step's kind of work (``market_platform.defs.work``) with
  ``CELERY_QUEUE_PREFIX``, so one tag picks both the Celery queue and the Dask resource;
* the priority honours the configured default and is turned around on Redis
  (``celery_app.broker_priority``);
* a broker that cannot be reached fails the run before any step is sent, with the broker named.
"""

from __future__ import annotations

import functools

from dagster._core.errors import DagsterError
from dagster_celery.core_execution_loop import core_celery_execution_loop
from dagster_celery.executor import CeleryExecutor, _submit_task
from dagster_celery.tags import (
    DAGSTER_CELERY_QUEUE_TAG,
    DAGSTER_CELERY_RUN_PRIORITY_TAG,
    DAGSTER_CELERY_STEP_PRIORITY_TAG,
)

from market_platform.defs.work import kind_of
from market_platform.execution import celery_app
from market_platform.execution.config import CelerySettings, mask_url

BROKER_CHECK_RETRIES = 2


class BrokerUnavailable(DagsterError):
    """The Celery broker did not answer; no step of the run was sent."""


class MarketCeleryExecutor(CeleryExecutor):
    def __init__(self, retries, settings: CelerySettings):
        super().__init__(
            retries=retries,
            broker=settings.broker,
            backend=settings.backend,
            config_source={"task_default_priority": settings.default_priority},
        )
        self.settings = settings

    @functools.cached_property
    def app(self):
        return celery_app.make_app(self.settings)

    def queue_for(self, tags: dict[str, str]) -> str:
        # work() sets the queue tag to the kind; steps without either (asset checks) go to io.
        return self.settings.queue(tags.get(DAGSTER_CELERY_QUEUE_TAG) or kind_of(tags))

    def priority_for(self, plan_context, tags: dict[str, str]) -> int:
        step = int(tags.get(DAGSTER_CELERY_STEP_PRIORITY_TAG, self.settings.default_priority))
        run = plan_context.get_tag(DAGSTER_CELERY_RUN_PRIORITY_TAG)
        return step + (int(run) if run and run.lstrip("-").isdigit() else 0)

    def check_broker(self) -> None:
        try:
            with self.app.connection_for_write() as connection:
                connection.ensure_connection(max_retries=BROKER_CHECK_RETRIES)
        except Exception as error:
            raise BrokerUnavailable(
                f"Celery broker {mask_url(self.settings.broker)} is unreachable, no step was "
                f"sent: {error}"
            ) from error

    def execute(self, plan_context, execution_plan):
        self.check_broker()
        return core_celery_execution_loop(
            plan_context, execution_plan, step_execution_fn=self._submit
        )

    def _submit(self, _upstream_app, plan_context, step, _queue, _priority, known_state):
        # dagster-celery computes queue and priority with its forced default of 5 and the
        # RabbitMQ order; both are recomputed here (DAGSTER-NOTES §4 #8 and #9).
        queue = self.queue_for(step.tags)
        priority = celery_app.broker_priority(
            self.priority_for(plan_context, step.tags), self.settings.broker
        )
        return _submit_task(self.app, plan_context, step, queue, priority, known_state)
