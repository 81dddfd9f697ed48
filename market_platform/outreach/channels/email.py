"""Email over SMTP (aiosmtplib), with a pool of reused connections to one relay.

One transaction per message: MAIL FROM, RCPT TO, then the claim, then DATA. Everything
before DATA can be undone (RSET, or a dropped connection discards it), so a failure there is
safe to retry; a server that vanishes after the message's final dot without answering may
have taken it, which makes the send ``uncertain``. Replies 421/450/451/452 mean "try later",
other 4xx too; 5xx replies are final. STARTTLS follows ``SMTP_STARTTLS``: ``auto`` upgrades
when the server offers it, ``require`` refuses to send in clear, ``off`` never upgrades.
"""

from __future__ import annotations

import asyncio
import hashlib
import mimetypes
from email.message import EmailMessage
from email.policy import SMTP, SMTPUTF8
from email.utils import formatdate
from pathlib import Path

import aiosmtplib

from market_platform.outreach.channels.base import Claim, Outbound, Outcome
from market_platform.outreach.config import OutreachConfig
from market_platform.outreach.masking import scrub

#: RCPT replies meaning the mailbox does not exist or may not receive: the subscriber's
#: address is marked rejected, so that later messages are not even tried.
MAILBOX_REJECTED = (550, 551, 553)
#: Distinct message bodies kept built at once (see ``EmailChannel._shared``).
_SHARED_BODIES = 256
_STARTTLS = {"auto": None, "require": True, "off": False}


class _Connection:
    def __init__(self, smtp: aiosmtplib.SMTP):
        self.smtp = smtp
        self.messages = 0


