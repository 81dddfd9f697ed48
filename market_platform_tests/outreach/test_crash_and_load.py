"""A worker killed mid-run and a rerun send every message once; so do 1,000 messages through
injected 429s, 5xx, 421s and dropped connections."""

from __future__ import annotations

import dataclasses
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from market_platform.outreach import outbox
from market_platform.outreach.dispatch import Dispatcher

from .conftest import channel_config, person, received, rows, seed

WORKER = Path(__file__).parent / "servers" / "worker.py"


def _wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def test_killed_worker_then_rerun_sends_each_message_once(sqlite_url, smtp, http):
    people = [person(i, ("email", "telegram")[i % 2]) for i in range(1000, 1400)]
    engine = seed(sqlite_url, people)
    # Both servers stop answering after 100 messages each: SMTP before the claim (MAIL FROM),
    # the API after reading the request, as a server that took it and then hung.
    smtp.configure(stall_after=100)
    http.configure(stall_after=100)
    config = channel_config(smtp, http, smtp_timeout=600.0, http_timeout=600.0)
    worker = subprocess.Popen(
        [sys.executable, str(WORKER), sqlite_url, json.dumps(dataclasses.asdict(config))],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        def stalled():
            smtp_stalled = any(e["event"] == "stalled" for e in smtp.events())
            http_stalled = [e for e in http.events() if e["status"] == "stalled"]
            return smtp_stalled and len(http_stalled) >= 1

        _wait_for(stalled, 60, "both servers to hold the worker")
        time.sleep(1.0)  # let every in-flight send reach a stalled server
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(timeout=10)
        worker.stdout.close()

    before = outbox.counts(engine)
    assert before["delivered"] >= 100 and before["pending"] > 0
    smtp.configure()
    http.configure()
    report = Dispatcher(engine, config, limiter_url="memory://").run()

    state = rows(engine)
    counts = received(smtp, http)
    address = {p.subscriber_id: p.email if p.channel == "email" else p.telegram_chat_id
               for p in people}
    assert len(counts) == 400 and set(counts.values()) == {1}
    uncertain = {k for k, r in state.items() if r["status"] == "uncertain"}
    assert {r["status"] for r in state.values()} <= {"delivered", "uncertain"}
    assert report.recovered_uncertain == len(uncertain)
    # What stayed uncertain did reach a server once and was not sent again.
    assert all(counts[address[k.rsplit(":", 1)[1]]] == 1 for k in uncertain)
    stalled_chats = {e["to"] for e in http.events() if e["status"] == "stalled"}
    assert {address[k.rsplit(":", 1)[1]] for k in uncertain} >= stalled_chats


@pytest.mark.timeout(300)
def test_thousand_messages_through_faults_each_delivered_once(sqlite_url, smtp, http):
    channels = ["email"] * 4 + ["telegram"] * 3 + ["whatsapp"] * 3
    people = [person(i, channels[i % 10]) for i in range(2000, 3000)]
    engine = seed(sqlite_url, people)
    smtp.configure(every_mail_421=17, every_mail_drop=23, every_data_451=19,
                   greylist={p.email: 1 for p in people[::50] if p.channel == "email"})
    http.configure(every_429=29, retry_after=0.2, every_5xx=31)
    config = channel_config(smtp, http, max_attempts=10, concurrency=100)

    report = Dispatcher(engine, config, limiter_url="memory://").run()

    assert outbox.counts(engine) == {"delivered": 1000}
    assert report.retries > 50
    counts = received(smtp, http)
    assert len(counts) == 1000 and set(counts.values()) == {1}
    smtp_events = smtp.events()
    assert sum(e["event"] == "drop" for e in smtp_events) > 5
    assert sum(e["status"] == 429 for e in http.events()) > 5
