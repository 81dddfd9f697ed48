"""The SMTP probe: EHLO, MAIL FROM, RCPT TO per address, QUIT, and never DATA.

One connection per domain carries all of its addresses, each RCPT waiting for the domain's
rate limit; a random address of the same domain, asked first, tells whether the server
accepts everything (catch-all). What the server says becomes a result per address:

* 250/251: ``valid`` (``catch-all`` if the random address was accepted too)
* 550/551/553: ``invalid`` (the mailbox does not exist or may not receive)
* 450/451/452, 421, timeouts, a cut connection: ``unknown`` (greylisting, try later)
* other 5xx, or a refusal at connect, EHLO or MAIL: ``unknown`` (the server refuses probes)
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable

import aiosmtplib

from market_platform.outreach.masking import scrub
from market_platform.outreach.verification.mx import INVALID, UNKNOWN, VALID, addresses_of

CATCH_ALL = "catch-all"
MAILBOX_MISSING = (550, 551, 553)
#: Recipients per transaction before a RSET; servers commonly allow 100.
RCPTS_PER_TRANSACTION = 50

Result = tuple[str, str]


async def probe(
    resolver,
    domain: str,
    hosts: tuple[str, ...],
    addresses: list[str],
    *,
    port: int,
    helo: str,
    sender: str,
    timeout: float,
    pace: Callable[[], Awaitable[object]],
) -> tuple[dict[str, Result], str | None]:
    """Results for ``addresses`` of ``domain`` and the MX host that gave them."""
    smtp, host, why = await _connect(resolver, hosts, port, helo, timeout)
    if smtp is None:
        return {a: (UNKNOWN, why) for a in addresses}, None
    results: dict[str, Result] = {}
    try:
        try:
            await smtp.ehlo()
        except aiosmtplib.SMTPHeloError as error:
            return _all(addresses, f"server refuses probes: EHLO {error.code}"), host
        utf8 = smtp.supports_extension("smtputf8")
        options = ["SMTPUTF8"] if utf8 else []
        encoding = "utf-8" if utf8 else "ascii"

        async def start():
            await smtp.mail(sender, options=options, encoding=encoding)

        try:
            await start()
        except aiosmtplib.SMTPSenderRefused as error:
            return _all(addresses, f"server refuses probes: MAIL {error.code}"), host

        random_local = f"mp-probe-{secrets.token_hex(6)}"
        await pace()
        catch_all = await _rcpt(smtp, f"{random_local}@{domain}", encoding)
        accepts_anything = catch_all[0] in (250, 251)
        sent = 1
        for address in addresses:
            if not address.isascii() and not utf8:
                results[address] = (UNKNOWN, "server does not take non-ASCII mailboxes")
                continue
            if sent % RCPTS_PER_TRANSACTION == 0:
                await smtp.rset()
                await start()
            await pace()
            code, text = await _rcpt(smtp, address, encoding)
            sent += 1
            results[address] = _verdict(code, text, accepts_anything)
            if code == 421:
                break
        await _quit(smtp)
    except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError) as error:
        smtp.close()
        reason = "timeout" if isinstance(error, aiosmtplib.SMTPTimeoutError) else \
            "connection closed by the server"
        return {**_all(addresses, reason), **results}, host
    except aiosmtplib.SMTPException as error:
        smtp.close()
        return {**_all(addresses, f"SMTP error: {scrub(error)[:120]}"), **results}, host
    leftover = [a for a in addresses if a not in results]
    return {**results, **_all(leftover, "server closed the session (421)")}, host


def _verdict(code: int, text: str, accepts_anything: bool) -> Result:
    if code in (250, 251):
        return (CATCH_ALL, "server accepts any address of the domain") if accepts_anything \
            else (VALID, f"{code} accepted")
    if code in MAILBOX_MISSING:
        return INVALID, f"mailbox unknown: {code} {scrub(text)[:120]}"
    if code in (450, 451, 452):
        return UNKNOWN, f"try later (greylisting?): {code}"
    if code == 421:
        return UNKNOWN, "server closed the session (421)"
    return UNKNOWN, f"server refuses probes: RCPT {code}"


async def _rcpt(smtp: aiosmtplib.SMTP, address: str, encoding: str) -> tuple[int, str]:
    try:
        reply = await smtp.rcpt(address, encoding=encoding)
    except aiosmtplib.SMTPRecipientRefused as error:
        return error.code, error.message
    return reply.code, reply.message


async def _connect(resolver, hosts, port, helo, timeout):
    """A connection to the best MX host that answers (at most three hosts, two IPs each)."""
    why = "mail host has no address"
    for host in hosts[:3]:
        for ip in (await addresses_of(resolver, host))[:2]:
            smtp = aiosmtplib.SMTP(hostname=ip, port=port, timeout=timeout,
                                   local_hostname=helo, start_tls=False)
            try:
                await smtp.connect()
            except aiosmtplib.SMTPConnectResponseError as error:
                return None, host, f"server refuses probes: greeting {error.code}"
            except aiosmtplib.SMTPConnectTimeoutError:
                why = "timeout connecting to the mail host"
                continue
            except (aiosmtplib.SMTPConnectError, aiosmtplib.SMTPServerDisconnected, OSError):
                why = "mail host unreachable"
                continue
            return smtp, host, ""
    return None, None, why


async def _quit(smtp: aiosmtplib.SMTP) -> None:
    try:
        await smtp.quit()
    except aiosmtplib.SMTPException:
        smtp.close()


def _all(addresses, reason: str) -> dict[str, Result]:
    return {a: (UNKNOWN, reason) for a in addresses}
