"""Outreach settings from environment variables; the defaults are documented in docs.

Secrets (``SMTP_PASSWORD``, ``TELEGRAM_BOT_TOKEN``, ``WHATSAPP_TOKEN``) are read here and
nowhere else; ``OutreachConfig.describe`` gives the settings without them, for metadata.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields

STARTTLS_POLICIES = ("auto", "require", "off")
SECRETS = ("smtp_password", "telegram_token", "whatsapp_token")


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default).strip() or default


@dataclass(frozen=True)
class OutreachConfig:
    smtp_host: str = "localhost"
    smtp_port: int = 587
    smtp_user: str = ""
    smtp_password: str = field(default="", repr=False)
    smtp_from: str = "Market Platform <noreply@localhost>"
    smtp_starttls: str = "auto"
    smtp_timeout: float = 30.0
    smtp_connections: int = 20
    smtp_messages_per_connection: int = 100

    telegram_url: str = "https://api.telegram.org"
    telegram_token: str = field(default="", repr=False)
    telegram_parse_mode: str = "HTML"
    whatsapp_url: str = "https://graph.facebook.com/v21.0"
    whatsapp_token: str = field(default="", repr=False)
    whatsapp_phone_id: str = ""
    http_timeout: float = 30.0
    http_connections: int = 32

    rate_email: str = "20/second"
    rate_email_domain: str = "5/second"
    rate_telegram: str = "25/second"
    rate_whatsapp: str = "50/second"
    concurrency: int = 200
    max_attempts: int = 5
    retry_budget_seconds: float = 300.0
    claim_lease_seconds: float = 900.0

    busy_share: float = 0.8
    busy_factor: float = 1.25

    verify_rate_per_domain: str = "2/second"
    verify_smtp_port: int = 25
    verify_helo: str = "localhost"
    verify_mail_from: str = ""
    verify_smtp_timeout: float = 10.0
    verify_dns_timeout: float = 5.0
    verify_dns_servers: str = ""
    verify_concurrency: int = 50
    verify_ttl_hours: float = 720.0
    verify_unknown_ttl_hours: float = 24.0

    def __post_init__(self):
        if self.smtp_starttls not in STARTTLS_POLICIES:
            raise ValueError(
                f"SMTP_STARTTLS: {self.smtp_starttls!r} is not one of {STARTTLS_POLICIES}"
            )
        if self.telegram_parse_mode not in ("HTML", "MarkdownV2"):
            raise ValueError(
                f"TELEGRAM_PARSE_MODE: {self.telegram_parse_mode!r} is not HTML or MarkdownV2"
            )

    @property
    def sender_address(self) -> str:
        """The bare address of ``smtp_from`` (``"Name <a@b>"`` gives ``a@b``)."""
        text = self.smtp_from
        if "<" in text and text.endswith(">"):
            return text[text.index("<") + 1 : -1]
        return text

    @property
    def probe_sender(self) -> str:
        return self.verify_mail_from or self.sender_address

    def describe(self) -> dict[str, str]:
        """Every setting as text, secrets replaced by whether they are set."""
        out = {}
        for item in fields(self):
            value = getattr(self, item.name)
            out[item.name] = ("set" if value else "unset") if item.name in SECRETS else str(value)
        return out

    @classmethod
    def from_env(cls, **overrides) -> OutreachConfig:
        values = {}
        for item in fields(cls):
            name = ENV_NAMES[item.name]
            default = item.default
            raw = _env(name, str(default))
            try:
                values[item.name] = type(default)(raw)
            except ValueError as error:
                raise ValueError(f"{name}: {raw!r} is not a {type(default).__name__}") from error
        return cls(**{**values, **overrides})


ENV_NAMES = {
    "smtp_host": "SMTP_HOST",
    "smtp_port": "SMTP_PORT",
    "smtp_user": "SMTP_USER",
    "smtp_password": "SMTP_PASSWORD",
    "smtp_from": "SMTP_FROM",
    "smtp_starttls": "SMTP_STARTTLS",
    "smtp_timeout": "SMTP_TIMEOUT",
    "smtp_connections": "SMTP_CONNECTIONS",
    "smtp_messages_per_connection": "SMTP_MESSAGES_PER_CONNECTION",
    "telegram_url": "TELEGRAM_API_URL",
    "telegram_token": "TELEGRAM_BOT_TOKEN",
    "telegram_parse_mode": "TELEGRAM_PARSE_MODE",
    "whatsapp_url": "WHATSAPP_API_URL",
    "whatsapp_token": "WHATSAPP_TOKEN",
    "whatsapp_phone_id": "WHATSAPP_PHONE_NUMBER_ID",
    "http_timeout": "OUTREACH_HTTP_TIMEOUT",
    "http_connections": "OUTREACH_HTTP_CONNECTIONS",
    "rate_email": "OUTREACH_RATE_EMAIL",
    "rate_email_domain": "OUTREACH_RATE_EMAIL_DOMAIN",
    "rate_telegram": "OUTREACH_RATE_TELEGRAM",
    "rate_whatsapp": "OUTREACH_RATE_WHATSAPP",
    "concurrency": "OUTREACH_CONCURRENCY",
    "max_attempts": "OUTREACH_MAX_ATTEMPTS",
    "retry_budget_seconds": "OUTREACH_RETRY_BUDGET_SECONDS",
    "claim_lease_seconds": "OUTREACH_CLAIM_LEASE_SECONDS",
    "busy_share": "BUSY_ALERT_SHARE",
    "busy_factor": "BUSY_ALERT_FACTOR",
    "verify_rate_per_domain": "VERIFY_RATE_PER_DOMAIN",
    "verify_smtp_port": "VERIFY_SMTP_PORT",
    "verify_helo": "VERIFY_HELO_NAME",
    "verify_mail_from": "VERIFY_MAIL_FROM",
    "verify_smtp_timeout": "VERIFY_SMTP_TIMEOUT",
    "verify_dns_timeout": "VERIFY_DNS_TIMEOUT",
    "verify_dns_servers": "VERIFY_DNS_SERVERS",
    "verify_concurrency": "VERIFY_CONCURRENCY",
    "verify_ttl_hours": "VERIFY_CACHE_TTL_HOURS",
    "verify_unknown_ttl_hours": "VERIFY_UNKNOWN_TTL_HOURS",
}


def subscribers_file() -> str:
    """A CSV of subscribers to load; empty means the ``subscribers`` table is the source."""
    return os.environ.get("OUTREACH_SUBSCRIBERS_FILE", "").strip()
