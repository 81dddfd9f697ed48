"""Choosing the backend, and what the Celery wrapper changes, without any service running."""

from __future__ import annotations

import pytest
from dagster._core.execution.retries import RetryMode
from dagster_celery.executor import CeleryExecutor
from dagster_celery.make_app import make_app as upstream_make_app

from market_platform.defs.work import CPU, IO, kind_of, work
from market_platform.errors import InputError
from market_platform.execution import celery_app, config
from market_platform.execution.celery_executor import MarketCeleryExecutor
from market_platform.execution.config import CelerySettings
from market_platform.execution.dask_executor import MarketDaskExecutor, resources_for
from market_platform.execution.executor import build_executor, executor_for

RETRIES = {"enabled": {}}


def test_backend_comes_from_the_job_variable_then_the_global_one(monkeypatch):
    monkeypatch.delenv("MARKET_PLATFORM_EXECUTOR", raising=False)
    monkeypatch.delenv("MARKET_PLATFORM_EXECUTOR_OCCUPANCY_JOB", raising=False)
    assert config.backend_for("occupancy_job") == "multiprocess"
    monkeypatch.setenv("MARKET_PLATFORM_EXECUTOR", "celery")
    assert config.backend_for("occupancy_job") == "celery"
    monkeypatch.setenv("MARKET_PLATFORM_EXECUTOR_OCCUPANCY_JOB", "dask")
    assert config.backend_for("occupancy_job") == "dask"
    assert config.backend_for("markets_job") == "celery"
    assert config.backend_for("__ASSET_JOB") == "celery"
    monkeypatch.setenv("MARKET_PLATFORM_EXECUTOR", "default")
    assert config.backend_for("markets_job") == "multiprocess"


def test_unknown_backend_names_the_variable(monkeypatch):
    monkeypatch.setenv("MARKET_PLATFORM_EXECUTOR", "spark")
    with pytest.raises(InputError, match="MARKET_PLATFORM_EXECUTOR: unknown backend 'spark'"):
        config.backend_for("markets_job")


def test_run_config_beats_the_environment_and_in_process_needs_nothing(monkeypatch):
    monkeypatch.setenv("MARKET_PLATFORM_EXECUTOR", "celery")
    definition = executor_for("markets_job")
    assert definition.get_requirements({"backend": "in_process"}) == []
    assert definition.get_requirements({"backend": None})  # celery: reconstructable, persistent
    executor = build_executor("dask", {"retries": RETRIES, "dask": {"address": "tcp://x:1"}})
    assert isinstance(executor, MarketDaskExecutor)
    assert executor.cluster_configuration == {"address": "tcp://x:1"}
    # RetryPolicy is honoured on Dask (upstream hard-wires DISABLED).
    assert executor.retries == RetryMode.ENABLED


def test_local_dask_cluster_when_no_address(monkeypatch):
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)
    monkeypatch.setenv("DASK_LOCAL_WORKERS", "3")
    executor = build_executor("dask", {"retries": RETRIES})
    assert executor.cluster_type == "local"
    assert executor.cluster_configuration["n_workers"] == 3
    assert executor.build_dict("job")["threads_per_worker"] == 1


def test_one_declaration_picks_queue_and_dask_resource():
    assert work(CPU)["dagster-celery/queue"] == "cpu"
    assert resources_for(work(CPU)) == {"cpu": 1}
    assert resources_for(work(IO)) == {"io": 1}
    assert resources_for({}) == {"io": 1} and kind_of({}) == "io"  # asset checks
    executor = MarketCeleryExecutor(RetryMode.ENABLED, CelerySettings("redis://h/1", "redis://h/1",
                                                                      queue_prefix="p-"))
    assert executor.queue_for(work(CPU)) == "p-cpu"
    assert executor.queue_for({}) == "p-io"


def test_configured_default_priority_is_kept_where_dagster_celery_overwrites_it():
    upstream = CeleryExecutor(RetryMode.ENABLED, broker="redis://h/1",
                              config_source={"task_default_priority": 2})
    assert upstream_make_app(upstream.app_args()).conf.task_default_priority == 5
    settings = CelerySettings("redis://h/1", "redis://h/1", default_priority=2)
    assert celery_app.make_app(settings).conf.task_default_priority == 2
    assert MarketCeleryExecutor(RetryMode.ENABLED, settings).priority_for(_NoTags(), {}) == 2


def test_priorities_turn_around_on_redis_only():
    assert celery_app.broker_priority(9, "redis://h/0") == 0
    assert celery_app.broker_priority(9, "pyamqp://guest@h//") == 9
    assert celery_app.broker_priority(12, "pyamqp://guest@h//") == 9


def test_worker_app_registers_dagsters_tasks_and_declares_priority_queues():
    app = celery_app.make_app(CelerySettings("pyamqp://guest@h//", "rpc://", queue_prefix="p-"))
    assert {"execute_plan", "execute_job", "resume_job"} <= set(app.tasks)
    queues = {q.name: q.queue_arguments for q in app.conf.task_queues}
    assert queues == {name: {"x-max-priority": 10} for name in ("p-io", "p-cpu", "p-dagster")}
    assert app.conf.task_acks_late and app.conf.task_reject_on_worker_lost


def test_broker_url_is_masked_in_messages():
    assert config.mask_url("redis://:secret@h:6379/0") == "redis://:***@h:6379/0"
    assert config.mask_url("pyamqp://guest:pw@h//") == "pyamqp://guest:***@h//"


class _NoTags:
    def get_tag(self, _key):
        return None
