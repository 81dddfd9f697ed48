"""An SMTP server (aiosmtpd) with scripted replies, for the channel and verifier tests.

Rules (JSON, re-read when the file changes; addresses lower case, "@domain" for a domain):

* ``strict``: {"@domain": ["anna", ...]}: only these local parts exist, others get 550
* ``greylist``: {"addr or @domain": n}: the first n RCPTs get 451 4.7.1
* ``tempfail``: {"addr or @domain": n}: the first n RCPTs get 450
* ``drop_rcpt``: ["addr or @domain"]: the connection is cut at RCPT without a reply
* ``slow_rcpt``: {"@domain": seconds}: RCPT answers after a delay
* ``refuse_rcpt``: ["addr or @domain"]: RCPT gets 554 (a policy refusal, not "no user")
* ``ehlo_reply``: "554 ...": EHLO is refused (a server refusing probes)
* ``every_mail_421`` / ``every_mail_drop`` / ``every_data_451``: every n-th MAIL or DATA
* ``stall_after``: once n messages are stored, MAIL FROM is never answered

Events go to the record file: ``rcpt`` (with code), ``data`` (Message-ID, recipients),
``close`` per session, so tests can count deliveries and connections per domain.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import signal
import threading
from email.parser import BytesHeaderParser

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP

from scripted import Record, Script, ready

_sessions = itertools.count(1)


class Handler:
    def __init__(self, script: Script, record: Record):
        self.script = script
        self.record = record
        self.stored = 0

    def _match(self, table, address: str):
        if not table:
            return None
        domain = "@" + address.rpartition("@")[2]
        for key in (address, domain):
            if key in table:
                return table[key] if isinstance(table, dict) else True
        return None

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        session.number = getattr(session, "number", None) or next(_sessions)
        reply = self.script.refresh().get("ehlo_reply")
        return [reply] if reply else responses

    async def handle_MAIL(self, server, session, envelope, address, options):
        rules = self.script.refresh()
        stall = rules.get("stall_after")
        if stall is not None and self.stored >= int(stall):
            self.record.write(event="stalled", stage="MAIL")
            await asyncio.sleep(3600)
        if self.script.every("every_mail_drop"):
            self.record.write(event="drop", stage="MAIL")
            server.transport.abort()
            return "421 4.4.2 dropped"
        if self.script.every("every_mail_421"):
            asyncio.get_running_loop().call_later(0.01, server.transport.close)
            return "421 4.3.2 service not available, closing channel"
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, options):
        rules = self.script.refresh()
        address_lc = address.lower()
        local, _, domain = address_lc.rpartition("@")
        number = getattr(session, "number", None) or next(_sessions)
        session.number = number
        code = await self._rcpt_code(server, rules, address_lc, local, domain)
        self.record.write(event="rcpt", session=number, domain=domain, rcpt=address_lc,
                          code=int(code[:3]))
        if code.startswith("250"):
            envelope.rcpt_tos.append(address)
        return code

    async def _rcpt_code(self, server, rules, address, local, domain) -> str:
        delay = self._match(rules.get("slow_rcpt"), address)
        if delay:
            await asyncio.sleep(float(delay))
        if self._match(rules.get("drop_rcpt"), address):
            server.transport.abort()
            return "421 4.4.2 dropped"
        grey = self._match(rules.get("greylist"), address)
        if grey and self.script.first("greylist", address, int(grey)):
            return "451 4.7.1 greylisted, try again later"
        temp = self._match(rules.get("tempfail"), address)
        if temp and self.script.first("tempfail", address, int(temp)):
            return "450 4.2.1 mailbox busy"
        if self._match(rules.get("refuse_rcpt"), address):
            return "554 5.7.1 probes are not welcome here"
        known = (rules.get("strict") or {}).get("@" + domain)
        if known is not None and local not in known:
            return "550 5.1.1 no such user here"
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.script.every("every_data_451"):
            return "451 4.3.0 local error, try again"
        headers = BytesHeaderParser().parsebytes(envelope.content)
        self.stored += 1
        self.record.write(
            event="data", session=getattr(session, "number", 0),
            message_id=headers.get("Message-ID", ""), rcpt=[r.lower() for r in envelope.rcpt_tos],
            subject=str(headers.get("Subject", "")), size=len(envelope.content),
            multipart=headers.get_content_type().startswith("multipart/"),
        )
        return f"250 2.0.0 queued as {self.stored}"


class RecordingSMTP(SMTP):
    def connection_lost(self, error):
        number = getattr(self.session, "number", None) if self.session else None
        if number is not None:
            self.event_handler.record.write(event="close", session=number)
        super().connection_lost(error)


class StubController(Controller):
    def factory(self):
        return RecordingSMTP(self.handler, enable_SMTPUTF8=True, hostname="stub.localhost",
                             ident="stub")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--script", required=True)
    parser.add_argument("--record", required=True)
    args = parser.parse_args()
    try:
        import uvloop
        loop = uvloop.new_event_loop()
    except ImportError:
        loop = asyncio.new_event_loop()
    handler = Handler(Script(args.script), Record(args.record))
    controller = StubController(handler, hostname="127.0.0.1", port=args.port, loop=loop)
    controller.start()
    ready(args.port)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    main()
