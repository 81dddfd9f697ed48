"""Dagster's Dask executor, orchestrated step by step like the Celery and multiprocess executors.

dagster-dask 0.29.27 submits every step of the plan up front and lets Dask order the futures.
That costs three guarantees, each fixed here by replacing ``DaskExecutor.execute`` with a loop
over Dagster's own ``ActiveExecution`` that submits a step only once its inputs are ready:

* task keys are ``{job}.{step}`` only, so a second run of the same job on the same scheduler is
  handed the first run's results and reports success without running (dagster-io/dagster#21418):
  here the key holds the run id and the attempt;
* a step whose upstream failed is started anyway and fails on a missing input (siblings of
  dagster-io/dagster#1079 and #2084): here it is skipped, as on every other executor;
* ``RetryPolicy`` is ignored (``retries`` is hard-wired to DISABLED) and concurrency pools are
  not claimed (DAGSTER-NOTES §2.5): here both work, through ``ActiveExecution`` and
  ``InstanceConcurrencyContext``.

A worker that dies while running a step is Dask's business: the scheduler runs the task again
on another worker (or the restarted one), up to ``distributed.scheduler.allowed-failures``.
"""

from __future__ import annotations

import sys
import time

import dagster._check as check
from dagster._core.events import DagsterEvent, EngineEventData
from dagster._core.execution.api import create_execution_plan, execute_plan_iterator
from dagster._core.execution.plan.instance_concurrency_context import InstanceConcurrencyContext
from dagster._core.instance import DagsterInstance
from dagster._utils.error import serializable_error_info_from_exc_info
from dagster_dask.executor import DaskExecutor, get_dask_resource_requirements

from market_platform.defs.work import kind_of

#: Seconds between looks at the running futures; the per-step overhead is about half of it.
TICK_SECONDS = 0.05


class MarketDaskExecutor(DaskExecutor):
    def __init__(self, cluster_type, cluster_configuration, retries):
        super().__init__(cluster_type, cluster_configuration)
        self._retries = retries

    @property
    def retries(self):
        return self._retries

    def _cluster(self, job_name: str):
        if self.cluster_type == "existing":
            return self.cluster_configuration["address"]
        from dask.distributed import LocalCluster

        return LocalCluster(**self.build_dict(job_name))

    def execute(self, plan_context, execution_plan):
        import dask.distributed

        check.invariant(
            plan_context.instance.is_persistent,
            "Dask execution requires a persistent DagsterInstance",
        )
        cluster = self._cluster(plan_context.job_name)
        try:
            with dask.distributed.Client(cluster) as client:
                yield from self._orchestrate(plan_context, execution_plan, client)
        finally:
            if not isinstance(cluster, str):
                cluster.close()

    def _orchestrate(self, plan_context, execution_plan, client):
        import dask.distributed

        run_id = plan_context.run_id
        running: dict[str, dask.distributed.Future] = {}
        attempts: dict[str, int] = {}

        with InstanceConcurrencyContext(
            plan_context.instance, plan_context.dagster_run
        ) as concurrency, execution_plan.start(
            retry_mode=self.retries, instance_concurrency_context=concurrency
        ) as active:
            while not active.is_complete or running:
                if active.check_for_interrupts():
                    yield DagsterEvent.engine_event(
                        plan_context,
                        "Dask executor: termination requested, cancelling running steps",
                        EngineEventData.interrupted(list(running)),
                    )
                    active.mark_interrupted()
                    client.cancel(list(running.values()))
                    running.clear()
                    break

                yield from self._collect(plan_context, active, running)
                yield from active.plan_events_iterator(plan_context)
                yield from active.concurrency_event_iterator(plan_context)

                for step in active.get_steps_to_execute():
                    attempts[step.key] = attempts.get(step.key, 0) + 1
                    running[step.key] = client.submit(
                        run_step_on_worker,
                        plan_context.reconstructable_job,
                        run_id,
                        step.key,
                        plan_context.instance.get_ref(),
                        active.get_known_state(),
                        self.retries.for_inner_plan(),
                        # Unique per run and attempt (dagster-io/dagster#21418).
                        key=f"{plan_context.job_name}.{step.key}.{run_id}.{attempts[step.key]}",
                        resources=resources_for(step.tags),
                        pure=False,
                    )
                if running:
                    try:
                        dask.distributed.wait(
                            list(running.values()), timeout=TICK_SECONDS,
                            return_when="FIRST_COMPLETED",
                        )
                    except dask.distributed.TimeoutError:
                        pass
                else:
                    time.sleep(TICK_SECONDS)

    def _collect(self, plan_context, active, running):
        for step_key, future in list(running.items()):
            if not future.done():
                continue
            del running[step_key]
            try:
                events = future.result()
            except Exception:
                # The task itself failed (e.g. KilledWorker after too many worker deaths):
                # record it as the step's failure so that the run and its downstream steps end
                # as they would on any other executor.
                step = active.get_step_by_key(step_key)
                error = serializable_error_info_from_exc_info(sys.exc_info())
                events = [
                    self.log_failure_or_retry_event_after_error(
                        plan_context.for_step(step), error, active.get_known_state()
                    )
                ]
            finally:
                future.release()
            for event in events:
                yield event
                active.handle_event(event)
            active.verify_complete(plan_context, step_key)


def resources_for(tags: dict[str, str]) -> dict:
    """The worker resource a step needs: its kind of work; asset checks count as io."""
    return get_dask_resource_requirements(tags) or {kind_of(tags): 1}


def run_step_on_worker(recon_job, run_id, step_key, instance_ref, known_state, retry_mode):
    """Run one step in this Dask worker and return its events (the orchestrator logs them)."""
    from dask.distributed import get_worker

    from market_platform.execution import placement

    worker = get_worker()
    with DagsterInstance.from_ref(instance_ref) as instance:
        run = instance.get_run_by_id(run_id)
        check.invariant(run is not None, f"run {run_id} not found in the Dagster storage")
        resources = ",".join(f"{k}={v}" for k, v in sorted(worker.state.total_resources.items()))
        placement.report(instance, run, step_key, "dask", str(worker.name), resources or "-")
        plan = create_execution_plan(
            recon_job, run.run_config, step_keys_to_execute=[step_key], known_state=known_state
        )
        return list(
            execute_plan_iterator(
                execution_plan=plan,
                job=recon_job,
                dagster_run=run,
                instance=instance,
                retry_mode=retry_mode,
                run_config=run.run_config,
            )
        )
