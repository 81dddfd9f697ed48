"""Outreach throughput and verification pacing, against local servers only (run by hand).

1. Messages per second from one outreach worker (one process, one event loop, the outbox in
   SQLite or PostgreSQL, rate limits in memory or Redis) to the local SMTP and HTTP stubs.
2. The same sends by a plain Celery worker (threads pool, Redis broker 127.0.0.1:6379), one
   task per message, no outbox.
3. Email verification of 1,000 addresses over 50 local domains against the bound that the
   per-domain rate sets: ``(ceil(RCPTs per domain / rate) - 1)`` windows.

Usage: ``.venv/bin/python benchmarks/outreach_bench.py [--messages 3000] [--skip-celery]``.
Every server is started here and stopped at the end, also on failure.
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SERVERS = ROOT / "market_platform_tests" / "outreach" / "servers"
sys.path.insert(0, str(SERVERS))

from processes import free_port, start  # noqa: E402

from market_platform import db  # noqa: E402
from market_platform.outreach import outbox, tables  # noqa: E402
from market_platform.outreach import subscribers as subscriber_store  # noqa: E402
from market_platform.outreach.config import OutreachConfig  # noqa: E402
from market_platform.outreach.dispatch import Dispatcher  # noqa: E402
from market_platform.outreach.messages import Message  # noqa: E402
from market_platform.outreach.subscribers import Subscriber  # noqa: E402
from market_platform.outreach.verification.checker import Verifier  # noqa: E402

REDIS = "redis://127.0.0.1:6379/0"
PG_ADMIN = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
CHANNELS = ("email", "telegram", "whatsapp")
BODY = "Morgen viel los in den Schloss-Arkaden: gegen 17 Uhr etwa 180 Besucher pro Stunde.\n"


def people(n: int, channels=CHANNELS) -> list[Subscriber]:
    consent = datetime(2024, 1, 1, tzinfo=UTC)
    return [
        Subscriber(f"b{i:06d}", f"kunde{i}@mail{i % 50}.example", str(800000 + i),
                   f"+49152{i:07d}", channels[i % len(channels)], "de", (), (), consent)
        for i in range(n)
    ]


def seed(url: str, group: list[Subscriber]) -> None:
    engine = db.get_engine(url)
    tables.create_tables(engine)
    messages = [Message(f"busy_alert:2024-05-14:{p.subscriber_id}", p.subscriber_id,
                        "busy_alert", "2024-05-14", p.channel, "de", "Morgen viel los", BODY)
                for p in group]
    with engine.begin() as conn:
        subscriber_store.replace_all(conn, group)
        outbox.enqueue(conn, messages, {})


def outreach_run(url: str, limiter: str, smtp, http, n: int, channels, **settings) -> dict:
    group = people(n, channels)
    seed(url, group)
    config = OutreachConfig(
        smtp_host="127.0.0.1", smtp_port=smtp.port, smtp_starttls="off",
        telegram_url=f"http://127.0.0.1:{http.port}", telegram_token="TEST-TOKEN",
        whatsapp_url=f"http://127.0.0.1:{http.port}/v21.0", whatsapp_token="WA-TOKEN",
        whatsapp_phone_id="1055", rate_email="100000/second",
        rate_email_domain="100000/second", rate_telegram="100000/second",
        rate_whatsapp="100000/second", **settings,
    )
    stubs, worker = stub_cpu(smtp, http), worker_cpu()
    started = time.perf_counter()
    report = Dispatcher(db.get_engine(url), config, limiter_url=limiter).run()
    seconds = time.perf_counter() - started
    delivered = report.outcomes.get("delivered", 0)
    return {"delivered": delivered, "seconds": seconds, "rate": delivered / seconds,
            "worker cpu": worker_cpu() - worker, "stub cpu": stub_cpu(smtp, http) - stubs}


def worker_cpu() -> float:
    """CPU seconds of this process, all threads (the outreach worker runs in it)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def stub_cpu(*servers) -> float:
    """CPU seconds of the stub server processes: which side is the bottleneck."""
    import psutil

    total = 0.0
    for server in servers:
        times = psutil.Process(server.process.pid).cpu_times()
        total += times.user + times.system
    return total


def celery_run(smtp, http, n: int, channels, threads: int) -> dict:
    queue = f"outreach-bench-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "BENCH_BROKER": "redis://127.0.0.1:6379/14",
           "BENCH_BACKEND": "redis://127.0.0.1:6379/15", "BENCH_QUEUE": queue,
           "BENCH_SMTP_PORT": str(smtp.port), "BENCH_HTTP_URL": f"http://127.0.0.1:{http.port}",
           "PYTHONPATH": str(ROOT / "benchmarks")}
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "outreach_celery_app", "worker", "-P", "threads",
         "-c", str(threads), "-Q", queue, "--without-gossip", "--without-mingle",
         "--without-heartbeat", "-l", "WARNING"],
        cwd=ROOT / "benchmarks", env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        os.environ.update({k: v for k, v in env.items() if k.startswith("BENCH_")})
        sys.path.insert(0, str(ROOT / "benchmarks"))
        import outreach_celery_app as bench_app
        from celery import group as celery_group

        warm = bench_app.send.apply_async(("telegram", "1", "warm", "up"), queue=queue)
        warm.get(timeout=60)
        jobs = celery_group(
            bench_app.send.s(p.channel, {"email": p.email, "telegram": p.telegram_chat_id,
                                         "whatsapp": p.whatsapp_number}[p.channel],
                             "Morgen viel los", BODY).set(queue=queue)
            for p in people(n, channels)
        )
        started = time.perf_counter()
        result = jobs.apply_async()
        statuses = result.get(timeout=600)
        seconds = time.perf_counter() - started
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(timeout=10)
    ok = sum(1 for s in statuses if s in (200, 250))
    return {"delivered": ok, "seconds": seconds, "rate": ok / seconds}


