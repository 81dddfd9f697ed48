"""Outreach on Dagster: subscribers, verified addresses, "busy tomorrow" alerts, digests.

Thin definitions over ``market_platform.outreach``; every asset is ``io`` work (Celery queue
``io``) and keeps its state in the market database:

* ``subscribers``: the CSV of ``OUTREACH_SUBSCRIBERS_FILE`` (or run config) replaces the
  ``subscribers`` table; without a file the table is taken as it is.
* ``verified_subscribers``: every subscriber's email checked (syntax, DNS, SMTP probe),
  results cached in ``email_verifications`` with a time to live.
* ``busy_alerts`` (daily, like ``occupancy_forecasts``): for forecast run D, the subscribers
  of markets expected busy on D+2, which is "tomorrow" when the alert goes out on D+1 18:00.
* ``weekly_digests`` (weekly, Monday to Monday): the latest regional statistics of followed
  regions, the choropleth attached to emails.

Alerts and digests are enqueued in the outbox, then sent; ``outbox_retry_sensor`` sends what
the servers asked to retry later. No personal data reaches logs or metadata.
"""

import time
from collections import Counter
from datetime import date, timedelta

import dagster as dg
import sqlalchemy as sa

from market_platform import settings
from market_platform.defs.occupancy import daily_partitions, occupancy_forecasts
from market_platform.defs.resources import MarketDatabase
from market_platform.defs.work import IO, work
from market_platform.occupancy import store as occupancy_store
from market_platform.occupancy.schema import BERLIN
from market_platform.outreach import eligibility, messages, outbox
from market_platform.outreach import subscribers as subscriber_store
from market_platform.outreach.config import OutreachConfig, subscribers_file
from market_platform.outreach.dispatch import Dispatcher, DispatchReport
from market_platform.outreach.masking import scrub
from market_platform.outreach.tables import create_tables, outbox_table
from market_platform.outreach.verification import store as verification_store
from market_platform.outreach.verification.checker import Verifier
from market_platform.regions import store as region_store

GROUP = "outreach"
#: Alerts go out the evening of D+1 for forecast run D, about the day after: D+2.
ALERT_DAYS_AFTER_RUN = 2
#: Above this share of inconclusive results the verification check warns.
UNKNOWN_SHARE_WARNING = 0.5

weekly_partitions = dg.WeeklyPartitionsDefinition(
    start_date="2024-01-01", timezone=BERLIN, day_offset=1
)


class OutreachResource(dg.ConfigurableResource):
    """Channel, rate and verifier settings, from environment variables only.

    Secrets (SMTP password, bot tokens) never pass through run config or metadata; the
    variables and their defaults are listed in docs/outreach.md.
    """

    def settings(self) -> OutreachConfig:
        return OutreachConfig.from_env()


class SubscribersConfig(dg.Config):
    """A subscriber CSV to load; empty means ``OUTREACH_SUBSCRIBERS_FILE``, then the table."""

    file: str = ""


@dg.asset(group_name=GROUP, op_tags=work(IO), kinds={"sql", "csv"})
def subscribers(
    context: dg.AssetExecutionContext, config: SubscribersConfig, market_db: MarketDatabase
) -> dg.MaterializeResult:
    """Who gets which message: channel, language, followed markets and regions, consent.

    Loaded from a CSV, which then replaces the table as a whole, or kept as it is in the
    ``subscribers`` table when no file is configured.
    """
    engine = market_db.engine
    create_tables(engine)
    path = config.file or subscribers_file()
    changes = {}
    if path:
        people = subscriber_store.read_csv(path)
        with engine.begin() as conn:
            changes = subscriber_store.replace_all(conn, people)
    else:
        people = subscriber_store.read_all(engine)

    consented = [p for p in people if p.consent_at is not None]
    context.log.info(
        f"{len(people)} subscribers ({len(consented)} with consent) from "
        f"{'file' if path else 'table'}; {changes}"
    )
    return dg.MaterializeResult(metadata={
        "subscribers": len(people),
        "with_consent": len(consented),
        "by_channel": dg.MetadataValue.json(dict(Counter(p.channel for p in people))),
        "by_language": dg.MetadataValue.json(dict(Counter(p.language for p in people))),
        "following_markets": sum(1 for p in people if p.markets),
        "following_regions": sum(1 for p in people if p.regions),
        "source": "file" if path else "table",
        **{k: v for k, v in changes.items()},
    })


