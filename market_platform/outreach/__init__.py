"""Outreach: subscribers, messages from templates, the outbox, channels, email verification.

Plain Python, no Dagster. The outbox makes sending at most once per message key; the
channels (SMTP, Telegram, WhatsApp) say for every failure whether the message may have
reached the server; the verifier checks addresses by syntax, DNS and an SMTP probe.
"""
