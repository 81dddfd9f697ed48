"""Messages from the Jinja2 templates in ``templates/``, one file per kind and language.

A template sets ``subject`` with ``{% set subject %}``; what it prints is the body. Numbers
and dates follow the language (``1.234,5`` and ``Dienstag`` in German). The body is plain
text: each channel escapes it for its own format.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import date

import jinja2

from market_platform.outreach.subscribers import LANGUAGES

KINDS = ("busy_alert", "weekly_digest")

_WEEKDAYS = {
    "de": ["Montag", "Dienstag", "Mittwoch", "Donnerstag", "Freitag", "Samstag", "Sonntag"],
    "en": ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"],
}


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str


@functools.cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("market_platform.outreach", "templates"),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        # Plain text: the channels escape for HTML or Markdown themselves.
        autoescape=False,
    )
    env.filters.update(num=_num, date=_date, weekday=_weekday, signed=_signed)
    return env


def render(kind: str, language: str, **values) -> Rendered:
    if kind not in KINDS:
        raise ValueError(f"unknown message kind {kind!r}; known: {KINDS}")
    if language not in LANGUAGES:
        raise ValueError(f"unknown language {language!r}; known: {LANGUAGES}")
    template = environment().get_template(f"{kind}.{language}.txt")
    module = template.make_module({**values, "language": language})
    return Rendered(subject=str(module.subject).strip(), text=str(module).strip() + "\n")


@jinja2.pass_context
def _num(context, value, digits: int = 0) -> str:
    text = f"{float(value):,.{digits}f}"
    if context.get("language") == "de":
        text = text.replace(",", "\0").replace(".", ",").replace("\0", ".")
    return text


@jinja2.pass_context
def _date(context, value: date) -> str:
    if context.get("language") == "de":
        return f"{value.day}.{value.month}.{value.year}"
    return value.isoformat()


@jinja2.pass_context
def _weekday(context, value: date) -> str:
    return _WEEKDAYS[context.get("language", "en")][value.weekday()]


def _signed(value) -> str:
    return f"{int(value):+d}"
