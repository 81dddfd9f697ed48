"""A Dagster instance on a fresh PostgreSQL database, and the processes the tests run on.

Everything is started here as real processes on 127.0.0.1 and stopped in the fixtures'
teardown, also when a test fails. Queue names carry a per-session prefix and Redis a database
number of its own, so that other engineers' test runs on the same brokers do not collide.
"""

from __future__ import annotations

import os
import shutil
import socket
import uuid
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from dagster._core.instance.ref import InstanceRef

from market_platform.definitions import build_defs
from market_platform.execution.config import is_redis as config_is_redis
from market_platform.occupancy import ingest
from market_platform_tests.conftest import (  # noqa: F401 - re-exported for benchmarks
    KREISE,
    MUENCHEN,
    POPULATION,
    create_database,
    drop_database,
)
from market_platform_tests.distributed import harness, services

ROOT = Path(__file__).resolve().parents[2]
REDIS_URL = "redis://127.0.0.1:6379/13"
#: For workers with a short visibility timeout: kombu's list of unacknowledged steps is one per
#: database, and such workers would hand out other workers' running steps a second time.
REDIS_SHORT_VISIBILITY_URL = "redis://127.0.0.1:6379/12"
REFERENCE_NOT_EMPTY = {
    "markets_job": ["markets", "market_snapshots", "market_regions", "regional_statistics"],
    "occupancy_job": ["occupancy_sites", "occupancy_observations", "occupancy_forecasts"],
}
RABBITMQ_URL = "pyamqp://guest:guest@127.0.0.1:5672//"


@dataclass
class Stack:
    """The session's Dagster instance, folders and the environment every process gets."""

    base: Path
    env: dict
    instance: dg.DagsterInstance
    logs: Path
    pg_url: str

    def with_env(self, **extra) -> dict:
        return {**self.env, **{k: str(v) for k, v in extra.items()}}


def _small_occupancy_sources(root: Path) -> Path:
    """Two Heidenheim sensors from September 2023 and three Munich facilities."""
    data = ingest.default_data_dir()
    heidenheim, munich = root / "heidenheim", root / "swm_munich"
    heidenheim.mkdir(parents=True)
    munich.mkdir()
    shutil.copy(data / "heidenheim" / "sensors.csv", heidenheim)
    for sensor in ("arkaden", "knoepfle_nord"):
        frame = pd.read_csv(data / "heidenheim" / f"{sensor}.csv", dtype=str)
        frame[frame["timestamp_utc"] >= "2023-09-01"].to_csv(
            heidenheim / f"{sensor}.csv", index=False
        )
    shutil.copy(data / "swm_munich" / "facilities.csv", munich)
    frame = pd.read_csv(data / "swm_munich" / "persons_wide.csv", dtype=str)
    frame[["timestamp_utc", "pool_nordbad", "sauna_nordbad", "pool_westbad"]].to_csv(
        munich / "persons_wide.csv", index=False
    )
    return root


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    base = tmp_path_factory.mktemp("distributed")
    home, logs = base / "dagster_home", base / "logs"
    home.mkdir()
    logs.mkdir()
    shutil.copy(ROOT / "deploy" / "dagster.yaml", home / "dagster.yaml")
    pg_url = create_database("mp_dagster")
    sources = _small_occupancy_sources(base / "occupancy_sources")
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "DAGSTER_PG_URL": pg_url,
        "MARKET_PLATFORM_IO_DIR": str(base / "io"),
        "MARKET_PLATFORM_DATA_DIR": str(base / "data"),
        "REGIONS_FILE": str(KREISE),
        "POPULATION_FILE": str(POPULATION),
        "OCCUPANCY_SOURCES": os.pathsep.join(
            [str(sources / "heidenheim"), str(sources / "swm_munich")]
        ),
        "OSM_EXTRACT": str(MUENCHEN),
        "PYTHONUNBUFFERED": "1",
    }
    for name in [n for n in env if n.startswith(("MARKET_PLATFORM_EXECUTOR", "CELERY_", "DASK_"))]:
        del env[name]
    saved = os.environ.get("DAGSTER_PG_URL")
    # The instance ref that runs hand to workers names DAGSTER_PG_URL; this process reads it too.
    os.environ["DAGSTER_PG_URL"] = pg_url
    # Creating the instance once creates the schema, before any worker could race for it.
    instance = dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home)))
    try:
        yield Stack(base, env, instance, logs, pg_url)
    finally:
        instance.dispose()
        if saved is None:
            os.environ.pop("DAGSTER_PG_URL", None)
        else:
            os.environ["DAGSTER_PG_URL"] = saved
        drop_database(pg_url)


@pytest.fixture
def market_db():
    """A fresh PostgreSQL market database for one test."""
    url = create_database("mp_market")
    yield url
    drop_database(url)


