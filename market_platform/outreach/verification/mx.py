"""Where a domain's mail goes: MX records (dnspython), the implicit MX, the null MX.

RFC 5321 section 5.1: without MX records the domain itself (its A/AAAA records) is the
mail host. RFC 7505: a single MX ``0 .`` says the domain accepts no mail at all.
"""

from __future__ import annotations

from dataclasses import dataclass

import dns.asyncresolver
import dns.exception
import dns.nameserver
import dns.resolver

VALID, INVALID, UNKNOWN = "valid", "invalid", "unknown"


@dataclass(frozen=True)
class MailHosts:
    """``status`` is ``valid`` when ``hosts`` (best first) may take mail for the domain."""

    status: str
    hosts: tuple[str, ...] = ()
    reason: str = ""


def make_resolver(servers: str, timeout: float) -> dns.asyncresolver.Resolver:
    """The system's resolver, or one asking only ``servers`` (``"127.0.0.1:5353,..."``)."""
    if servers.strip():
        resolver = dns.asyncresolver.Resolver(configure=False)
        resolver.nameservers = [_nameserver(item) for item in servers.split(",") if item]
    else:
        resolver = dns.asyncresolver.Resolver()
    resolver.timeout = timeout
    resolver.lifetime = timeout
    return resolver


def _nameserver(item: str) -> dns.nameserver.Nameserver:
    host, _, port = item.strip().rpartition(":") if item.count(":") == 1 else (item, "", "")
    return dns.nameserver.Do53Nameserver(host or item.strip(), int(port or 53))


async def mail_hosts(resolver: dns.asyncresolver.Resolver, domain: str) -> MailHosts:
    try:
        answer = await resolver.resolve(domain, "MX")
    except dns.resolver.NXDOMAIN:
        return MailHosts(INVALID, reason="domain does not exist (NXDOMAIN)")
    except dns.resolver.NoAnswer:
        return await _implicit_mx(resolver, domain)
    except dns.exception.Timeout:
        return MailHosts(UNKNOWN, reason="DNS timeout looking up MX")
    except dns.resolver.NoNameservers:
        return MailHosts(UNKNOWN, reason="DNS servers failed (SERVFAIL) looking up MX")
    records = sorted((r.preference, r.exchange.to_text().rstrip(".").lower()) for r in answer)
    hosts = tuple(host for _, host in records if host)
    if not hosts:
        return MailHosts(INVALID, reason="domain accepts no mail (null MX, RFC 7505)")
    return MailHosts(VALID, hosts)


async def _implicit_mx(resolver, domain: str) -> MailHosts:
    for kind in ("A", "AAAA"):
        try:
            await resolver.resolve(domain, kind)
        except dns.resolver.NoAnswer:
            continue
        except dns.resolver.NXDOMAIN:
            return MailHosts(INVALID, reason="domain does not exist (NXDOMAIN)")
        except dns.exception.Timeout:
            return MailHosts(UNKNOWN, reason=f"DNS timeout looking up {kind}")
        except dns.resolver.NoNameservers:
            return MailHosts(UNKNOWN, reason=f"DNS servers failed looking up {kind}")
        return MailHosts(VALID, (domain,))
    return MailHosts(INVALID, reason="no MX and no A/AAAA record")


async def addresses_of(resolver, host: str) -> list[str]:
    """IP addresses of a mail host, through the same resolver (never the system's)."""
    found = []
    for kind in ("A", "AAAA"):
        try:
            answer = await resolver.resolve(host, kind)
        except (dns.resolver.NoAnswer, dns.resolver.NXDOMAIN, dns.resolver.NoNameservers,
                dns.exception.Timeout):
            continue
        found.extend(r.to_text() for r in answer)
    return found
