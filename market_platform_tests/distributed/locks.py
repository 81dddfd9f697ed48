"""Holding a table lock so that a step stops inside its write transaction, to kill it there."""

from __future__ import annotations

from contextlib import contextmanager

import sqlalchemy as sa

from market_platform_tests.conftest import PG_ADMIN_URL


def _database(url: str) -> str:
    return url.rsplit("/", 1)[1]


@contextmanager
def holding_lock(url: str, table: str):
    """An exclusive lock on ``table`` until ``release()`` is called or the block ends."""
    engine = sa.create_engine(url)
    conn = engine.connect()
    transaction = conn.begin()
    conn.execute(sa.text(f'LOCK TABLE "{table}" IN ACCESS EXCLUSIVE MODE'))
    state = {"held": True}

    def release(killed_backends: list[int] = ()):
        if state["held"]:
            # A killed client's backend waits on the lock until it next writes to its socket;
            # PostgreSQL would end it then, this ends it now.
            terminate(killed_backends)
            transaction.commit()
            state["held"] = False

    try:
        yield release
    finally:
        if state["held"]:
            transaction.rollback()
        conn.close()
        engine.dispose()


def blocked_on_lock(url: str) -> list[int]:
    """Backend pids of this database waiting for a lock."""
    admin = sa.create_engine(PG_ADMIN_URL)
    try:
        with admin.connect() as conn:
            rows = conn.execute(sa.text(
                "SELECT pid FROM pg_stat_activity WHERE datname = :db "
                "AND wait_event_type = 'Lock'"
            ), {"db": _database(url)}).all()
    finally:
        admin.dispose()
    return [r.pid for r in rows]


def terminate(backends: list[int]) -> None:
    admin = sa.create_engine(PG_ADMIN_URL)
    try:
        with admin.connect() as conn:
            for pid in backends:
                conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    finally:
        admin.dispose()