@dg.asset(
    deps=[subscribers],
    group_name=GROUP,
    op_tags=work(IO),
    kinds={"sql", "dns", "smtp"},
    check_specs=[dg.AssetCheckSpec(
        "verification_conclusive", asset="verified_subscribers",
        description=f"At most {UNKNOWN_SHARE_WARNING:.0%} of the checked addresses unknown.",
    )],
)
def verified_subscribers(
    context: dg.AssetExecutionContext, market_db: MarketDatabase, outreach: OutreachResource
):
    """Whether each subscriber's email address exists: syntax, DNS (MX, implicit MX, null
    MX), then an SMTP probe without DATA; ``valid``, ``invalid``, ``unknown`` or
    ``catch-all``, cached in ``email_verifications`` for ``VERIFY_CACHE_TTL_HOURS``."""
    config = outreach.settings()
    engine = market_db.engine
    create_tables(engine)
    addresses = sorted({p.email for p in subscriber_store.read_all(engine) if p.email})
    cached = verification_store.fresh(engine, addresses)
    todo = [a for a in addresses if a not in cached]

    verifier = Verifier(config)
    verdicts = verifier.run(todo) if todo else {}
    with engine.begin() as conn:
        verification_store.save(conn, verdicts, config.verify_ttl_hours,
                                config.verify_unknown_ttl_hours)

    statuses = Counter(v.status for v in verdicts.values())
    causes = Counter(f"{v.status}: {v.reason.split(':')[0]}" for v in verdicts.values()
                     if v.status not in ("valid", "catch-all"))
    context.log.info(
        f"checked {len(todo)} addresses over {verifier.stats.domains} domains with "
        f"{verifier.stats.probes} RCPT probes in {verifier.stats.seconds:.1f} s "
        f"({len(cached)} still cached): {dict(statuses)}"
    )
    yield dg.MaterializeResult(metadata={
        "addresses": len(addresses),
        "checked": len(todo),
        "from_cache": len(cached),
        "by_status": dg.MetadataValue.json(dict(statuses)),
        "causes": dg.MetadataValue.md(_table(causes, "result: cause")),
        "domains": verifier.stats.domains,
        "rcpt_probes": verifier.stats.probes,
        "seconds": round(verifier.stats.seconds, 2),
    })
    unknown = statuses.get("unknown", 0)
    yield dg.AssetCheckResult(
        check_name="verification_conclusive",
        passed=not todo or unknown <= UNKNOWN_SHARE_WARNING * len(todo),
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"unknown": unknown, "checked": len(todo)},
    )


def _outbox_check_spec(asset: str) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        "outbox_settled", asset=asset,
        description="Every message of the period is delivered, failed, skipped or uncertain: "
                    "none is still pending, waiting for a retry or being sent.",
    )


@dg.asset(
    partitions_def=daily_partitions,
    deps=[occupancy_forecasts, verified_subscribers],
    group_name=GROUP,
    op_tags=work(IO),
    kinds={"sql", "email", "telegram"},
    check_specs=[_outbox_check_spec("busy_alerts")],
)
def busy_alerts(
    context: dg.AssetExecutionContext, market_db: MarketDatabase, outreach: OutreachResource
):
    """"Busy tomorrow" alerts: subscribers of markets whose forecast peak on the alert day
    reaches ``BUSY_ALERT_SHARE`` of capacity, or ``BUSY_ALERT_FACTOR`` times a usual day."""
    config = outreach.settings()
    engine = market_db.engine
    run = context.partition_key
    day = date.fromisoformat(run) + timedelta(days=ALERT_DAYS_AFTER_RUN)

    occupancy_store.create_tables(engine)
    forecasts = occupancy_store.read_forecasts(engine, run)
    sites = occupancy_store.read_sites(engine)
    people = subscriber_store.read_all(engine)
    found = messages.busy_alerts(people, forecasts, sites, day, config.busy_share,
                                 config.busy_factor)
    busy = messages.busy_sites(forecasts, sites, day, config.busy_share, config.busy_factor)
    context.log.info(
        f"forecast run {run}: {len(busy)} of {forecasts['site_id'].nunique()} sites busy on "
        f"{day}; {len(found)} subscribers to alert"
    )
    yield from _enqueue_and_send(
        context, engine, config, found, messages.BUSY_ALERT, day.isoformat(),
        {"alert_day": day.isoformat(), "busy_sites": dg.MetadataValue.md(
            "\n".join(f"- {b.name}: peak {b.peak:.0f} at {b.peak_hour}" for b in busy.values())
            or "none")},
    )