class EmailChannel:
    name = "email"

    def __init__(self, config: OutreachConfig):
        self.config = config
        self._idle: asyncio.Queue[_Connection] = asyncio.Queue()
        self._slots = asyncio.Semaphore(max(1, config.smtp_connections))
        self._attachments: dict[str, tuple[bytes, str, str]] = {}
        self._bodies: dict[tuple, bytes] = {}
        self.connections_opened = 0

    def domain(self, recipient: str) -> str:
        return recipient.rpartition("@")[2].lower()

    async def send(self, message: Outbound, claim: Claim) -> Outcome:
        async with self._slots:
            try:
                connection = await self._checkout()
            except aiosmtplib.SMTPConnectResponseError as error:
                reason = f"SMTP relay refused the connection: {error.code} {scrub(error.message)}"
                return Outcome.later(reason[:250], False, channel_down=True)
            except aiosmtplib.SMTPException as error:
                if "STARTTLS" in str(error) or "starttls" in str(error).lower():
                    return Outcome.later(f"SMTP relay: {scrub(error)}", False, channel_down=True)
                return Outcome.later(f"SMTP relay unreachable: {scrub(error)}", False)
            except OSError as error:
                return Outcome.later(f"SMTP relay unreachable: {error.strerror or error}", False)
            outcome = await self._transaction(connection, message, claim)
            self._checkin(connection)
            return outcome

    async def _transaction(self, connection: _Connection, message: Outbound,
                           claim: Claim) -> Outcome:
        smtp = connection.smtp
        utf8 = not (message.recipient.isascii() and self.config.sender_address.isascii())
        options = ["SMTPUTF8"] if utf8 else []
        encoding = "utf-8" if utf8 else "ascii"
        stage, claimed = "MAIL", False
        try:
            content = self._build(message, utf8)
        except OSError as error:
            return Outcome.final(f"attachment unreadable: {error.strerror or error}", False)
        try:
            await smtp.mail(self.config.sender_address, options=options, encoding=encoding)
            stage = "RCPT"
            await smtp.rcpt(message.recipient, encoding=encoding)
            if not await claim():
                await smtp.rset()
                return Outcome.lost()
            claimed, stage = True, "DATA"
            reply = await smtp.data(content)
            connection.messages += 1
            return Outcome.delivered(provider_id=scrub(reply.message)[:200])
        except aiosmtplib.SMTPResponseException as error:
            await self._reset(smtp)
            return self._reply_outcome(error.code, error.message, stage, claimed)
        except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError,
                ConnectionError) as error:
            smtp.close()
            if claimed:
                return Outcome.uncertain(f"SMTP connection lost during DATA: {scrub(error)}")
            return Outcome.later(f"SMTP connection lost at {stage}: {scrub(error)}", False)
        except aiosmtplib.SMTPNotSupported as error:
            await self._reset(smtp)
            return Outcome.final(f"SMTP: {scrub(error)}", claimed)

    def _reply_outcome(self, code: int, text: str, stage: str, claimed: bool) -> Outcome:
        reason = f"SMTP {code} at {stage}: {scrub(text)[:200]}"
        if 400 <= code < 500:
            return Outcome.later(reason, claimed)
        subscriber = None
        if stage == "RCPT" and code in MAILBOX_REJECTED:
            subscriber = ("rejected", reason)
        return Outcome.final(reason, claimed, subscriber_status=subscriber)

    async def _reset(self, smtp: aiosmtplib.SMTP) -> None:
        if smtp.is_connected:
            try:
                await smtp.rset()
            except aiosmtplib.SMTPException:
                smtp.close()

    async def _checkout(self) -> _Connection:
        while not self._idle.empty():
            connection = self._idle.get_nowait()
            if connection.smtp.is_connected:
                return connection
        config = self.config
        smtp = aiosmtplib.SMTP(
            hostname=config.smtp_host,
            port=config.smtp_port,
            timeout=config.smtp_timeout,
            start_tls=_STARTTLS[config.smtp_starttls],
            username=config.smtp_user or None,
            password=config.smtp_password or None,
        )
        await smtp.connect()
        self.connections_opened += 1
        return _Connection(smtp)

    def _checkin(self, connection: _Connection) -> None:
        smtp = connection.smtp
        if smtp.is_connected and connection.messages < self.config.smtp_messages_per_connection:
            self._idle.put_nowait(connection)
        elif smtp.is_connected:
            asyncio.ensure_future(_quit(smtp))

    async def aclose(self) -> None:
        while not self._idle.empty():
            await _quit(self._idle.get_nowait().smtp)

    def _build(self, message: Outbound, utf8: bool) -> bytes:
        policy = SMTPUTF8 if utf8 else SMTP
        # Only To, Date and Message-ID differ between the subscribers of one alert or digest;
        # the rest (the costly part: header parsing, body encoding) is built once.
        own = (
            ("To", message.recipient),
            ("Date", formatdate(usegmt=True)),
            ("Message-ID", message_id(message.key, self.config.sender_address)),
        )
        return b"".join(policy.fold_binary(name, value) for name, value in own) + self._shared(
            message, utf8)

    def _shared(self, message: Outbound, utf8: bool) -> bytes:
        key = (message.subject, message.body, message.language, message.attachment, utf8)
        shared = self._bodies.get(key)
        if shared is None:
            mail = EmailMessage()
            mail["From"] = self.config.smtp_from
            mail["Subject"] = message.subject
            mail["Auto-Submitted"] = "auto-generated"
            mail.set_content(message.body)
            if message.attachment:
                data, maintype, subtype = self._attachment(message.attachment)
                mail.add_attachment(data, maintype=maintype, subtype=subtype,
                                    filename=Path(message.attachment).name)
            # Last: set_content clears every Content-* header, add_attachment moves them into
            # the first part.
            mail["Content-Language"] = message.language
            shared = mail.as_bytes(policy=SMTPUTF8 if utf8 else SMTP)
            if len(self._bodies) >= _SHARED_BODIES:
                self._bodies.clear()
            self._bodies[key] = shared
        return shared

    def _attachment(self, path: str) -> tuple[bytes, str, str]:
        if path not in self._attachments:
            kind = mimetypes.guess_type(path)[0] or "application/octet-stream"
            maintype, subtype = kind.split("/", 1)
            self._attachments[path] = (Path(path).read_bytes(), maintype, subtype)
        return self._attachments[path]


def message_id(key: str, sender: str) -> str:
    """The same Message-ID for every attempt of one message, so receivers can drop copies."""
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    return f"<{digest}@{sender.rpartition('@')[2] or 'localhost'}>"


async def _quit(smtp: aiosmtplib.SMTP) -> None:
    try:
        await smtp.quit()
    except aiosmtplib.SMTPException:
        smtp.close()
