"""Verify many addresses: syntax, then per domain DNS and one SMTP probe at a time.

Domains are checked concurrently (``VERIFY_CONCURRENCY``); within a domain there is one
connection at a time (a lock shared through Redis when configured) and at most
``VERIFY_RATE_PER_DOMAIN`` RCPT commands, so no receiving server sees a burst from us.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from dataclasses import dataclass

from email_validator import EmailNotValidError, validate_email

from market_platform.outreach.config import OutreachConfig
from market_platform.outreach.verification import mx, probe
from market_platform.ratelimit import AsyncKeyLock, AsyncRateLimiter, storage_url

INVALID, UNKNOWN = mx.INVALID, mx.UNKNOWN


@dataclass(frozen=True)
class Verdict:
    status: str
    reason: str
    domain: str
    mx_host: str | None = None


@dataclass
class VerifyStats:
    domains: int = 0
    probes: int = 0
    seconds: float = 0.0


def normalize(address: str) -> tuple[str, str] | None:
    """The address as stored (email-validator's normal form) and its ASCII domain."""
    try:
        checked = validate_email(address, check_deliverability=False)
    except EmailNotValidError:
        return None
    return checked.normalized, checked.ascii_domain


class Verifier:
    def __init__(self, config: OutreachConfig, resolver=None, limiter_url: str | None = None):
        self.config = config
        url = limiter_url or storage_url()
        self.resolver = resolver or mx.make_resolver(config.verify_dns_servers,
                                                     config.verify_dns_timeout)
        self.limiter = AsyncRateLimiter(config.verify_rate_per_domain, url)
        self.locks = AsyncKeyLock(url)
        self.stats = VerifyStats()

    def run(self, addresses: list[str]) -> dict[str, Verdict]:
        return asyncio.run(self.verify(addresses))

    async def verify(self, addresses: list[str]) -> dict[str, Verdict]:
        started = time.monotonic()
        verdicts: dict[str, Verdict] = {}
        by_domain: dict[str, list[str]] = defaultdict(list)
        for address in dict.fromkeys(addresses):
            checked = normalize(address)
            if checked is None:
                verdicts[address] = Verdict(INVALID, "syntax: not a valid email address", "")
            else:
                by_domain[checked[1]].append(address)
        slots = asyncio.Semaphore(max(1, self.config.verify_concurrency))

        async def one(domain: str, members: list[str]) -> None:
            async with slots:
                verdicts.update(await self._domain(domain, members))

        try:
            await asyncio.gather(*(one(d, m) for d, m in by_domain.items()))
        finally:
            await self.locks.aclose()
        self.stats.domains = len(by_domain)
        self.stats.seconds = time.monotonic() - started
        return verdicts

    async def _domain(self, domain: str, addresses: list[str]) -> dict[str, Verdict]:
        hosts = await mx.mail_hosts(self.resolver, domain)
        if hosts.status != mx.VALID:
            return {a: Verdict(hosts.status, hosts.reason, domain) for a in addresses}
        config = self.config
        key = f"outreach:verify:{domain}"

        async def pace():
            self.stats.probes += 1
            await self.limiter.acquire(key)

        async with self.locks.hold(f"verify:{domain}"):
            results, host = await probe.probe(
                self.resolver, domain, hosts.hosts, addresses, port=config.verify_smtp_port,
                helo=config.verify_helo, sender=config.probe_sender,
                timeout=config.verify_smtp_timeout, pace=pace,
            )
        return {a: Verdict(s, r, domain, host) for a, (s, r) in results.items()}
