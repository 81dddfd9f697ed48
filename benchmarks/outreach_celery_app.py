"""The plain-Celery baseline of benchmarks/outreach_bench.py: one task per message.

Each worker thread keeps its own SMTP connection and HTTP client (reused across tasks), so
the baseline does the same sends as the outreach worker without outbox, claims or limits.
Configured by environment variables set by the benchmark.
"""

from __future__ import annotations

import os
import smtplib
import threading
from email.message import EmailMessage

import httpx
from celery import Celery

app = Celery("outreach_bench", broker=os.environ["BENCH_BROKER"],
             backend=os.environ["BENCH_BACKEND"])
app.conf.update(task_acks_late=False, worker_prefetch_multiplier=16, result_expires=600,
                task_default_queue=os.environ.get("BENCH_QUEUE", "outreach-bench"))
_local = threading.local()


def _smtp() -> smtplib.SMTP:
    connection = getattr(_local, "smtp", None)
    if connection is None:
        connection = smtplib.SMTP("127.0.0.1", int(os.environ["BENCH_SMTP_PORT"]), timeout=30)
        connection.ehlo()
        _local.smtp = connection
    return connection


def _http() -> httpx.Client:
    client = getattr(_local, "http", None)
    if client is None:
        client = httpx.Client(base_url=os.environ["BENCH_HTTP_URL"], timeout=30)
        _local.http = client
    return client


@app.task(name="outreach_bench.send")
def send(channel: str, recipient: str, subject: str, body: str) -> int:
    if channel == "email":
        mail = EmailMessage()
        mail["From"], mail["To"], mail["Subject"] = "bench@platform.example", recipient, subject
        mail.set_content(body)
        try:
            _smtp().send_message(mail)
        except smtplib.SMTPServerDisconnected:
            _local.smtp = None
            _smtp().send_message(mail)
        return 250
    if channel == "telegram":
        response = _http().post("/botTEST-TOKEN/sendMessage",
                                json={"chat_id": recipient, "text": f"{subject}\n\n{body}"})
    else:
        response = _http().post("/v21.0/1055/messages", headers={
            "Authorization": "Bearer WA-TOKEN"}, json={
            "messaging_product": "whatsapp", "to": recipient, "type": "text",
            "text": {"body": f"{subject}\n\n{body}"}})
    return response.status_code
