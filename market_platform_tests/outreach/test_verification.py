"""Email verification against a local DNS server and a scripted SMTP server: every outcome,
never DATA, one connection per domain at a time, the rate per domain, the cache."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from market_platform import db
from market_platform.outreach import tables
from market_platform.outreach.verification import store
from market_platform.outreach.verification.checker import Verdict, Verifier

from .conftest import channel_config

REDIS = "redis://127.0.0.1:6379/0"
MX = ["10 mx.mail.example."]
ZONE = {
    "records": {
        "mx.mail.example.": {"A": ["127.0.0.1"]},
        "ok.example.": {"MX": ["20 mx.backup.example.", *MX]},
        "xn--bckerei-5wa.example.": {"MX": MX},
        "catchall.example.": {"MX": MX},
        "grey.example.": {"MX": MX},
        "tarpit.example.": {"MX": MX},
        "refuse.example.": {"MX": MX},
        "nullmx.example.": {"MX": ["0 ."]},
        "implicit.example.": {"A": ["127.0.0.1"]},
        "nomail.example.": {"TXT": ['"v=spf1 -all"']},
    },
    "timeout": ["slowdns.example."],
}
SMTP_RULES = {
    "strict": {"@ok.example": ["anna", "bernd"], "@xn--bckerei-5wa.example": ["info"],
               "@implicit.example": ["kasse"], "@grey.example": ["gina"],
               "@tarpit.example": ["tom"], "@refuse.example": ["rita"]},
    "greylist": {"@grey.example": 100},
    "slow_rcpt": {"@tarpit.example": 3},
    "refuse_rcpt": ["@refuse.example"],
}
EXPECTED = {
    "anna@ok.example": ("valid", "250 accepted"),
    "Bernd@OK.example": ("valid", "250 accepted"),
    "zoe@ok.example": ("invalid", "mailbox unknown: 550"),
    "info@bäckerei.example": ("valid", "250 accepted"),
    "wer@catchall.example": ("catch-all", "server accepts any address"),
    "gina@grey.example": ("unknown", "try later (greylisting?): 451"),
    "tom@tarpit.example": ("unknown", "timeout"),
    "rita@refuse.example": ("unknown", "server refuses probes: RCPT 554"),
    "x@nullmx.example": ("invalid", "domain accepts no mail (null MX"),
    "kasse@implicit.example": ("valid", "250 accepted"),
    "a@nomail.example": ("invalid", "no MX and no A/AAAA record"),
    "a@missing.example": ("invalid", "domain does not exist"),
    "a@slowdns.example": ("unknown", "DNS timeout"),
    "not an address": ("invalid", "syntax"),
}


@pytest.fixture
def dns(dns_server):
    dns_server.configure(**ZONE)
    dns_server.clear()
    return dns_server


def verify_config(dns, smtp, **overrides):
    return channel_config(
        smtp, None, verify_smtp_port=smtp.port, verify_dns_servers=f"127.0.0.1:{dns.port}",
        verify_dns_timeout=0.5, verify_smtp_timeout=1.0, verify_helo="probe.localhost",
        verify_mail_from="probe@platform.example", **overrides)


def test_every_outcome_and_never_data(dns, smtp):
    smtp.configure(**SMTP_RULES)
    config = verify_config(dns, smtp, verify_rate_per_domain="100/second")

    verdicts = Verifier(config, limiter_url="memory://").run(list(EXPECTED))

    for address, (status, reason) in EXPECTED.items():
        assert verdicts[address].status == status, (address, verdicts[address])
        assert verdicts[address].reason.startswith(reason), (address, verdicts[address])
    assert verdicts["info@bäckerei.example"].domain == "xn--bckerei-5wa.example"
    assert verdicts["anna@ok.example"].mx_host == "mx.mail.example"  # the best MX, 10 < 20
    events = smtp.events()
    assert not [e for e in events if e["event"] == "data"]
    # The random address asked of every probed domain: only the catch-all accepted it.
    probes = [e for e in events if e["event"] == "rcpt" and "mp-probe-" in e["rcpt"]]
    assert {e["domain"]: e["code"] for e in probes}["catchall.example"] == 250
    assert "zoe@ok.example" not in str(verdicts["zoe@ok.example"].reason)
    # Nothing but the local DNS server was asked, and only for names of the zone or test.
    assert {q["name"] for q in dns.events()} <= set(ZONE["records"]) | {
        "missing.example.", "slowdns.example.", "mx.backup.example."}


def test_one_connection_per_domain_and_its_rate(dns, smtp):
    smtp.configure(strict={"@ok.example": [f"k{i}" for i in range(12)]})
    config = verify_config(dns, smtp, verify_rate_per_domain="5/second")
    addresses = [f"k{i}@ok.example" for i in range(12)]

    async def two_workers():
        # Two verifiers sharing Redis, as two io workers would: one domain, one connection.
        first = Verifier(config, limiter_url=REDIS)
        second = Verifier(config, limiter_url=REDIS)
        return await asyncio.gather(first.verify(addresses[:6]), second.verify(addresses[6:]))

    first, second = asyncio.run(two_workers())

    assert {v.status for v in (first | second).values()} == {"valid"}
    rcpts = [e for e in smtp.events() if e["event"] == "rcpt"]
    sessions = {}
    for event in smtp.events():
        if event["event"] in ("rcpt", "close"):
            start, end = sessions.get(event["session"], (event["t"], event["t"]))
            sessions[event["session"]] = (min(start, event["t"]), max(end, event["t"]))
    spans = sorted(sessions[s] for s in {e["session"] for e in rcpts})
    assert len(spans) == 2
    assert spans[0][1] <= spans[1][0]  # the second connection began after the first ended
    stamps = sorted(e["t"] for e in rcpts)
    busiest = max(sum(1 for s in stamps[i:] if s - t < 0.95) for i, t in enumerate(stamps))
    assert len(stamps) == 14 and busiest <= 5


def test_results_cached_with_their_time_to_live(market_db_url):
    engine = db.get_engine(market_db_url)
    tables.create_tables(engine)
    now = datetime(2024, 5, 1, 12, tzinfo=UTC)
    verdicts = {
        "anna@ok.example": Verdict("valid", "250 accepted", "ok.example", "mx.mail.example"),
        "gina@grey.example": Verdict("unknown", "try later", "grey.example", "mx.mail.example"),
    }
    with engine.begin() as conn:
        assert store.save(conn, verdicts, ttl_hours=720, unknown_ttl_hours=6, now=now) == 2

    both = set(verdicts)
    assert store.fresh(engine, both, now + timedelta(hours=5)) == both
    assert store.fresh(engine, both, now + timedelta(hours=7)) == {"anna@ok.example"}
    assert store.fresh(engine, both, now + timedelta(days=31)) == set()
    stored = db.read_table(engine, "email_verifications", ["domain"])
    assert [r["status"] for r in stored] == ["unknown", "valid"]
    assert "anna" not in str(stored)  # the cache holds hashes, not addresses
