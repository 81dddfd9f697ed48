"""Dagster's PostgreSQL storage with one small connection pool per process.

dagster-postgres opens a new connection for every storage call (``NullPool`` in its run, event
log and schedule storages), so a step makes dozens of connections and many workers together
can run out of ``max_connections`` ("remaining connection slots are reserved",
dagster-io/dagster#20325). This subclass, named in ``deploy/dagster.yaml``, gives the three
storages one shared engine per process and database: at most ``pool_size + max_overflow``
connections per process, kept open and reused. Its budget: processes x that number, plus the
webserver's and the daemon's; see docs/distributed.md.

It also makes the first use of a pool safe when several processes start at once: upstream, two
of them insert the pool's default limit together, the loser's IntegrityError is caught inside
its READ COMMITTED transaction, and the transaction, now aborted, fails the step
(dagster-io/dagster#33054, fix proposed in #33599). Here the initialisation is one transaction
under a PostgreSQL advisory lock per pool, with an insert that updates a row another process
inserted meanwhile.
"""

from __future__ import annotations

import os
import threading
import zlib

import dagster as dg
import sqlalchemy as sa
from dagster._core.storage.base_storage import DagsterStorage
from dagster._core.storage.config import pg_config
from dagster._core.storage.event_log.schema import ConcurrencyLimitsTable
from dagster_postgres import DagsterPostgresStorage
from dagster_postgres.event_log import PostgresEventLogStorage
from dagster_postgres.run_storage import PostgresRunStorage
from dagster_postgres.schedule_storage import PostgresScheduleStorage
from dagster_postgres.utils import (
    create_pg_engine,
    get_token_provider_from_config,
    pg_url_from_config,
)
from sqlalchemy.dialects import postgresql

DEFAULT_POOL_SIZE = 1
DEFAULT_MAX_OVERFLOW = 2
#: Seconds a storage call waits for a free connection before it fails.
POOL_TIMEOUT = 120

_engines: dict[tuple, object] = {}
_lock = threading.Lock()


def shared_engine(url: str, pool_size: int, max_overflow: int, token_provider=None):
    # Keyed by pid as well: a forked child must not share its parent's sockets.
    key = (url, pool_size, max_overflow, os.getpid())
    with _lock:
        if key not in _engines:
            _engines[key] = create_pg_engine(
                url,
                token_provider,
                isolation_level="AUTOCOMMIT",
                pool_size=pool_size,
                max_overflow=max_overflow,
                pool_timeout=POOL_TIMEOUT,
                pool_recycle=3600,
                pool_pre_ping=True,
            )
        return _engines[key]


class RaceSafeEventLogStorage(PostgresEventLogStorage):
    def initialize_concurrency_limit_to_default(self, concurrency_key: str) -> bool:
        default = self._instance.global_op_concurrency_default_limit if self.has_instance else None
        if default is None or not (self.has_concurrency_limits_table
                                   and self.has_default_pool_limit_col):
            return super().initialize_concurrency_limit_to_default(concurrency_key)

        self._reconcile_concurrency_limits_from_slots()
        lock = zlib.crc32(f"market_platform/pool/{concurrency_key}".encode())
        with self.index_transaction() as conn:
            # One initialisation per pool at a time, also for the slot rows it allocates; the
            # lock ends with the transaction, and no second connection is needed.
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:lock)"), {"lock": lock})
            conn.execute(
                postgresql.insert(ConcurrencyLimitsTable)
                .values(concurrency_key=concurrency_key, limit=default, using_default_limit=True)
                .on_conflict_do_update(index_elements=["concurrency_key"],
                                       set_={"limit": default})
            )
            self._allocate_concurrency_slots(conn, concurrency_key, default)
        return True


class PooledPostgresStorage(DagsterPostgresStorage):
    def __init__(self, postgres_url, should_autocreate_tables=True, inst_data=None,
                 token_provider=None, pool_size=DEFAULT_POOL_SIZE,
                 max_overflow=DEFAULT_MAX_OVERFLOW):
        # DagsterPostgresStorage.__init__, with the event log storage above.
        self.postgres_url = postgres_url
        self.should_autocreate_tables = should_autocreate_tables
        self._inst_data = inst_data
        self._run_storage = PostgresRunStorage(postgres_url, should_autocreate_tables,
                                               token_provider=token_provider)
        self._event_log_storage = RaceSafeEventLogStorage(postgres_url, should_autocreate_tables,
                                                   token_provider=token_provider)
        self._schedule_storage = PostgresScheduleStorage(postgres_url, should_autocreate_tables,
                                                         token_provider=token_provider)
        DagsterStorage.__init__(self)
        engine = shared_engine(postgres_url, pool_size, max_overflow, token_provider)
        for storage in (self._run_storage, self._event_log_storage, self._schedule_storage):
            storage._engine = engine  # the attribute optimize_for_webserver swaps as well

    @classmethod
    def config_type(cls):
        return {
            **pg_config(),
            "pool_size": dg.Field(dg.IntSource, default_value=DEFAULT_POOL_SIZE),
            "max_overflow": dg.Field(dg.IntSource, default_value=DEFAULT_MAX_OVERFLOW),
        }

    @classmethod
    def from_config_value(cls, inst_data, config_value):
        return cls(
            inst_data=inst_data,
            postgres_url=pg_url_from_config(config_value),
            should_autocreate_tables=config_value.get("should_autocreate_tables", True),
            token_provider=get_token_provider_from_config(config_value),
            pool_size=config_value["pool_size"],
            max_overflow=config_value["max_overflow"],
        )