@pytest.fixture(scope="session")
def reference_tables(stack):
    """The tables of in-process runs of both jobs: what every backend must reproduce."""
    url = create_database("mp_reference")
    try:
        defs = build_defs(market_db_url=url, io_dir=str(stack.base / "reference_io"))
        with pytest.MonkeyPatch.context() as patch:
            for name in ("REGIONS_FILE", "POPULATION_FILE", "OCCUPANCY_SOURCES",
                         "MARKET_PLATFORM_DATA_DIR"):
                patch.setenv(name, stack.env[name])
            markets = defs.resolve_job_def("markets_job").execute_in_process(
                run_config={"ops": {"osm_extract": {"config": {"source": str(MUENCHEN)}}}},
                instance=dg.DagsterInstance.ephemeral(),
            )
            occupancy = defs.resolve_job_def("occupancy_job").execute_in_process(
                partition_key=harness.PARTITION, instance=dg.DagsterInstance.ephemeral()
            )
        assert markets.success and occupancy.success
        reference = {
            "markets_job": harness.tables(url, harness.MARKETS),
            "occupancy_job": harness.tables(url, harness.OCCUPANCY),
        }
        # A backend that wrote nothing must not pass for one that equals this reference.
        # market_changes (first load) and the backtest scores (one day of data) stay empty.
        for job, names in REFERENCE_NOT_EMPTY.items():
            assert all(reference[job][name] for name in names), {
                name: len(rows) for name, rows in reference[job].items()
            }
        yield reference
    finally:
        drop_database(url)


@dataclass
class Cluster:
    """Running worker processes and the environment that sends runs to them."""

    env: dict
    services: dict = field(default_factory=dict)
    address: str = ""


def start_celery(stack: Stack, broker: str, io_slots: int = 3,
                 **extra_env) -> tuple[Cluster, ExitStack]:
    prefix = f"t{uuid.uuid4().hex[:8]}-"
    env = stack.with_env(
        MARKET_PLATFORM_EXECUTOR="celery", CELERY_BROKER_URL=broker, CELERY_QUEUE_PREFIX=prefix,
        **extra_env,
    )
    cluster, cleanup = Cluster(env), ExitStack()
    # Registered first, so it runs last: after the workers have stopped.
    cleanup.callback(delete_queues, broker, prefix)
    try:
        cluster.services["io"] = services.start_celery_worker(
            "io", env, stack.logs, concurrency=io_slots, tag=prefix.rstrip("-"))
        cleanup.callback(cluster.services["io"].stop)
        cluster.services["cpu"] = services.start_celery_worker(
            "cpu", env, stack.logs, concurrency=1, tag=prefix.rstrip("-"))
        cleanup.callback(cluster.services["cpu"].stop)
    except services.ServiceError as error:
        cleanup.close()
        pytest.fail(f"Celery workers on {broker} did not start: {error}")
    return cluster, cleanup


def delete_queues(broker: str, prefix: str) -> None:
    """Remove the session's queues from the broker; RabbitMQ would keep them (durable)."""
    from market_platform.execution import celery_app
    from market_platform.execution.config import CelerySettings

    app = celery_app.make_app(CelerySettings(broker, "rpc://", queue_prefix=prefix))
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1)
            channel = conn.default_channel
            for queue in app.conf.task_queues:
                queue.bind(channel).delete()
                queue.exchange.bind(channel).delete()
    except Exception as error:  # a test that stopped the broker must still end cleanly
        print(f"queues {prefix}* left on {broker}: {error}")
    else:
        if config_is_redis(broker):
            forget_redis_bindings(broker, prefix)


def forget_redis_bindings(broker: str, prefix: str) -> None:
    """kombu keeps a Redis exchange's bindings after the queue and exchange are deleted."""
    import redis

    client = redis.Redis.from_url(broker)
    try:
        keys = [*client.scan_iter(f"_kombu.binding.{prefix}*"),
                *client.scan_iter(f"_kombu.binding_permanent.{prefix}*")]
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def _broker_reachable(port: int, name: str) -> None:
    if not services.port_open(port):
        pytest.fail(f"{name} on 127.0.0.1:{port} is not reachable; the tests need it running")


@pytest.fixture(scope="session")
def celery_redis(stack):
    _broker_reachable(6379, "Redis")
    cluster, cleanup = start_celery(stack, REDIS_URL)
    with cleanup:
        yield cluster


@pytest.fixture(scope="session")
def celery_rabbitmq(stack):
    _broker_reachable(5672, "RabbitMQ")
    cluster, cleanup = start_celery(stack, RABBITMQ_URL)
    with cleanup:
        yield cluster


@pytest.fixture(scope="session")
def dask_cluster(stack):
    """A scheduler and two worker processes: one offers the io resource, one cpu."""
    port = services.free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = stack.with_env(MARKET_PLATFORM_EXECUTOR="dask", DASK_SCHEDULER_ADDRESS=address)
    cluster = Cluster(env, address=address)
    with ExitStack() as cleanup:
        try:
            scheduler = services.start_dask_scheduler(port, env, stack.logs)
            cleanup.callback(scheduler.stop)
            for kind in ("io", "cpu"):
                worker = services.start_dask_worker(address, f"{kind}-1", f"{kind}=1", env,
                                                    stack.logs)
                cleanup.callback(worker.stop)
                cluster.services[kind] = worker
        except services.ServiceError as error:
            pytest.fail(f"Dask cluster did not start: {error}")
        cluster.services["scheduler"] = scheduler
        yield cluster


def hostname_of(worker: str) -> str:
    return worker.split("@", 1)[1] if "@" in worker else socket.gethostname()