@dg.asset(
    partitions_def=weekly_partitions,
    deps=["regional_statistics", verified_subscribers],
    group_name=GROUP,
    op_tags=work(IO),
    kinds={"sql", "email"},
    check_specs=[_outbox_check_spec("weekly_digests")],
)
def weekly_digests(
    context: dg.AssetExecutionContext, market_db: MarketDatabase, outreach: OutreachResource
):
    """The week's digest of the latest regional statistics for each followed region, with the
    choropleth of markets per 10,000 inhabitants attached to emails."""
    config = outreach.settings()
    engine = market_db.engine
    start = date.fromisoformat(context.partition_key)
    year, week, _ = start.isocalendar()
    period = f"{year}-W{week:02d}"

    snapshot = latest_snapshot(engine)
    if snapshot is None:
        raise dg.Failure("regional_statistics is empty: materialize markets_job first")
    statistics = region_store.read_statistics(engine, snapshot)
    map_path = settings.data_dir() / "maps" / f"markets_per_10k_{snapshot}.png"
    if not map_path.is_file():
        context.log.warning(f"no choropleth at {map_path}: digests go out without it")
    found = messages.weekly_digests(
        subscriber_store.read_all(engine), statistics, period, snapshot,
        str(map_path) if map_path.is_file() else None,
    )
    context.log.info(f"week {period}, snapshot {snapshot}: {len(found)} digests")
    yield from _enqueue_and_send(context, engine, config, found, messages.WEEKLY_DIGEST, period,
                                 {"snapshot": snapshot, "week": period})


def latest_snapshot(engine) -> str | None:
    """The snapshot of the most recently loaded extract that has statistics."""
    from market_platform.markets.store import snapshots_table as snapshots

    region_store.metadata.create_all(engine)
    statistics = region_store.statistics_table
    query = (
        sa.select(snapshots.c.snapshot_id)
        .where(snapshots.c.snapshot_id.in_(sa.select(statistics.c.snapshot_id).distinct()))
        .order_by(snapshots.c.load_seq.desc())
        .limit(1)
    )
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table(snapshots.name):
            return None
        return conn.execute(query).scalar()


def _enqueue_and_send(context, engine, config: OutreachConfig, found, kind: str, period: str,
                      extra: dict):
    started = time.monotonic()
    create_tables(engine)
    audience = eligibility.load(engine)
    skip = {m.key: reason for m in found
            if (reason := audience.skip_reason(m.subscriber_id, m.channel))}
    with engine.begin() as conn:
        outbox.enqueue(conn, found, skip)

    report = Dispatcher(engine, config).run(kind, period)
    counts = outbox.counts(engine, kind, period)
    reasons = outbox.reasons(engine, kind, period)
    context.log.info(
        f"{kind} {period}: sent {report.outcomes.get('delivered', 0)} in {report.seconds:.1f} s "
        f"({report.attempts} attempts, {report.retries} retries, "
        f"{report.recovered_uncertain} stale sends now uncertain); outbox: {dict(counts)}"
    )
    for channel, reason in report.channels_down.items():
        context.log.error(f"channel {channel} stopped: {scrub(reason)}")

    yield dg.MaterializeResult(metadata={
        **extra,
        "period": period,
        "messages": len(found),
        "skipped_at_enqueue": len(skip),
        "outbox": dg.MetadataValue.json(dict(counts)),
        "this_run": dg.MetadataValue.md(_run_table(report)),
        "not_delivered": dg.MetadataValue.md(
            "\n".join(f"- {s} ({n}): {scrub(r)[:160]}" for s, r, n in reasons) or "none"),
        "retry_waits_s": dg.MetadataValue.json([round(w, 2) for _, w in report.retry_waits]),
        "seconds": round(time.monotonic() - started, 2),
    })
    open_rows = sum(counts.get(s, 0) for s in outbox.OPEN)
    yield dg.AssetCheckResult(
        check_name="outbox_settled",
        passed=open_rows == 0,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"open": open_rows, "uncertain": counts.get(outbox.UNCERTAIN, 0),
                  "failed": counts.get(outbox.FAILED, 0)},
    )
    if report.channels_down:
        raise dg.Failure(
            f"channels stopped: {', '.join(report.channels_down)}; their messages stay "
            "pending and go out on the next run once the configuration is fixed"
        )


