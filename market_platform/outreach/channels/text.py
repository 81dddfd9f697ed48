"""Chat text: escaping for Telegram's parse modes and splitting at a channel's length limit.

Telegram counts a message's length in UTF-16 code units after parsing entities; counting the
escaped text in UTF-16 units is never less, so a part that fits here fits there. Splits fall
on paragraph breaks, then line breaks, then spaces; only a single word longer than the limit
is cut inside.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable

TELEGRAM_LIMIT = 4096
WHATSAPP_LIMIT = 4096

_MARKDOWN_V2_SPECIAL = re.compile(r"([_*\[\]()~`>#+\-=|{}.!\\])")


def escape_html(text: str) -> str:
    return html.escape(text, quote=False)


def escape_markdown_v2(text: str) -> str:
    """Every character Telegram's MarkdownV2 treats specially, preceded by a backslash."""
    return _MARKDOWN_V2_SPECIAL.sub(r"\\\1", text)


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def chat_text(subject: str, body: str, parse_mode: str | None) -> tuple[str, str]:
    """The heading (bold in the parse mode) and the escaped body, both ready to send."""
    if parse_mode == "HTML":
        return f"<b>{escape_html(subject)}</b>", escape_html(body)
    if parse_mode == "MarkdownV2":
        return f"*{escape_markdown_v2(subject)}*", escape_markdown_v2(body)
    return subject, body


def split(body: str, limit: int, escape: Callable[[str], str] = lambda s: s,
          heading: str = "") -> list[str]:
    """``heading`` and ``body`` as parts of at most ``limit`` units once escaped.

    The body is split as plain text and each part escaped afterwards, so that no escape
    sequence or HTML entity is ever cut in two. The heading starts the first part.
    """
    head = f"{heading}\n\n" if heading else ""
    if utf16_len(head) >= limit:
        raise ValueError("the heading alone exceeds the length limit")
    parts: list[str] = []
    current = ""
    for piece in _pieces(body, limit, escape, limit - utf16_len(head)):
        budget = limit - (utf16_len(head) if not parts else 0)
        candidate = current + piece
        if current and utf16_len(escape(candidate.rstrip())) > budget:
            parts.append(escape(current.rstrip()))
            current = piece.lstrip("\n")
        else:
            current = candidate
    if current.strip() or not parts:
        parts.append(escape(current.rstrip()))
    parts[0] = head + parts[0]
    return parts


def _pieces(text: str, limit: int, escape, first_limit: int) -> list[str]:
    """``text`` cut into pieces (keeping their separators) none of which exceeds the limit."""
    budget = min(limit, first_limit)
    out: list[str] = []
    for separator in ("\n\n", "\n", " "):
        if utf16_len(escape(text)) <= budget:
            break
        chunks = text.split(separator)
        if len(chunks) == 1:
            continue
        for index, chunk in enumerate(chunks):
            suffix = separator if index < len(chunks) - 1 else ""
            out.extend(_pieces(chunk + suffix, limit, escape, first_limit))
        return out
    if utf16_len(escape(text)) <= budget:
        return [text]
    # A single word longer than the limit: cut it where its escaped form fits.
    cut, pieces = text, []
    while cut:
        size = len(cut)
        while utf16_len(escape(cut[:size])) > budget:
            size = max(1, size * budget // (utf16_len(escape(cut[:size])) + 1))
        pieces.append(cut[:size])
        cut = cut[size:]
    return pieces
