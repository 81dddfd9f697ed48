"""The ``email_verifications`` cache: results by address hash, each with an expiry time."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from market_platform.db import upsert
from market_platform.outreach.eligibility import address_hash
from market_platform.outreach.tables import verifications_table as V
from market_platform.outreach.verification.checker import UNKNOWN, Verdict


def fresh(engine: Engine, addresses: Iterable[str], now: datetime | None = None) -> set[str]:
    """The addresses whose cached result has not expired."""
    now = now or datetime.now(UTC)
    by_hash = {address_hash(a): a for a in addresses}
    found: set[str] = set()
    keys = list(by_hash)
    with engine.connect() as conn:
        for start in range(0, len(keys), 500):
            rows = conn.execute(sa.select(V.c.address_sha256).where(
                V.c.address_sha256.in_(keys[start : start + 500]), V.c.expires_at > now))
            found |= {by_hash[r[0]] for r in rows}
    return found


def save(conn: Connection, verdicts: dict[str, Verdict], ttl_hours: float,
         unknown_ttl_hours: float, now: datetime | None = None) -> int:
    now = now or datetime.now(UTC)
    rows = [
        {
            "address_sha256": address_hash(address),
            "domain": verdict.domain,
            "status": verdict.status,
            "reason": verdict.reason,
            "mx_host": verdict.mx_host,
            "checked_at": now,
            "expires_at": now + timedelta(
                hours=unknown_ttl_hours if verdict.status == UNKNOWN else ttl_hours),
        }
        for address, verdict in verdicts.items()
    ]
    return upsert(conn, V, rows, ["address_sha256"])


def expire(conn: Connection, addresses: Iterable[str]) -> int:
    """Forget cached results, so that the next run checks these addresses again."""
    keys = [address_hash(a) for a in addresses]
    return conn.execute(V.delete().where(V.c.address_sha256.in_(keys))).rowcount