def verification_run(folder: Path, rate: str, per_domain: int, domains: int) -> dict:
    zone = {"records": {"mx.bench.example.": {"A": ["127.0.0.1"]}}}
    strict = {}
    addresses = []
    for d in range(domains):
        name = f"shop{d:02d}.example"
        zone["records"][f"{name}."] = {"MX": ["10 mx.bench.example."]}
        strict[f"@{name}"] = [f"k{i}" for i in range(per_domain)]
        addresses += [f"k{i}@{name}" for i in range(per_domain)]
    dns = start("bench-dns", "dns_stub.py", folder, zone)
    smtp = start("bench-verify-smtp", "smtp_stub.py", folder, {"strict": strict},
                 port=free_port())
    try:
        config = OutreachConfig(
            verify_smtp_port=smtp.port, verify_dns_servers=f"127.0.0.1:{dns.port}",
            verify_rate_per_domain=rate, verify_concurrency=domains,
            verify_mail_from="probe@platform.example",
        )
        verifier = Verifier(config, limiter_url="memory://")
        started = time.perf_counter()
        verdicts = verifier.run(addresses)
        seconds = time.perf_counter() - started
    finally:
        dns.stop()
        smtp.stop()
    amount, per = rate.split("/")
    window = {"second": 1.0, "minute": 60.0}[per]
    rcpts = per_domain + 1  # and the random address asked for the catch-all test
    bound = (math.ceil(rcpts / int(amount)) - 1) * window
    valid = sum(v.status == "valid" for v in verdicts.values())
    return {"addresses": len(addresses), "valid": valid, "seconds": seconds, "bound": bound,
            "ratio": seconds / bound if bound else float("nan")}


def postgres_url() -> str | None:
    import sqlalchemy as sa

    name = f"outreach_bench_{uuid.uuid4().hex[:8]}"
    try:
        admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError:
        return None
    return f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}"


def drop_postgres(url: str) -> None:
    import sqlalchemy as sa

    db.get_engine(url).dispose()
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)'))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--celery-threads", type=int, default=32)
    parser.add_argument("--skip-celery", action="store_true")
    parser.add_argument("--verify-rate", default="5/second")
    args = parser.parse_args()
    n = args.messages

    folder = Path(tempfile.mkdtemp(prefix="outreach-bench-"))
    smtp = start("smtp", "smtp_stub.py", folder, port=free_port())
    http = start("http", "http_stub.py", folder)
    pg = postgres_url()
    rows = []
    try:
        mixes = {"email": ("email",), "telegram + whatsapp": ("telegram", "whatsapp"),
                 "all three": CHANNELS}
        for label, channels in mixes.items():
            setups = [("SQLite", "memory://"), ("SQLite", REDIS)]
            if pg and label == "all three":
                setups.append(("PostgreSQL", "memory://"))
            for database, limiter in setups:
                url = pg if database == "PostgreSQL" else \
                    f"sqlite:///{folder / uuid.uuid4().hex}.sqlite"
                result = outreach_run(url, limiter, smtp, http, n, channels,
                                      smtp_connections=50, http_connections=16)
                where = "Redis" if limiter == REDIS else "memory"
                rows.append((f"outreach worker ({database} outbox, limits in {where})", label,
                             result))
                print(rows[-1], flush=True)
            if not args.skip_celery:
                result = celery_run(smtp, http, n, channels, args.celery_threads)
                rows.append((f"plain Celery, threads pool x{args.celery_threads}", label,
                             result))
                print(rows[-1], flush=True)
        verification = verification_run(folder, args.verify_rate, 20, 50)
    finally:
        smtp.stop()
        http.stop()
        if pg:
            drop_postgres(pg)

    print(f"\n{n} messages per run, {os.cpu_count()} cores\n")
    print("| sender | channels | delivered | seconds | messages/s | worker CPU s | stubs CPU s |")
    print("|---|---|---|---|---|---|---|")
    for sender, label, r in rows:
        cpu = (f"{r['worker cpu']:.2f} | {r['stub cpu']:.2f}" if "worker cpu" in r
               else "- | -")
        print(f"| {sender} | {label} | {r['delivered']} | {r['seconds']:.2f} | "
              f"{r['rate']:.0f} | {cpu} |")
    v = verification
    print(f"\nEmail verification, {v['addresses']} addresses over 50 domains, "
          f"{args.verify_rate} per domain (20 addresses + 1 catch-all probe each)\n")
    print("| valid | wall s | rate bound s | wall / bound |")
    print("|---|---|---|---|")
    print(f"| {v['valid']} | {v['seconds']:.2f} | {v['bound']:.2f} | {v['ratio']:.3f} |")


if __name__ == "__main__":
    main()
