"""Personal data in logs, metadata and error texts only ever appears masked.

``mask_email("anna.schmidt@example.de")`` gives ``a***@e***.de``: enough for a person who
knows the list to recognise a row, not enough to write to it. ``scrub`` removes addresses,
phone numbers and long digit runs (chat ids) from free text such as a server's reply.
"""

from __future__ import annotations

import re

_EMAIL = re.compile(r"[^\s<>\"'@,;:]+@[^\s<>\"'@,;:]+")
_PHONE = re.compile(r"\+?\d[\d \-/]{6,}\d")


def mask_email(address: str | None) -> str:
    if not address:
        return ""
    local, _, domain = address.rpartition("@")
    if not local:
        return _mask_token(address)
    labels = domain.split(".")
    tld = labels[-1] if len(labels) > 1 else ""
    masked_domain = _mask_token(labels[0]) + (f".{tld}" if tld else "")
    return f"{_mask_token(local)}@{masked_domain}"


def mask_number(value: str | int | None) -> str:
    """A phone number or chat id with all but its first and last two digits hidden."""
    if value is None or value == "":
        return ""
    text = str(value)
    if len(text) <= 5:
        return "*" * len(text)
    return text[:3] + "*" * (len(text) - 5) + text[-2:]


def mask_recipient(channel: str, address: str | None) -> str:
    return mask_email(address) if channel == "email" else mask_number(address)


def scrub(text: str) -> str:
    """``text`` with every email address and phone-number-like digit run masked."""
    text = _EMAIL.sub(lambda m: mask_email(m.group(0)), str(text))
    return _PHONE.sub(lambda m: mask_number(m.group(0)), text)


def _mask_token(token: str) -> str:
    return f"{token[:1]}***" if token else "***"
