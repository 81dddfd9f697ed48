"""Telegram Bot API and WhatsApp Cloud API over HTTPS (httpx), base URLs configurable.

Both take a JSON POST per message part. A request that provably never reached the server
(no connection, not fully written) is retried; one that was written but got no answer is
``uncertain`` and is not repeated, as neither API takes an idempotency key. 429 pauses the
whole channel for the server's ``retry_after`` (Telegram's JSON) or ``Retry-After`` header.
"""

from __future__ import annotations

import asyncio

import httpx

from market_platform.outreach.channels import text as chat
from market_platform.outreach.channels.base import Claim, Outbound, Outcome, Pause
from market_platform.outreach.config import OutreachConfig
from market_platform.outreach.masking import scrub

#: Errors raised before the request was completely written: the server cannot act on it.
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.WriteError,
            httpx.WriteTimeout, httpx.UnsupportedProtocol)
DEFAULT_BACKOFF = 5.0


class _HttpChannel:
    name = ""
    limit = 4096

    def __init__(self, config: OutreachConfig, base_url: str, headers: dict | None = None):
        self.config = config
        self.pause = Pause()
        # One client per connection, not one client with a pool of N: httpcore checks every
        # pooled connection for expiry (a poll of its socket) when a request starts and again
        # when a response is closed, which made one pool of 16 cost 2.1 ms of CPU per request
        # against 0.7 ms for 16 clients of one connection each (benchmarks/RESULTS-outreach.md).
        self.clients = [
            httpx.AsyncClient(
                base_url=base_url.rstrip("/"),
                headers=headers or {},
                timeout=httpx.Timeout(config.http_timeout),
                limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
            )
            for _ in range(max(1, config.http_connections))
        ]
        self.client = self.clients[0]
        # Clients free for a request: a request waits here, never queued inside httpx, so a
        # client taken from here has its connection to itself.
        self._idle: asyncio.Queue[httpx.AsyncClient] = asyncio.Queue()
        for client in self.clients:
            self._idle.put_nowait(client)
        self.requests = 0

    def domain(self, recipient: str) -> str:
        return self.client.base_url.host

    def parts(self, message: Outbound) -> list[str]:
        raise NotImplementedError

    async def post(self, client: httpx.AsyncClient, part: str,
                   message: Outbound) -> httpx.Response:
        raise NotImplementedError

    def judge(self, response: httpx.Response) -> tuple[str, str, float | None, str | None]:
        """("ok"|"later"|"final"|"subscriber"|"down", reason, retry_after, provider id)."""
        raise NotImplementedError

    async def send(self, message: Outbound, claim: Claim) -> Outcome:
        parts = self.parts(message)
        sent, ids, claimed = message.parts_sent, [], False
        for part in parts[sent:]:
            await self.pause.wait()
            client = await self._idle.get()
            try:
                # Claimed only once a connection is ours: the request leaves right after.
                if not claimed:
                    if not await claim():
                        return Outcome.lost()
                    claimed = True
                try:
                    self.requests += 1
                    response = await self.post(client, part, message)
                except NOT_SENT as error:
                    return Outcome.later(f"{self.name}: not sent, {type(error).__name__}",
                                         True, parts_sent=sent)
                except httpx.HTTPError as error:
                    return Outcome.uncertain(
                        f"{self.name}: no answer after the request was sent "
                        f"({type(error).__name__})", parts_sent=sent)
            finally:
                self._idle.put_nowait(client)
            verdict, reason, after, provider_id = self.judge(response)
            reason = f"{self.name} {response.status_code}: {scrub(reason)[:200]}"
            if verdict == "ok":
                sent += 1
                ids.append(provider_id or "")
                continue
            if verdict == "later":
                if response.status_code == 429:
                    self.pause.hold(after or DEFAULT_BACKOFF)
                return Outcome.later(reason, True, after, parts_sent=sent)
            if verdict == "down":
                return Outcome.later(reason, True, parts_sent=sent, channel_down=True)
            if verdict == "subscriber":
                status = "blocked" if response.status_code == 403 else "invalid"
                return Outcome.final(reason, True, subscriber_status=(status, reason),
                                     parts_sent=sent)
            return Outcome.final(reason, True, parts_sent=sent)
        return Outcome.delivered(",".join(ids)[:200] or None, parts_sent=sent)

    async def aclose(self) -> None:
        for client in self.clients:
            await client.aclose()


