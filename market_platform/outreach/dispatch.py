"""Send the due rows of the outbox: asynchronous, rate-limited, at most once per key.

One event loop keeps up to ``OUTREACH_CONCURRENCY`` sends in flight. For each message:

1. wait for the rate limits (per receiving domain for email, per channel for all), shared
   through Redis when ``RATE_LIMIT_STORAGE_URL``/``REDIS_URL`` is set;
2. let the channel run up to its point of no return and claim the row there;
3. write the outcome. A "try later" answer releases the row as ``retry`` at once (so a crash
   while waiting loses nothing) and tenacity tries again after the server's ``retry_after``
   or an exponential backoff, within ``OUTREACH_MAX_ATTEMPTS`` and
   ``OUTREACH_RETRY_BUDGET_SECONDS``.

Claims and outcomes of concurrent sends are written together by one writer thread (group
commit), so the database sees a few transactions per second, not two per message.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import timedelta

from sqlalchemy.engine import Engine
from tenacity import AsyncRetrying, retry_if_result, stop_after_attempt, stop_before_delay

from market_platform import db
from market_platform.outreach import eligibility, outbox
from market_platform.outreach.channels.base import LOST, Outbound, Outcome
from market_platform.outreach.channels.email import EmailChannel
from market_platform.outreach.channels.http import TelegramChannel, WhatsAppChannel
from market_platform.outreach.config import OutreachConfig
from market_platform.outreach.tables import channel_status_table, create_tables
from market_platform.ratelimit import AsyncRateLimiter, storage_url

#: Tasks created ahead of the concurrency bound, so that a large outbox is not one task per row.
_AHEAD = 4
_CLOCK_MARGIN = 0.02


@dataclass
class DispatchReport:
    outcomes: Counter = field(default_factory=Counter)
    by_channel: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    attempts: int = 0
    retries: int = 0
    retry_waits: list[tuple[str, float]] = field(default_factory=list)
    recovered_uncertain: int = 0
    channels_down: dict[str, str] = field(default_factory=dict)
    subscribers_marked: int = 0
    seconds: float = 0.0

    @property
    def messages(self) -> int:
        return sum(self.outcomes.values())


def build_channels(config: OutreachConfig) -> dict:
    channels = {"email": EmailChannel(config)}
    if config.telegram_token:
        channels["telegram"] = TelegramChannel(config)
    if config.whatsapp_token and config.whatsapp_phone_id:
        channels["whatsapp"] = WhatsAppChannel(config)
    return channels


class Dispatcher:
    def __init__(self, engine: Engine, config: OutreachConfig, channels: dict | None = None,
                 limiter_url: str | None = None):
        self.engine = engine
        self.config = config
        self._channels = channels
        self._limiter_url = limiter_url or storage_url()
        self.token = uuid.uuid4().hex
        self.report = DispatchReport()

    def run(self, kind: str | None = None, period: str | None = None) -> DispatchReport:
        """Send everything due (of ``kind`` and ``period`` if given) and report."""
        try:
            import uvloop
        except ImportError:
            factory = None
        else:
            factory = uvloop.new_event_loop
        with asyncio.Runner(loop_factory=factory) as runner:
            return runner.run(self.run_async(kind, period))

    async def run_async(self, kind: str | None = None,
                        period: str | None = None) -> DispatchReport:
        started = time.monotonic()
        self._db = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox-writer")
        self._claims: list[tuple[str, asyncio.Future]] = []
        self._marks: list[dict] = []
        self._statuses: list[dict] = []
        self._wake = asyncio.Event()
        self._closing = False
        self._down: dict[str, str] = {}
        self._slots = asyncio.Semaphore(max(1, self.config.concurrency))
        self._gates: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._limiters = {
            "email": AsyncRateLimiter(self.config.rate_email, self._limiter_url),
            "email-domain": AsyncRateLimiter(self.config.rate_email_domain, self._limiter_url),
            "telegram": AsyncRateLimiter(self.config.rate_telegram, self._limiter_url),
            "whatsapp": AsyncRateLimiter(self.config.rate_whatsapp, self._limiter_url),
        }
        channels = self._channels if self._channels is not None else build_channels(
            self.config)
        loop = asyncio.get_running_loop()
        try:
            rows, audience = await loop.run_in_executor(self._db, self._prepare, kind, period)
            self.audience = audience
            writer = asyncio.create_task(self._writer())
            try:
                await self._send_all(rows, channels)
            finally:
                self._closing = True
                self._wake.set()
                await writer
        finally:
            if self._channels is None:
                for channel in channels.values():
                    await channel.aclose()
            self._db.shutdown(wait=True)
        self.report.channels_down = dict(self._down)
        self.report.seconds = time.monotonic() - started
        return self.report

    def _prepare(self, kind, period):
        create_tables(self.engine)
        with self.engine.begin() as conn:
            self.report.recovered_uncertain = outbox.recover_stale(
                conn, self.config.claim_lease_seconds, kind=kind, period=period)
        return outbox.due(self.engine, kind, period), eligibility.load(self.engine)

    async def _send_all(self, rows: list[dict], channels: dict) -> None:
        ahead = asyncio.Semaphore(max(1, self.config.concurrency) * _AHEAD)
        tasks = set()
        for row in rows:
            await ahead.acquire()
            task = asyncio.create_task(self._handle(row, channels))
            tasks.add(task)
            task.add_done_callback(lambda t: (tasks.discard(t), ahead.release()))
        if tasks:
            await asyncio.gather(*tasks)

    async def _handle(self, row: dict, channels: dict) -> None:
        key, name = row["message_key"], row["channel"]
        reason = self.audience.skip_reason(row["subscriber_id"], name)
        if reason:
            self._finish(row, Outcome(outbox.SKIPPED, reason), claimed=False)
            return
        channel = channels.get(name)
        if channel is None:
            self._finish(row, Outcome(outbox.PENDING, f"{name} is not configured"), False)
            return
        subscriber = self.audience.subscribers[row["subscriber_id"]]
        message = Outbound(
            key=key, subscriber_id=row["subscriber_id"], recipient=subscriber.address(name),
            language=row["language"], subject=row["subject"], body=row["body"],
            attachment=row["attachment"], parts_sent=row["parts_sent"] or 0,
        )
        state = {"parts_sent": message.parts_sent, "attempt": 0}
        outcome = await self._attempt(row, message, channel, state)
        left = self.config.max_attempts - (row["attempts"] or 0) - 1
        if (outcome.status == outbox.RETRY and left > 0 and name not in self._down
                and (outcome.retry_after or 0.0) <= self.config.retry_budget_seconds):
            outcome = await self._retry(row, message, channel, state, outcome, left)
        if outcome.status == outbox.RETRY:
            self._give_up_for_now(row, outcome, state["attempt"])
        elif outcome.status != LOST:
            self._finish(row, outcome, outcome.claimed)
        self.report.outcomes[outcome.status] += 1
        self.report.by_channel[name][outcome.status] += 1

    async def _retry(self, row, message, channel, state, first: Outcome, left: int) -> Outcome:
        """Further attempts after "try later", waiting what the server asked for."""
        name = channel.name
        await asyncio.sleep(first.retry_after or 0.0)
        budget = max(0.0, self.config.retry_budget_seconds - (first.retry_after or 0.0))
        retrying = AsyncRetrying(
            stop=stop_after_attempt(left) | stop_before_delay(budget),
            wait=lambda retry_state: retry_state.outcome.result().retry_after or 0.0,
            retry=retry_if_result(lambda o: o.status == outbox.RETRY and name not in self._down),
            retry_error_callback=lambda retry_state: retry_state.outcome.result(),
            sleep=asyncio.sleep,
        )
        return await retrying(self._attempt, row, message, channel, state)

    async def _attempt(self, row: dict, message: Outbound, channel, state: dict) -> Outcome:
        name = channel.name
        if name in self._down:
            return Outcome(outbox.PENDING, f"{name} stopped in this run: {self._down[name]}")
        message = replace(message, parts_sent=state["parts_sent"])
        if name == "email":
            await self._limit("email-domain", channel.domain(message.recipient))
        await self._limit(name, name)

        async with self._slots:
            if name in self._down:
                return Outcome(outbox.PENDING, f"{name} stopped in this run: {self._down[name]}")
            state["attempt"] += 1
            self.report.attempts += 1
            outcome = await channel.send(message, lambda: self._claim(row["message_key"]))
        state["parts_sent"] = outcome.parts_sent or state["parts_sent"]

        if outcome.subscriber_status:
            self._mark_subscriber(row, name, outcome.subscriber_status)
        if outcome.channel_down:
            self._down.setdefault(name, outcome.reason)
            return Outcome(outbox.PENDING, f"{name} stopped: {outcome.reason}",
                           claimed=outcome.claimed, parts_sent=outcome.parts_sent)
        if outcome.status == outbox.RETRY:
            wait = outcome.retry_after
            if wait is None:
                wait = min(60.0, 0.5 * 2 ** (state["attempt"] - 1)) * random.uniform(0.8, 1.2)
            else:
                self.report.retry_waits.append((name, wait))
            outcome = Outcome.later(outcome.reason, outcome.claimed, wait, outcome.parts_sent)
            self.report.retries += 1
            if outcome.claimed:
                # Released now, before waiting: a crash during the wait leaves a clean 'retry'.
                # The row is due a moment before our own retry wakes up, so that the clocks
                # of the sleep (monotonic) and of the claim (wall) never disagree.
                self._finish(row, outcome, True, next_in=max(0.0, wait - _CLOCK_MARGIN))
        return outcome

    def _give_up_for_now(self, row: dict, outcome: Outcome, attempts_now: int) -> None:
        total = (row["attempts"] or 0) + attempts_now
        if total >= self.config.max_attempts:
            final = Outcome(outbox.FAILED, f"gave up after {total} attempts: {outcome.reason}")
            self._finish(row, final, False)
        elif not outcome.claimed:
            self._finish(row, outcome, False, next_in=outcome.retry_after or 0.0)

    async def _limit(self, limiter: str, key: str) -> None:
        full_key, gate = f"outreach:{limiter}:{key}", self._gates[f"{limiter}:{key}"]
        if not gate.locked() and await self._limiters[limiter].try_acquire(full_key):
            return
        # Over the limit: one waiter per key polls the limiter, the others queue behind it,
        # so that a thousand waiting sends do not poll (Redis) a thousand times per window.
        async with gate:
            await self._limiters[limiter].acquire(full_key)

    async def _claim(self, key: str) -> bool:
        future = asyncio.get_running_loop().create_future()
        self._claims.append((key, future))
        self._wake.set()
        return await future

    def _finish(self, row: dict, outcome: Outcome, claimed: bool,
                next_in: float | None = None) -> None:
        self._marks.append({
            "key": row["message_key"],
            "token": self.token if claimed else None,
            "status": outcome.status,
            "reason": outcome.reason or None,
            "provider_id": outcome.provider_id,
            "parts_sent": outcome.parts_sent,
            "next_attempt_at": outbox.now() + timedelta(seconds=next_in)
            if next_in is not None else None,
        })
        self._wake.set()

    def _mark_subscriber(self, row: dict, channel: str, status: tuple[str, str]) -> None:
        told = (row["subscriber_id"], channel)
        if told in self.audience.channel_status:
            return
        self.audience.channel_status[told] = status
        self._statuses.append({"subscriber_id": told[0], "channel": channel,
                               "status": status[0], "reason": status[1],
                               "updated_at": outbox.now()})
        self.report.subscribers_marked += 1
        self._wake.set()

    async def _writer(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not (self._claims or self._marks or self._statuses):
                if self._closing:
                    return
                await self._wake.wait()
                self._wake.clear()
                continue
            claims, self._claims = self._claims, []
            marks, self._marks = self._marks, []
            statuses, self._statuses = self._statuses, []
            try:
                won = await loop.run_in_executor(self._db, self._write, marks, statuses,
                                                 [k for k, _ in claims])
            except Exception as error:
                for _, future in claims:
                    future.set_exception(error)
                raise
            for key, future in claims:
                future.set_result(key in won)

    def _write(self, marks: list[dict], statuses: list[dict], keys: list[str]) -> set[str]:
        if marks or statuses:
            with self.engine.begin() as conn:
                outbox.finish(conn, sorted(marks, key=lambda m: m["key"]))
                if statuses:
                    db.upsert(conn, channel_status_table, statuses,
                              ["subscriber_id", "channel"])
        if not keys:
            return set()
        with self.engine.begin() as conn:
            return outbox.claim(conn, sorted(keys), self.token)


def dispatch(engine: Engine, config: OutreachConfig, kind: str | None = None,
             period: str | None = None) -> DispatchReport:
    return Dispatcher(engine, config).run(kind, period)

