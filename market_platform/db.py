"""One code path for the market database on SQLite (default) and PostgreSQL (+ PostGIS).

Plain SQLAlchemy Core, no Dagster. Every write in the platform happens inside one
``engine.begin()`` block, so that a failure leaves the tables as they were.
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

# SQLite limits the number of bound parameters per statement; stay well below it.
_ROWS_PER_STATEMENT = 500


@functools.lru_cache(maxsize=16)
def get_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite files get their folder created and foreign keys enforced."""
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 60})

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):  # pragma: no cover - trivial
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.close()

        return engine
    return sa.create_engine(url, pool_pre_ping=True, pool_size=2, max_overflow=2)


def is_postgres(engine_or_conn: Engine | Connection) -> bool:
    return engine_or_conn.dialect.name == "postgresql"


def has_postgis(conn: Connection) -> bool:
    if not is_postgres(conn):
        return False
    row = conn.execute(sa.text("SELECT 1 FROM pg_extension WHERE extname = 'postgis'")).first()
    return row is not None


def ensure_postgis(conn: Connection) -> bool:
    """Enable PostGIS on a PostgreSQL database; returns whether it is available."""
    if not is_postgres(conn):
        return False
    available = conn.execute(
        sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'postgis'")
    ).first()
    if available is None:
        return False
    conn.execute(sa.text("CREATE EXTENSION IF NOT EXISTS postgis"))
    return True


@contextmanager
def begin_write(engine: Engine, lock: str) -> Iterator[Connection]:
    """A transaction that holds the write lock ``lock`` from its first statement to the end.

    Writers that read the current state before writing (the change history does) must not
    interleave: both would plan from the same old state and one update would be lost. SQLite
    takes its database write lock at ``BEGIN IMMEDIATE`` (pysqlite would otherwise begin
    only at the first INSERT, after the reads); PostgreSQL takes an advisory lock named by
    ``lock`` that ends with the transaction. A second writer waits for the first.
    """
    with engine.begin() as conn:
        if is_postgres(conn):
            key = zlib.crc32(lock.encode())
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
        elif conn.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        yield conn


def upsert(
    conn: Connection,
    table: sa.Table,
    rows: Iterable[Mapping],
    key_columns: Sequence[str],
) -> int:
    """Insert ``rows`` into ``table``, replacing the non-key columns of rows whose key exists."""
    rows = list(rows)
    if not rows:
        return 0
    dialect = postgresql if is_postgres(conn) else sqlite
    value_columns = [c for c in rows[0] if c not in key_columns]

    for start in range(0, len(rows), _ROWS_PER_STATEMENT):
        chunk = rows[start : start + _ROWS_PER_STATEMENT]
        statement = dialect.insert(table).values(chunk)
        if value_columns:
            statement = statement.on_conflict_do_update(
                index_elements=list(key_columns),
                set_={c: statement.excluded[c] for c in value_columns},
            )
        else:
            statement = statement.on_conflict_do_nothing(index_elements=list(key_columns))
        conn.execute(statement)
    return len(rows)


def read_table(engine: Engine, table: str, order_by: Sequence[str] = ()) -> list[dict]:
    """All rows of ``table`` as dicts, in a stable order (for tests and comparisons)."""
    order = f" ORDER BY {', '.join(order_by)}" if order_by else ""
    with engine.connect() as conn:
        result = conn.execute(sa.text(f"SELECT * FROM {table}{order}"))
        return [dict(row._mapping) for row in result]
