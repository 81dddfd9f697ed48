"""Subscribers: read and check the CSV, store it, read it back.

CSV columns (a header row; order free): ``subscriber_id`` (required, unique), ``email``,
``telegram_chat_id``, ``whatsapp_number`` (E.164, ``+4915112345678``), ``channel``
(``email``, ``telegram`` or ``whatsapp``; its address must be given), ``language`` (``de``
or ``en``, default ``de``), ``markets`` and ``regions`` (lists separated by spaces, commas
or semicolons), ``consent_at`` (ISO 8601; empty means no consent, and no message is sent).

Errors name the file, the row and the subscriber id, never the address itself.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from email_validator import EmailNotValidError, validate_email
from sqlalchemy.engine import Connection, Engine

from market_platform.db import upsert
from market_platform.errors import InputError
from market_platform.outreach.tables import subscribers_table

CHANNELS = ("email", "telegram", "whatsapp")
LANGUAGES = ("de", "en")
ADDRESS_COLUMN = {"email": "email", "telegram": "telegram_chat_id", "whatsapp": "whatsapp_number"}
COLUMNS = [c.name for c in subscribers_table.columns]

_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_CHAT_ID = re.compile(r"^-?\d{1,20}$")
_SEPARATORS = re.compile(r"[\s,;]+")


@dataclass(frozen=True)
class Subscriber:
    subscriber_id: str
    email: str | None
    telegram_chat_id: str | None
    whatsapp_number: str | None
    channel: str
    language: str
    markets: tuple[str, ...]
    regions: tuple[str, ...]
    consent_at: datetime | None

    def address(self, channel: str | None = None) -> str | None:
        return getattr(self, ADDRESS_COLUMN[channel or self.channel])

    def as_row(self) -> dict:
        row = {c: getattr(self, c) for c in COLUMNS}
        row["markets"] = " ".join(self.markets)
        row["regions"] = " ".join(self.regions)
        return row


def read_csv(path: str | Path) -> list[Subscriber]:
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "subscriber file not found")
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or "subscriber_id" not in reader.fieldnames:
            raise InputError(path, "needs a header row with a subscriber_id column")
        unknown = set(reader.fieldnames) - set(COLUMNS)
        if unknown:
            raise InputError(path, f"unknown columns {sorted(unknown)}; expected {COLUMNS}")
        subscribers, seen = [], set()
        for number, raw in enumerate(reader, start=2):
            subscriber = parse_row(raw, f"{path}: row {number}")
            if subscriber.subscriber_id in seen:
                raise InputError(path, f"row {number}: subscriber_id "
                                       f"{subscriber.subscriber_id!r} appears twice")
            seen.add(subscriber.subscriber_id)
            subscribers.append(subscriber)
    return subscribers


def parse_row(raw: dict, where: str) -> Subscriber:
    """One subscriber from a CSV or database row; ``where`` prefixes every error."""
    value = {k: (str(v).strip() if v is not None else "") for k, v in raw.items()}
    subscriber_id = value.get("subscriber_id", "")
    if not subscriber_id:
        raise InputError(where, "subscriber_id is empty")
    where = f"{where} (subscriber {subscriber_id})"

    channel = value.get("channel", "").lower() or "email"
    if channel not in CHANNELS:
        raise InputError(where, f"channel {channel!r} is not one of {CHANNELS}")
    language = value.get("language", "").lower() or "de"
    if language not in LANGUAGES:
        raise InputError(where, f"language {language!r} is not one of {LANGUAGES}")

    email = _email(value.get("email", ""), where)
    chat_id = value.get("telegram_chat_id", "") or None
    if chat_id and not _CHAT_ID.match(chat_id):
        raise InputError(where, "telegram_chat_id is not a number")
    number = re.sub(r"[\s\-/()]", "", value.get("whatsapp_number", "")) or None
    if number and not _E164.match(number):
        raise InputError(where, "whatsapp_number is not in E.164 form (+<country><number>)")
    addresses = {"email": email, "telegram": chat_id, "whatsapp": number}
    if not addresses[channel]:
        raise InputError(where, f"channel is {channel} but {ADDRESS_COLUMN[channel]} is empty")

    return Subscriber(
        subscriber_id=subscriber_id,
        email=email,
        telegram_chat_id=chat_id,
        whatsapp_number=number,
        channel=channel,
        language=language,
        markets=_list(value.get("markets", "")),
        regions=_list(value.get("regions", "")),
        consent_at=_consent(value.get("consent_at", ""), where),
    )


def _email(text: str, where: str) -> str | None:
    if not text:
        return None
    try:
        # Syntax only here; whether the mailbox exists is the verifier's job.
        return validate_email(text, check_deliverability=False).normalized
    except EmailNotValidError:
        # The library's message can quote parts of the address: keep it out of the error.
        raise InputError(where, "email is not a valid address") from None


def _consent(text: str, where: str) -> datetime | None:
    if not text or text.lower() in ("none", "null", "nan"):
        return None
    try:
        stamp = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InputError(where, f"consent_at {text!r} is not an ISO 8601 time") from None
    return stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp.astimezone(UTC)


def _list(text: str) -> tuple[str, ...]:
    return tuple(sorted({item for item in _SEPARATORS.split(text) if item}))


def replace_all(conn: Connection, subscribers: list[Subscriber]) -> dict[str, int]:
    """The CSV is the whole list: rows it lacks are removed, the others upserted."""
    ids = [s.subscriber_id for s in subscribers]
    existing = {r[0] for r in conn.execute(sa.select(subscribers_table.c.subscriber_id))}
    removed = existing - set(ids)
    for start in range(0, len(sorted(removed)), 500):
        chunk = sorted(removed)[start : start + 500]
        conn.execute(subscribers_table.delete().where(
            subscribers_table.c.subscriber_id.in_(chunk)))
    upsert(conn, subscribers_table, [s.as_row() for s in subscribers], ["subscriber_id"])
    return {"stored": len(ids), "added": len(set(ids) - existing), "removed": len(removed)}


def read_all(engine: Engine) -> list[Subscriber]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(subscribers_table).order_by(subscribers_table.c.subscriber_id)
        ).mappings().all()
    out = []
    for row in rows:
        subscriber = parse_row(
            {**row, "consent_at": _iso(row["consent_at"])}, "table subscribers"
        )
        out.append(subscriber)
    return out


def _iso(value) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
    return str(value)
