"""An HTTP/1.1 server that answers like the Telegram Bot API and the WhatsApp Cloud API.

Rules (JSON, re-read when the file changes); "to" is a Telegram chat id or a WhatsApp number:

* ``telegram_token`` / ``whatsapp_token``: the credentials accepted (others get 401)
* ``blocked``: [to]: Telegram 403 "bot was blocked by the user"
* ``not_found``: [to]: Telegram 400 "chat not found"; WhatsApp error 131026
* ``rate``: {to: [n, retry_after]}: the first n requests for it get 429
* ``fail5xx``: {to: n}: the first n requests for it get 502
* ``every_429`` (with ``retry_after``), ``every_5xx``: every n-th request overall
* ``drop``: {to: n}: the first n requests are read, not acted on, and the connection cut
* ``stall_after``: once n messages were accepted, requests are taken but never answered

Every request is recorded: ``{"api", "to", "text", "status"}``; status 200 (accepted) or
"stalled" (taken, never answered) count as received, 429/5xx/4xx and "dropped" do not.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import signal

from scripted import Record, Script, ready

_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
            404: "Not Found", 429: "Too Many Requests", 502: "Bad Gateway"}


class Api:
    def __init__(self, script: Script, record: Record):
        self.script = script
        self.record = record
        self.accepted = 0
        self.message_ids = itertools.count(1000)

    async def handle(self, reader, writer):
        try:
            while True:
                request = await _read_request(reader)
                if request is None:
                    break
                method, path, headers, body = request
                reply = await self.route(method, path, headers, body)
                if reply is DROP:
                    writer.transport.abort()
                    return
                status, payload, extra = reply
                data = json.dumps(payload).encode()
                head = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}",
                        "Content-Type: application/json", f"Content-Length: {len(data)}"]
                head += [f"{k}: {v}" for k, v in extra.items()]
                writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + data)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            # A client that went away, or the server stopping: nothing to answer.
            pass
        finally:
            writer.close()

    async def route(self, method, path, headers, body):
        rules = self.script.refresh()
        if method == "GET" and path == "/_stats":
            return 200, {"accepted": self.accepted}, {}
        try:
            payload = json.loads(body or b"{}")
        except ValueError:
            return 400, {"ok": False, "description": "Bad Request: invalid JSON"}, {}
        if path.endswith("/sendMessage"):
            return await self.telegram(rules, path, payload)
        if path.endswith("/messages"):
            return await self.whatsapp(rules, headers, payload)
        return 404, {"ok": False, "error_code": 404, "description": "Not Found"}, {}

    async def telegram(self, rules, path, payload):
        token = path.split("/")[1].removeprefix("bot")
        to, text = str(payload.get("chat_id")), payload.get("text", "")
        if token != rules.get("telegram_token", "TEST-TOKEN"):
            return self._log("telegram", to, text, 401,
                             {"ok": False, "error_code": 401, "description": "Unauthorized"})
        common = await self._common(rules, "telegram", to, text)
        if common is not None:
            return common
        if to in rules.get("blocked", []):
            return self._log("telegram", to, text, 403, {
                "ok": False, "error_code": 403,
                "description": "Forbidden: bot was blocked by the user"})
        if to in rules.get("not_found", []):
            return self._log("telegram", to, text, 400, {
                "ok": False, "error_code": 400, "description": "Bad Request: chat not found"})
        if len(text) > 4096:
            return self._log("telegram", to, text, 400, {
                "ok": False, "error_code": 400, "description": "Bad Request: message is too long"})
        self.accepted += 1
        return self._log("telegram", to, text, 200, {
            "ok": True, "result": {"message_id": next(self.message_ids), "chat": {"id": to}}})

    async def whatsapp(self, rules, headers, payload):
        to = str(payload.get("to"))
        text = (payload.get("text") or {}).get("body", "")
        if headers.get("authorization") != f"Bearer {rules.get('whatsapp_token', 'WA-TOKEN')}":
            return self._log("whatsapp", to, text, 401, {"error": {
                "message": "Invalid OAuth access token", "code": 190}})
        common = await self._common(rules, "whatsapp", to, text)
        if common is not None:
            return common
        if to in rules.get("not_found", []):
            return self._log("whatsapp", to, text, 400, {"error": {
                "message": "Message Undeliverable.", "code": 131026}})
        self.accepted += 1
        return self._log("whatsapp", to, text, 200, {
            "messaging_product": "whatsapp", "contacts": [{"input": to, "wa_id": to}],
            "messages": [{"id": f"wamid.{next(self.message_ids)}"}]})

    async def _common(self, rules, api, to, text):
        drop = (rules.get("drop") or {}).get(to)
        if drop and self.script.first("drop", to, int(drop)):
            self.record.write(api=api, to=to, text=text, status="dropped")
            return DROP
        stall = rules.get("stall_after")
        if stall is not None and self.accepted >= int(stall):
            self.record.write(api=api, to=to, text=text, status="stalled")
            await asyncio.sleep(3600)
        limited = (rules.get("rate") or {}).get(to)
        if limited and self.script.first("rate", to, int(limited[0])):
            return self._too_many(api, to, text, float(limited[1]))
        if self.script.every("every_429"):
            return self._too_many(api, to, text, float(rules.get("retry_after", 1)))
        failing = (rules.get("fail5xx") or {}).get(to)
        if (failing and self.script.first("fail5xx", to, int(failing))) or self.script.every(
                "every_5xx"):
            body = ({"ok": False, "error_code": 502, "description": "Bad Gateway"}
                    if api == "telegram" else {"error": {"message": "Bad Gateway", "code": 2}})
            return self._log(api, to, text, 502, body)
        return None

    def _too_many(self, api, to, text, after):
        if api == "telegram":
            return self._log(api, to, text, 429, {
                "ok": False, "error_code": 429,
                "description": f"Too Many Requests: retry after {after:g}",
                "parameters": {"retry_after": after}})
        return self._log(api, to, text, 429, {"error": {
            "message": "Rate limit hit", "code": 130429}}, {"Retry-After": f"{after:g}"})

    def _log(self, api, to, text, status, body, headers=None):
        self.record.write(api=api, to=to, text=text, status=status)
        return status, body, headers or {}


#: The reply "none at all": the connection is cut after the request was read.
DROP = object()


async def _read_request(reader):
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", 0))
    body = await reader.readexactly(length) if length else b""
    return method, path, headers, body


async def serve(script: str, record: str) -> None:
    api = Api(Script(script), Record(record))

    server = await asyncio.start_server(api.handle, "127.0.0.1", 0, backlog=1024)
    ready(server.sockets[0].getsockname()[1])
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--script", required=True)
    parser.add_argument("--record", required=True)
    args = parser.parse_args()
    try:
        import uvloop
        uvloop.run(serve(args.script, args.record))
    except ImportError:
        asyncio.run(serve(args.script, args.record))


if __name__ == "__main__":
    main()
