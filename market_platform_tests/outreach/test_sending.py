"""Each channel's answers end in the right outbox state, and nothing is sent twice."""

from __future__ import annotations

import threading

import pytest

from market_platform import db
from market_platform.outreach import outbox
from market_platform.outreach.dispatch import Dispatcher

from .conftest import channel_config, note, person, received, rows, seed


def test_email_answers_become_outbox_states(market_db_url, smtp):
    people = [person(1), person(2, email="zoe@strict.example"), person(3), person(4),
              person(5, consent_at=None)]
    smtp.configure(strict={"@strict.example": ["anna"]},
                   greylist={people[2].email: 1}, tempfail={people[3].email: 2})
    engine = seed(market_db_url, people)
    config = channel_config(smtp, max_attempts=4)

    report = Dispatcher(engine, config, limiter_url="memory://").run()
    state = rows(engine)

    key = {p.subscriber_id: f"busy_alert:2024-05-14:{p.subscriber_id}" for p in people}
    assert state[key["sub-0001"]]["status"] == "delivered"
    assert state[key["sub-0001"]]["provider_id"].startswith("2.0.0 queued as")
    assert state[key["sub-0002"]]["status"] == "failed"
    assert state[key["sub-0002"]]["reason"].startswith("SMTP 550 at RCPT")
    assert "zoe" not in state[key["sub-0002"]]["reason"]
    assert state[key["sub-0003"]]["status"] == "delivered"  # after 451 greylisting
    assert state[key["sub-0004"]]["status"] == "delivered"  # after two 450
    assert state[key["sub-0005"]]["status"] == "skipped"
    assert state[key["sub-0005"]]["reason"] == "no consent"
    assert report.retries == 3
    blocked = db.read_table(engine, "subscriber_channels")
    assert [(b["subscriber_id"], b["status"]) for b in blocked] == [("sub-0002", "rejected")]
    assert received(smtp) == {people[0].email: 1, people[2].email: 1, people[3].email: 1}

    # The same Message-ID for a message whatever the attempt, and a rerun sends nothing.
    ids = {e["rcpt"][0]: e["message_id"] for e in smtp.events() if e["event"] == "data"}
    again = Dispatcher(engine, config, limiter_url="memory://").run()
    assert again.messages == 0
    assert received(smtp) == {people[0].email: 1, people[2].email: 1, people[3].email: 1}
    assert len(set(ids.values())) == 3