class TelegramChannel(_HttpChannel):
    """``sendMessage`` of the Telegram Bot API; text escaped for ``TELEGRAM_PARSE_MODE``."""

    name = "telegram"
    limit = chat.TELEGRAM_LIMIT

    def __init__(self, config: OutreachConfig):
        super().__init__(config, config.telegram_url)
        self._path = f"/bot{config.telegram_token}/sendMessage"
        self.parse_mode = config.telegram_parse_mode

    def parts(self, message: Outbound) -> list[str]:
        heading, _ = chat.chat_text(message.subject, "", self.parse_mode)
        escape = chat.escape_html if self.parse_mode == "HTML" else chat.escape_markdown_v2
        return chat.split(message.body, self.limit, escape, heading)

    async def post(self, client: httpx.AsyncClient, part: str,
                   message: Outbound) -> httpx.Response:
        payload = {"chat_id": message.recipient, "text": part, "parse_mode": self.parse_mode,
                   "link_preview_options": {"is_disabled": True}}
        return await client.post(self._path, json=payload)

    def judge(self, response: httpx.Response):
        body = _json(response)
        description = str(body.get("description") or response.reason_phrase)
        code = response.status_code
        if code == 200 and body.get("ok"):
            return "ok", "", None, str(body.get("result", {}).get("message_id", ""))
        if code == 429:
            after = body.get("parameters", {}).get("retry_after")
            return "later", description, float(after) if after is not None else None, None
        if code >= 500:
            return "later", description, None, None
        if code in (401, 404):
            return "down", f"{description} (check TELEGRAM_BOT_TOKEN and the URL)", None, None
        if code == 403 or (code == 400 and "chat not found" in description.lower()):
            return "subscriber", description, None, None
        return "final", description, None, None


class WhatsAppChannel(_HttpChannel):
    """Text messages of the WhatsApp Cloud API (``/<phone-number-id>/messages``).

    WhatsApp has no escape syntax: the text goes as written, with the subject in ``*bold*``.
    """

    name = "whatsapp"
    limit = chat.WHATSAPP_LIMIT
    #: Cloud API error codes that mean "too fast, try later".
    THROTTLED = {4, 80007, 130429, 131048, 131056}
    #: Codes about the recipient: the number cannot receive (or is not on WhatsApp).
    RECIPIENT = {131026, 131030, 131021}

    def __init__(self, config: OutreachConfig):
        super().__init__(config, config.whatsapp_url,
                         {"Authorization": f"Bearer {config.whatsapp_token}"})
        self._path = f"/{config.whatsapp_phone_id}/messages"

    def parts(self, message: Outbound) -> list[str]:
        return chat.split(message.body, self.limit, heading=f"*{message.subject}*")

    async def post(self, client: httpx.AsyncClient, part: str,
                   message: Outbound) -> httpx.Response:
        payload = {"messaging_product": "whatsapp", "recipient_type": "individual",
                   "to": message.recipient.lstrip("+"), "type": "text",
                   "text": {"preview_url": False, "body": part}}
        return await client.post(self._path, json=payload)

    def judge(self, response: httpx.Response):
        body = _json(response)
        error = body.get("error") or {}
        code = response.status_code
        description = str(error.get("message") or response.reason_phrase)
        if code == 200 and body.get("messages"):
            return "ok", "", None, str(body["messages"][0].get("id", ""))
        after = _retry_after(response.headers.get("retry-after"))
        if code == 429 or error.get("code") in self.THROTTLED:
            return "later", description, after, None
        if code >= 500:
            return "later", description, after, None
        if code == 401 or error.get("code") == 190:
            return "down", f"{description} (check WHATSAPP_TOKEN)", None, None
        if error.get("code") in self.RECIPIENT:
            return "subscriber", f"{error.get('code')} {description}", None, None
        return "final", f"{error.get('code', '')} {description}".strip(), None, None


def _json(response: httpx.Response) -> dict:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _retry_after(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