def _run_table(report: DispatchReport) -> str:
    statuses = sorted({s for c in report.by_channel.values() for s in c})
    if not statuses:
        return "nothing to send"
    lines = ["| channel | " + " | ".join(statuses) + " |", "|---|" + "---|" * len(statuses)]
    for channel, counter in sorted(report.by_channel.items()):
        lines.append(f"| {channel} | " + " | ".join(str(counter[s]) for s in statuses) + " |")
    return "\n".join(lines)


def _table(counter: Counter, header: str) -> str:
    if not counter:
        return "none"
    return "\n".join([f"| {header} | n |", "|---|---|"] +
                     [f"| {k} | {n} |" for k, n in counter.most_common()])


@dg.op(tags=work(IO))
def send_due_messages(context: dg.OpExecutionContext, market_db: MarketDatabase,
                      outreach: OutreachResource) -> None:
    """Send every outbox row that is due: retries whose time has come, and pending rows."""
    report = Dispatcher(market_db.engine, outreach.settings()).run()
    context.log.info(
        f"sent {report.outcomes.get('delivered', 0)} of {report.messages} due messages in "
        f"{report.seconds:.1f} s: {dict(report.outcomes)}"
    )


@dg.job(description="Send the outbox rows that are due (retries after 'try later').")
def outbox_dispatch_job():
    send_due_messages()


@dg.sensor(
    job=outbox_dispatch_job,
    minimum_interval_seconds=300,
    description="Starts outbox_dispatch_job when rows wait for a retry that is now due.",
)
def outbox_retry_sensor(context: dg.SensorEvaluationContext, market_db: MarketDatabase):
    engine = market_db.engine
    create_tables(engine)
    now = outbox.now()
    query = sa.select(sa.func.count()).where(
        outbox_table.c.status == outbox.RETRY, outbox_table.c.next_attempt_at <= now)
    with engine.connect() as conn:
        due = conn.execute(query).scalar() or 0
    if not due:
        return dg.SkipReason("no retry due")
    # One run per five-minute slot at most, however often the sensor ticks.
    slot = int(now.timestamp() // 300)
    return dg.RunRequest(run_key=f"outbox-retry-{slot}", tags={"market_platform/due": str(due)})


verify_subscribers_job = dg.define_asset_job(
    "verify_subscribers_job", selection=[subscribers, verified_subscribers],
    description="Load the subscribers and verify their email addresses.",
)
busy_alerts_job = dg.define_asset_job(
    "busy_alerts_job", selection=[busy_alerts],
    description="Alert subscribers of markets expected to be busy tomorrow.",
)
weekly_digest_job = dg.define_asset_job(
    "weekly_digest_job", selection=[weekly_digests],
    description="Send the weekly digest of regional statistics.",
)

# Off by default: these send messages to real people; turn them on once the channels work.
verify_subscribers_schedule = dg.ScheduleDefinition(
    name="verify_subscribers_schedule", job=verify_subscribers_job, cron_schedule="0 4 * * *",
    execution_timezone=BERLIN, description="Daily 04:00: reload and verify subscribers.",
)
busy_alerts_schedule = dg.build_schedule_from_partitioned_job(
    busy_alerts_job, name="busy_alerts_schedule", hour_of_day=18, minute_of_hour=0,
)
weekly_digest_schedule = dg.build_schedule_from_partitioned_job(
    weekly_digest_job, name="weekly_digest_schedule", hour_of_day=8, minute_of_hour=0,
)

assets = [subscribers, verified_subscribers, busy_alerts, weekly_digests]
asset_checks: list = []
jobs = [verify_subscribers_job, busy_alerts_job, weekly_digest_job, outbox_dispatch_job]
schedules = [verify_subscribers_schedule, busy_alerts_schedule, weekly_digest_schedule]
sensors = [outbox_retry_sensor]
resources = {"outreach": OutreachResource()}