def test_chat_answers_become_outbox_states(sqlite_url, http):
    telegram = [person(i, "telegram") for i in range(10, 17)]
    whatsapp = [person(i, "whatsapp") for i in range(20, 23)]
    chat = {p.subscriber_id: p.telegram_chat_id for p in telegram}
    number = {p.subscriber_id: p.whatsapp_number.lstrip("+") for p in whatsapp}
    http.configure(
        telegram_token="TEST-TOKEN", whatsapp_token="WA-TOKEN",
        blocked=[chat["sub-0011"]], not_found=[chat["sub-0014"], number["sub-0022"]],
        rate={chat["sub-0012"]: [1, 1.5], number["sub-0021"]: [1, 1]},
        fail5xx={chat["sub-0013"]: 2}, drop={chat["sub-0016"]: 1},
    )
    long_body = "\n\n".join(f"Absatz {i}: " + "<Markt> & Co. " * 40 for i in range(30))
    messages = [note(p) for p in telegram[:5] + whatsapp]
    messages += [note(telegram[5], body=long_body), note(telegram[6])]
    engine = seed(sqlite_url, telegram + whatsapp, messages)

    report = Dispatcher(engine, channel_config(None, http), limiter_url="memory://").run()
    state = {k.rsplit(":", 1)[1]: v for k, v in rows(engine).items()}

    assert state["sub-0010"]["status"] == "delivered"
    assert state["sub-0011"]["status"] == "failed"
    assert "bot was blocked by the user" in state["sub-0011"]["reason"]
    assert state["sub-0012"]["status"] == "delivered"
    assert state["sub-0013"]["status"] == "delivered"
    assert state["sub-0014"]["status"] == "failed"
    assert state["sub-0020"]["status"] == "delivered"
    assert state["sub-0021"]["status"] == "delivered"
    assert state["sub-0022"]["status"] == "failed" and "131026" in state["sub-0022"]["reason"]
    assert state["sub-0015"]["status"] == "delivered" and state["sub-0015"]["parts_sent"] > 1
    # Cut after the request was read: it may have been acted on, so it is never repeated.
    assert state["sub-0016"]["status"] == "uncertain"

    told = {(r["subscriber_id"], r["status"]) for r in db.read_table(engine,
                                                                      "subscriber_channels")}
    assert told == {("sub-0011", "blocked"), ("sub-0014", "invalid"), ("sub-0022", "invalid")}
    assert sorted(w for _, w in report.retry_waits) == [1.0, 1.5]

    events = http.events()
    tries = [e for e in events if e["to"] == chat["sub-0012"]]
    assert [e["status"] for e in tries] == [429, 200]
    assert tries[1]["t"] - tries[0]["t"] >= 1.5
    parts = [e["text"] for e in events if e["to"] == chat["sub-0015"] and e["status"] == 200]
    assert len(parts) == state["sub-0015"]["parts_sent"]
    assert all(len(p.encode("utf-16-le")) // 2 <= 4096 for p in parts)
    assert parts[0].startswith("<b>Morgen viel los: Arkaden</b>")
    assert "&lt;Markt&gt; &amp; Co." in parts[1] and "<Markt>" not in "".join(parts)
    counts = received(None, http)
    assert counts[chat["sub-0010"]] == 1 and counts[number["sub-0021"]] == 1
    assert chat["sub-0016"] not in counts

    again = Dispatcher(engine, channel_config(None, http), limiter_url="memory://").run()
    assert again.messages == 0
    assert [e["status"] for e in http.events() if e["to"] == chat["sub-0016"]] == ["dropped"]


def test_wrong_token_stops_the_channel_and_keeps_messages(sqlite_url, http):
    people = [person(i, "telegram") for i in range(30, 35)]
    engine = seed(sqlite_url, people)
    config = channel_config(None, http, telegram_token="WRONG", concurrency=2)

    report = Dispatcher(engine, config, limiter_url="memory://").run()

    assert "telegram" in report.channels_down
    assert "WRONG" not in report.channels_down["telegram"]
    assert {r["status"] for r in rows(engine).values()} == {"pending"}
    assert sum(e["status"] == 401 for e in http.events()) <= 2
    assert received(None, http) == {}

    fixed = Dispatcher(engine, channel_config(None, http), limiter_url="memory://").run()
    assert fixed.outcomes["delivered"] == 5
    assert set(received(None, http).values()) == {1}


def test_two_workers_send_each_message_once(market_db_url, smtp, http):
    people = [person(i, ("email", "telegram")[i % 2]) for i in range(100, 400)]
    engine = seed(market_db_url, people)
    config = channel_config(smtp, http)
    reports = []

    def worker():
        reports.append(Dispatcher(engine, config, limiter_url="memory://").run())

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert len(reports) == 2
    assert sum(r.outcomes["delivered"] for r in reports) == 300
    assert outbox.counts(engine) == {"delivered": 300}
    counts = received(smtp, http)
    assert len(counts) == 300 and set(counts.values()) == {1}


@pytest.mark.parametrize("status", ["uncertain"])
def test_requeue_uncertain_is_explicit(sqlite_url, http, status):
    people = [person(40, "telegram")]
    http.configure(drop={people[0].telegram_chat_id: 1})
    engine = seed(sqlite_url, people)
    config = channel_config(None, http)
    Dispatcher(engine, config, limiter_url="memory://").run()
    assert {r["status"] for r in rows(engine).values()} == {status}

    with engine.begin() as conn:
        assert outbox.requeue_uncertain(conn) == 1
    Dispatcher(engine, config, limiter_url="memory://").run()
    assert {r["status"] for r in rows(engine).values()} == {"delivered"}
    assert received(None, http) == {people[0].telegram_chat_id: 1}
