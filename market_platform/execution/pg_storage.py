"""Dagster's PostgreSQL storage with one small connection pool per process.

dagster-postgres opens a new connection for every storage call (``NullPool`` in its run, event
log and schedule storages), so a step makes dozens of connections and many workers together
can run out of ``max_connections`` ("remaining connection slots are reserved",
dagster-io/dagster#20325). This subclass, named in ``deploy/dagster.yaml``, gives the three
storages one shared engine per process and database: at most ``pool_size + max_overflow``
connections per process, kept open and reused. Its budget: processes x that number, plus the
webserver's and the daemon's; see docs/distributed.md.
"""

from __future__ import annotations

import os
import threading

import dagster as dg
from dagster_postgres import DagsterPostgresStorage
from dagster_postgres.utils import create_pg_engine, get_token_provider_from_config
from dagster_postgres.utils import pg_url_from_config
from dagster._core.storage.config import pg_config

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


class PooledPostgresStorage(DagsterPostgresStorage):
    def __init__(self, postgres_url, should_autocreate_tables=True, inst_data=None,
                 token_provider=None, pool_size=DEFAULT_POOL_SIZE,
                 max_overflow=DEFAULT_MAX_OVERFLOW):
        super().__init__(postgres_url, should_autocreate_tables, inst_data, token_provider)
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
