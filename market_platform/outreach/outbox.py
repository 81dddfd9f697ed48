"""The outbox: every message is a row keyed ``<kind>:<period>:<subscriber>`` before it is sent.

States::

    pending --claim--> sending --> delivered
       ^                  |------> retry --(due)--> sending ...   (the server said "later")
       |                  |------> failed                         (final answer, or gave up)
       |                  '------> uncertain                      (no answer after the point
       |                                                           of no return; not resent)
    skipped  (no consent, blocked channel, invalid address; recomputed on each enqueue)

A row is sent only by the worker whose claim token the row carries: the claim is one
``UPDATE ... WHERE status = 'pending' OR (status = 'retry' AND due)``, atomic on SQLite (one
writer at a time) and on PostgreSQL (the second UPDATE re-reads the row after the first
commits). A row still ``sending`` after ``lease`` seconds belonged to a worker that died
mid-send: whether the server got it is unknown, so it becomes ``uncertain`` and is not sent
again (see docs/outreach.md for why, and ``requeue_uncertain`` to resend on purpose).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from market_platform.db import is_postgres
from market_platform.outreach.messages import Message
from market_platform.outreach.tables import outbox_table as T

PENDING, SENDING, RETRY, DELIVERED = "pending", "sending", "retry", "delivered"
FAILED, SKIPPED, UNCERTAIN = "failed", "skipped", "uncertain"
OPEN = (PENDING, RETRY, SENDING)
_CHUNK = 400


def now() -> datetime:
    return datetime.now(UTC)


def enqueue(conn: Connection, messages: Sequence[Message], skip: dict[str, str]) -> int:
    """Insert messages not yet in the outbox; ``skip`` maps keys to why they are not sent.

    Rows already claimed, delivered, failed or uncertain are left alone; pending and skipped
    rows take the new text and skip decision, so a rerun after a changed forecast or an
    unblocked subscriber sends the current message, once.
    """
    stamp = now()
    rows = [
        {
            "message_key": m.key, "subscriber_id": m.subscriber_id, "kind": m.kind,
            "period": m.period, "channel": m.channel, "language": m.language,
            "subject": m.subject, "body": m.body, "attachment": m.attachment,
            "status": SKIPPED if m.key in skip else PENDING, "reason": skip.get(m.key),
            "attempts": 0, "parts_sent": 0, "created_at": stamp,
        }
        for m in messages
    ]
    dialect = postgresql if is_postgres(conn) else sqlite
    refreshed = ["channel", "language", "subject", "body", "attachment", "status", "reason"]
    for start in range(0, len(rows), _CHUNK):
        statement = dialect.insert(T).values(rows[start : start + _CHUNK])
        statement = statement.on_conflict_do_update(
            index_elements=["message_key"],
            set_={c: statement.excluded[c] for c in refreshed},
            where=T.c.status.in_([PENDING, SKIPPED]),
        )
        conn.execute(statement)
    return len(rows)


def recover_stale(conn: Connection, lease_seconds: float, keys: Iterable[str] | None = None,
                  kind: str | None = None, period: str | None = None) -> int:
    """Rows left ``sending`` by a worker that stopped become ``uncertain``; returns how many."""
    cutoff = now() - timedelta(seconds=lease_seconds)
    statement = (
        sa.update(T)
        .where(T.c.status == SENDING, T.c.claimed_at <= cutoff, *_scope(kind, period))
        .values(
            status=UNCERTAIN,
            finished_at=now(),
            reason="the worker stopped while sending; the server may have it, so it is "
                   "not sent again (requeue_uncertain resends on purpose)",
        )
    )
    return conn.execute(statement).rowcount


def due(engine: Engine, kind: str | None = None, period: str | None = None) -> list[dict]:
    """Rows to send now: pending, or retry whose time has come; oldest first."""
    query = (
        sa.select(T.c.message_key, T.c.subscriber_id, T.c.kind, T.c.period, T.c.channel,
                  T.c.language, T.c.subject, T.c.body, T.c.attachment, T.c.attempts,
                  T.c.parts_sent)
        .where(
            sa.or_(T.c.status == PENDING,
                   sa.and_(T.c.status == RETRY, T.c.next_attempt_at <= now())),
            *_scope(kind, period),
        )
        .order_by(T.c.created_at, T.c.message_key)
    )
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(query).mappings()]


def claim(conn: Connection, keys: Sequence[str], token: str) -> set[str]:
    """Claim ``keys`` for ``token``; returns the keys this call won (the others are taken)."""
    won: set[str] = set()
    stamp = now()
    for start in range(0, len(keys), _CHUNK):
        chunk = list(keys[start : start + _CHUNK])
        conn.execute(
            sa.update(T)
            .where(
                T.c.message_key.in_(chunk),
                sa.or_(T.c.status == PENDING,
                       sa.and_(T.c.status == RETRY, T.c.next_attempt_at <= stamp)),
            )
            .values(status=SENDING, claim_token=token, claimed_at=stamp,
                    attempts=T.c.attempts + 1)
        )
        won |= {
            r[0] for r in conn.execute(
                sa.select(T.c.message_key).where(
                    T.c.message_key.in_(chunk), T.c.claim_token == token,
                    T.c.status == SENDING,
                )
            )
        }
    return won


_FINISH_CLAIMED = (
    sa.update(T)
    .where(T.c.message_key == sa.bindparam("b_key"), T.c.claim_token == sa.bindparam("b_token"))
    .values(status=sa.bindparam("b_status"), reason=sa.bindparam("b_reason"),
            provider_id=sa.bindparam("b_provider"), finished_at=sa.bindparam("b_finished"),
            next_attempt_at=sa.bindparam("b_next"), parts_sent=sa.bindparam("b_parts"),
            claim_token=sa.bindparam("b_new_token"))
)
# An outcome decided before the claim (the mailbox was refused at RCPT, the channel is down):
# written only if no other worker has taken the row meanwhile.
_FINISH_UNCLAIMED = (
    sa.update(T)
    .where(T.c.message_key == sa.bindparam("b_key"),
           sa.or_(T.c.status == PENDING, T.c.status == RETRY))
    .values(status=sa.bindparam("b_status"), reason=sa.bindparam("b_reason"),
            finished_at=sa.bindparam("b_finished"), next_attempt_at=sa.bindparam("b_next"),
            attempts=T.c.attempts + 1)
)


def finish(conn: Connection, results: Sequence[dict]) -> None:
    """Write outcomes: dicts with key, token (None if unclaimed), status, reason, provider_id,
    next_attempt_at, parts_sent."""
    claimed, unclaimed = [], []
    stamp = now()
    for r in results:
        final = r["status"] not in (PENDING, RETRY)
        params = {
            "b_key": r["key"], "b_status": r["status"], "b_reason": r.get("reason"),
            "b_finished": stamp if final else None, "b_next": r.get("next_attempt_at"),
        }
        if r.get("token"):
            keep = None if r["status"] in (PENDING, RETRY) else r["token"]
            claimed.append(params | {"b_token": r["token"], "b_new_token": keep,
                                     "b_provider": r.get("provider_id"),
                                     "b_parts": r.get("parts_sent", 0)})
        else:
            unclaimed.append(params)
    if claimed:
        conn.execute(_FINISH_CLAIMED, claimed)
    if unclaimed:
        conn.execute(_FINISH_UNCLAIMED, unclaimed)


def requeue_uncertain(conn: Connection, kind: str | None = None,
                      period: str | None = None) -> int:
    """Send uncertain rows again, on purpose: an operator's decision, never automatic."""
    statement = (
        sa.update(T)
        .where(T.c.status == UNCERTAIN, *_scope(kind, period))
        .values(status=PENDING, claim_token=None, claimed_at=None, finished_at=None,
                reason="requeued by an operator after an uncertain send")
    )
    return conn.execute(statement).rowcount


def counts(engine: Engine, kind: str | None = None, period: str | None = None) -> Counter:
    query = sa.select(T.c.status, sa.func.count()).where(*_scope(kind, period)).group_by(
        T.c.status)
    with engine.connect() as conn:
        return Counter({status: n for status, n in conn.execute(query)})


def reasons(engine: Engine, kind: str | None = None, period: str | None = None,
            limit: int = 20) -> list[tuple[str, str, int]]:
    """The most common (status, reason) pairs of messages that were not delivered."""
    query = (
        sa.select(T.c.status, T.c.reason, sa.func.count().label("n"))
        .where(T.c.status != DELIVERED, *_scope(kind, period))
        .group_by(T.c.status, T.c.reason)
        .order_by(sa.desc("n"))
        .limit(limit)
    )
    with engine.connect() as conn:
        return [(s, r or "", n) for s, r, n in conn.execute(query)]


def _scope(kind: str | None, period: str | None) -> list:
    scope = []
    if kind is not None:
        scope.append(T.c.kind == kind)
    if period is not None:
        scope.append(T.c.period == period)
    return scope
