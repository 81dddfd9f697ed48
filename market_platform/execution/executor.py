"""One executor for every job; which backend it uses is configuration.

Run config (``execution: {config: {backend: celery}}``) wins; otherwise the environment:
``MARKET_PLATFORM_EXECUTOR_<JOB NAME>`` (e.g. ``..._OCCUPANCY_JOB=dask``), then
``MARKET_PLATFORM_EXECUTOR``, then ``multiprocess``. The backends:

* ``multiprocess`` / ``in_process``: Dagster's own, no services;
* ``celery``: ``market_platform.execution.celery_executor`` on ``CELERY_BROKER_URL``;
* ``dask``: ``market_platform.execution.dask_executor`` on ``DASK_SCHEDULER_ADDRESS``, or on a
  local cluster of ``DASK_LOCAL_WORKERS`` processes when that is unset.
"""

from __future__ import annotations

import dagster as dg
from dagster._core.definitions.executor_definition import (
    _core_in_process_executor_creation,
    _core_multiprocess_executor_creation,
    multiple_process_executor_requirements,
)
from dagster._core.execution.retries import RetryMode, get_retries_config

from market_platform.defs.work import CPU, IO
from market_platform.execution import config
from market_platform.execution.config import CelerySettings

CONFIG_SCHEMA = {
    "backend": dg.Field(
        dg.Noneable(str),
        default_value=None,
        description="multiprocess, in_process, celery or dask; unset: from the environment.",
    ),
    "max_concurrent": dg.Field(
        dg.Noneable(int), default_value=None,
        description="multiprocess: processes at once (default: number of cores).",
    ),
    "celery": dg.Field(
        {
            "broker": dg.Field(dg.Noneable(dg.StringSource), default_value=None),
            "backend": dg.Field(dg.Noneable(dg.StringSource), default_value=None),
            "queue_prefix": dg.Field(dg.Noneable(dg.StringSource), default_value=None),
        },
        is_required=False,
        description="Unset fields come from CELERY_BROKER_URL, CELERY_RESULT_BACKEND, "
        "CELERY_QUEUE_PREFIX.",
    ),
    "dask": dg.Field(
        {
            "address": dg.Field(dg.Noneable(dg.StringSource), default_value=None),
            "local_workers": dg.Field(dg.Noneable(int), default_value=None),
        },
        is_required=False,
        description="Unset fields come from DASK_SCHEDULER_ADDRESS and DASK_LOCAL_WORKERS.",
    ),
    "retries": get_retries_config(),
}


def executor_for(job_name: str | None = None) -> dg.ExecutorDefinition:
    """The platform's executor for ``job_name`` (None: the default of the Definitions)."""

    def backend(executor_config) -> str:
        chosen = executor_config.get("backend")
        return config.parse_backend(chosen) if chosen else config.backend_for(job_name)

    def requirements(executor_config):
        if backend(executor_config) == config.IN_PROCESS:
            return []
        return multiple_process_executor_requirements()

    @dg.executor(name="market_platform", config_schema=CONFIG_SCHEMA, requirements=requirements)
    def market_platform_executor(init_context):
        executor_config = init_context.executor_config
        return build_executor(backend(executor_config), executor_config)

    return market_platform_executor


def build_executor(backend: str, executor_config: dict):
    retries = RetryMode.from_config(executor_config["retries"])
    if backend == config.IN_PROCESS:
        return _core_in_process_executor_creation({"retries": executor_config["retries"]})
    if backend == config.MULTIPROCESS:
        return _core_multiprocess_executor_creation({
            "max_concurrent": executor_config.get("max_concurrent"),
            "retries": executor_config["retries"],
        })
    if backend == config.CELERY:
        from market_platform.execution.celery_executor import MarketCeleryExecutor

        return MarketCeleryExecutor(retries, celery_settings(executor_config.get("celery") or {}))
    from market_platform.execution.dask_executor import MarketDaskExecutor

    dask = executor_config.get("dask") or {}
    address = dask.get("address") or config.dask_scheduler_address()
    if address:
        return MarketDaskExecutor("existing", {"address": address}, retries)
    workers = dask.get("local_workers") or config.dask_local_workers()
    # Each local worker offers both kinds of work; one thread, as Dagster is not thread-safe
    # (dagster-io/dagster#2181).
    local = {"n_workers": workers, "resources": {IO: 1, CPU: 1}, "processes": True}
    return MarketDaskExecutor("local", local, retries)


def celery_settings(overrides: dict) -> CelerySettings:
    settings = CelerySettings.from_env()
    broker = overrides.get("broker") or settings.broker
    backend = overrides.get("backend") or (
        settings.backend if not overrides.get("broker") else config.default_result_backend(broker)
    )
    prefix = overrides.get("queue_prefix")
    return CelerySettings(
        broker=broker,
        backend=backend,
        queue_prefix=settings.queue_prefix if prefix is None else prefix,
        visibility_timeout=settings.visibility_timeout,
        default_priority=settings.default_priority,
    )
