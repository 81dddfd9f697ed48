"""Trivial jobs that check a deployment and measure what an executor costs per step.

Load them with ``-m market_platform.execution.probe -a probe_defs``; they are not part of the
platform's Definitions. ``probe_chain_job`` runs six steps one after the other, alternating io
and cpu; ``probe_faults_job`` has a step that fails once and is retried, a step that always
fails with a downstream step that must be skipped, and three steps sharing the pool
``probe_pool``. Every step reports when it started and ended.
"""

import os
import time

import dagster as dg

from market_platform import settings
from market_platform.defs.work import CPU, IO, work
from market_platform.execution import executor_for

CHAIN_LENGTH = 6
POOL = "probe_pool"


class StepConfig(dg.Config):
    sleep_seconds: float = 0.0


def _timed(context, config: StepConfig, value: int) -> dg.Output:
    started = time.time()
    if config.sleep_seconds:
        time.sleep(config.sleep_seconds)
    return dg.Output(
        value + 1,
        metadata={"started": started, "ended": time.time(), "pid": os.getpid()},
    )


def _chain_step(index: int) -> dg.OpDefinition:
    kind = IO if index % 2 == 0 else CPU

    @dg.op(name=f"step_{index}", tags=work(kind))
    def step(context, config: StepConfig, previous: int) -> dg.Output[int]:
        return _timed(context, config, previous)

    return step


@dg.op(tags=work(IO))
def chain_start(context, config: StepConfig) -> dg.Output[int]:
    return _timed(context, config, 0)


CHAIN_STEPS = [_chain_step(i) for i in range(1, CHAIN_LENGTH)]


@dg.job(executor_def=executor_for("probe_chain_job"))
def probe_chain_job():
    value = chain_start()
    for step in CHAIN_STEPS:
        value = step(value)


@dg.op(tags=work(CPU), retry_policy=dg.RetryPolicy(max_retries=2))
def flaky(context) -> int:
    """Fails on its first attempt, succeeds on the retry."""
    if context.retry_number == 0:
        raise RuntimeError("flaky fails on its first attempt by design")
    return context.retry_number


@dg.op(tags=work(IO))
def broken(context) -> int:
    raise RuntimeError("broken always fails by design")


@dg.op(tags=work(CPU))
def after_broken(context, value: int) -> int:
    return value + 1


def _pooled_step(index: int) -> dg.OpDefinition:
    @dg.op(name=f"pooled_{index}", tags=work(IO), pool=POOL)
    def pooled(context, config: StepConfig) -> dg.Output[int]:
        return _timed(context, config, index)

    return pooled


POOLED_STEPS = [_pooled_step(i) for i in range(3)]


@dg.job(executor_def=executor_for("probe_faults_job"))
def probe_faults_job():
    flaky()
    after_broken(broken())
    for step in POOLED_STEPS:
        step()


probe_defs = dg.Definitions(
    jobs=[probe_chain_job, probe_faults_job],
    resources={"io_manager": dg.FilesystemIOManager(base_dir=str(settings.io_storage_dir()))},
)
