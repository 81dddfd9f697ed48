"""Stub servers for the outreach tests, each a real process on 127.0.0.1, started once per
session and re-scripted per test; helpers to seed subscribers and the outbox."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from market_platform import db
from market_platform.outreach import outbox, tables
from market_platform.outreach import subscribers as subscriber_store
from market_platform.outreach.config import OutreachConfig
from market_platform.outreach.messages import Message
from market_platform.outreach.subscribers import Subscriber

sys.path.insert(0, str(Path(__file__).parent / "servers"))
from processes import free_port, start  # noqa: E402

TELEGRAM_TOKEN = "TEST-TOKEN"
WHATSAPP_TOKEN = "WA-TOKEN"
CONSENT = datetime(2024, 1, 2, 9, 30, tzinfo=UTC)


@pytest.fixture(scope="session")
def stub_folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("stubs")


@pytest.fixture(scope="session")
def smtp_server(stub_folder):
    server = start("smtp", "smtp_stub.py", stub_folder, port=free_port())
    yield server
    server.stop()


@pytest.fixture(scope="session")
def http_server(stub_folder):
    server = start("http", "http_stub.py", stub_folder)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def dns_server(stub_folder):
    server = start("dns", "dns_stub.py", stub_folder)
    yield server
    server.stop()


@pytest.fixture
def smtp(smtp_server):
    smtp_server.configure()
    smtp_server.clear()
    return smtp_server


@pytest.fixture
def http(http_server):
    http_server.configure()
    http_server.clear()
    return http_server


def channel_config(smtp_server=None, http_server=None, **overrides) -> OutreachConfig:
    """Settings pointing at the stubs, with limits high enough not to matter unless given."""
    values = dict(
        smtp_host="127.0.0.1", smtp_port=smtp_server.port if smtp_server else 1,
        smtp_starttls="off", smtp_timeout=5.0,
        telegram_url=f"http://127.0.0.1:{http_server.port if http_server else 1}",
        telegram_token=TELEGRAM_TOKEN,
        whatsapp_url=f"http://127.0.0.1:{http_server.port if http_server else 1}/v21.0",
        whatsapp_token=WHATSAPP_TOKEN, whatsapp_phone_id="1055",
        http_timeout=5.0, rate_email="10000/second", rate_email_domain="10000/second",
        rate_telegram="10000/second", rate_whatsapp="10000/second",
        retry_budget_seconds=30.0, claim_lease_seconds=0.0,
    )
    return OutreachConfig(**{**values, **overrides})


def person(number: int, channel: str = "email", language: str = "de", **fields) -> Subscriber:
    values = dict(
        subscriber_id=f"sub-{number:04d}",
        email=f"kunde{number}@mail{number % 5}.example",
        telegram_chat_id=str(700000 + number),
        whatsapp_number=f"+4915100{number:05d}",
        channel=channel, language=language, markets=(), regions=(), consent_at=CONSENT,
    )
    return Subscriber(**{**values, **fields})


def note(subscriber: Subscriber, period: str = "2024-05-14", kind: str = "busy_alert",
         body: str = "Morgen viel los.\n") -> Message:
    return Message(
        key=f"{kind}:{period}:{subscriber.subscriber_id}", subscriber_id=subscriber.subscriber_id,
        kind=kind, period=period, channel=subscriber.channel, language=subscriber.language,
        subject="Morgen viel los: Arkaden", body=body,
    )


def seed(url: str, people: list[Subscriber], messages: list[Message] | None = None):
    """Store subscribers and enqueue a message for each (or ``messages``)."""
    engine = db.get_engine(url)
    tables.create_tables(engine)
    messages = messages if messages is not None else [note(p) for p in people]
    with engine.begin() as conn:
        subscriber_store.replace_all(conn, people)
        outbox.enqueue(conn, messages, {})
    return engine


def rows(engine) -> dict[str, dict]:
    return {r["message_key"]: r for r in db.read_table(engine, "outbox")}


def received(smtp_server=None, http_server=None) -> dict[str, int]:
    """Messages the stubs accepted, counted per recipient (email address, chat id, number)."""
    counts: dict[str, int] = {}
    for event in smtp_server.events() if smtp_server else []:
        if event["event"] == "data":
            for rcpt in event["rcpt"]:
                counts[rcpt] = counts.get(rcpt, 0) + 1
    for event in http_server.events() if http_server else []:
        if event["status"] in (200, "stalled"):
            counts[event["to"]] = counts.get(event["to"], 0) + 1
    return counts
