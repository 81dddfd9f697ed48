"""What to tell whom: the "busy tomorrow" alerts and the weekly digests.

Pure functions from tables (as DataFrames) and subscribers to ``Message`` objects; nothing is
sent or stored here. One message per subscriber, kind and period, whatever the number of
markets or regions it covers: its key ``<kind>:<period>:<subscriber_id>`` is what the outbox
keeps unique.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import pandas as pd

from market_platform.outreach.render import render
from market_platform.outreach.subscribers import Subscriber
from market_platform.regions.statistics import MARKET_TYPES

BUSY_ALERT = "busy_alert"
WEEKLY_DIGEST = "weekly_digest"

#: Market type names for the digest, per language.
TYPE_LABELS = {
    "de": {"supermarket": "Supermärkte", "convenience": "Kioske und Späti",
           "greengrocer": "Obst und Gemüse", "butcher": "Metzgereien", "bakery": "Bäckereien",
           "beverages": "Getränkemärkte", "chemist": "Drogerien",
           "department_store": "Kaufhäuser", "mall": "Einkaufszentren",
           "marketplace": "Marktplätze"},
    "en": {"supermarket": "supermarkets", "convenience": "convenience stores",
           "greengrocer": "greengrocers", "butcher": "butchers", "bakery": "bakeries",
           "beverages": "beverage stores", "chemist": "chemists",
           "department_store": "department stores", "mall": "malls",
           "marketplace": "marketplaces"},
}
LEVEL_LABELS = {"kreis": ("Kreis", "district"), "land": ("Land", "state"),
                "germany": ("Deutschland", "Germany")}


@dataclass(frozen=True)
class Message:
    key: str
    subscriber_id: str
    kind: str
    period: str
    channel: str
    language: str
    subject: str
    body: str
    attachment: str | None = None


def message_key(kind: str, period: str, subscriber_id: str) -> str:
    return f"{kind}:{period}:{subscriber_id}"


@dataclass(frozen=True)
class BusySite:
    site_id: str
    name: str
    kind: str
    peak: float
    peak_hour: str
    share: float | None
    usual_peak: float | None
    quiet_hours: list[str]


def busy_sites(
    forecasts: pd.DataFrame, sites: pd.DataFrame, day: date, share: float, factor: float
) -> dict[str, BusySite]:
    """Sites whose forecast for ``day`` (local time) crosses the threshold, by site id.

    With a capacity: the peak hour reaches ``share`` of it. Without: the peak is at least
    ``factor`` times the median daily peak of the other forecast days of that site.
    """
    meta = sites.set_index("site_id")
    busy = {}
    for site_id, rows in forecasts.groupby("site_id", sort=True):
        info = meta.loc[site_id] if site_id in meta.index else pd.Series(dtype=object)
        zone = info.get("timezone") or "Europe/Berlin"
        local = pd.to_datetime(rows["hour_utc"], utc=True).dt.tz_convert(zone)
        values = pd.Series(rows["forecast"].to_numpy(), index=local).sort_index()
        days = values.groupby(values.index.date)
        if day not in days.groups:
            continue
        tomorrow = days.get_group(day)
        peak_at = tomorrow.idxmax()
        peak = float(tomorrow.max())
        capacity = _number(info.get("capacity"))
        other_peaks = [float(v.max()) for d, v in days if d != day and len(v) >= 12]
        usual = float(pd.Series(other_peaks).median()) if other_peaks else None
        if capacity:
            site_share = peak / capacity
            crossed = site_share >= share
        else:
            site_share = None
            crossed = usual is not None and usual > 0 and peak >= factor * usual
        if not crossed:
            continue
        open_hours = tomorrow[tomorrow > 0]
        quiet = open_hours.nsmallest(3).sort_index().index
        busy[site_id] = BusySite(
            site_id=site_id,
            name=str(info.get("name") or site_id),
            kind=str(info.get("kind") or "count"),
            peak=peak,
            peak_hour=f"{peak_at:%H:%M}",
            share=site_share,
            usual_peak=usual,
            quiet_hours=[f"{t:%H:%M}" for t in quiet],
        )
    return busy


def followed_sites(subscriber: Subscriber, sites: pd.DataFrame) -> set[str]:
    """Site ids a subscriber follows, by site id or by the OSM market a site belongs to."""
    wanted = set(subscriber.markets)
    wanted |= {token.rsplit("/", 1)[-1] for token in subscriber.markets if "/" in token}
    by_osm = sites.dropna(subset=["osm_market_id"]) if "osm_market_id" in sites else sites[:0]
    found = set(sites["site_id"]) & wanted
    found |= set(by_osm.loc[by_osm["osm_market_id"].astype(str).isin(wanted), "site_id"])
    return found


def busy_alerts(
    subscribers: list[Subscriber],
    forecasts: pd.DataFrame,
    sites: pd.DataFrame,
    day: date,
    share: float,
    factor: float,
) -> list[Message]:
    busy = busy_sites(forecasts, sites, day, share, factor)
    period = day.isoformat()
    messages = []
    for subscriber in subscribers:
        if subscriber.consent_at is None or not subscriber.markets:
            continue
        hits = [busy[s] for s in sorted(followed_sites(subscriber, sites)) if s in busy]
        if not hits:
            continue
        rendered = render(BUSY_ALERT, subscriber.language, day=day, sites=hits)
        messages.append(_message(subscriber, BUSY_ALERT, period, rendered))
    return messages


def weekly_digests(
    subscribers: list[Subscriber],
    statistics: pd.DataFrame,
    week: str,
    snapshot: str,
    map_path: str | None,
) -> list[Message]:
    """One digest per subscriber following at least one region present in ``statistics``."""
    by_ags = {row["ags"]: row for row in statistics.to_dict("records")}
    germany = next((r for r in by_ags.values() if r["level"] == "germany"), None)
    germany_per_10k = float(germany["markets_per_10k"]) if germany else float("nan")
    messages = []
    for subscriber in subscribers:
        if subscriber.consent_at is None:
            continue
        rows = [by_ags[a] for a in subscriber.regions if a in by_ags]
        if not rows:
            continue
        regions = [_region(row, subscriber.language) for row in rows]
        rendered = render(
            WEEKLY_DIGEST, subscriber.language, week=week, snapshot=snapshot, regions=regions,
            germany_per_10k=germany_per_10k, has_map=bool(map_path),
        )
        messages.append(_message(subscriber, WEEKLY_DIGEST, week, rendered, map_path))
    return messages


def _region(row: dict, language: str) -> dict:
    counts = sorted(
        ((int(row.get(f"n_{t}") or 0), t) for t in MARKET_TYPES), key=lambda c: (-c[0], c[1])
    )
    labels = TYPE_LABELS[language]
    de, en = LEVEL_LABELS[row["level"]]
    return {
        **row,
        "markets_change": None if pd.isna(row.get("markets_change")) else
        int(row["markets_change"]),
        "top_brand_share": None if pd.isna(row.get("top_brand_share")) else
        float(row["top_brand_share"]),
        "types": [f"{labels[t]} {n}" for n, t in counts[:3] if n > 0] or ["-"],
        "level_label_de": de,
        "level_label_en": en,
    }


def _message(subscriber: Subscriber, kind: str, period: str, rendered, attachment=None):
    return Message(
        key=message_key(kind, period, subscriber.subscriber_id),
        subscriber_id=subscriber.subscriber_id,
        kind=kind,
        period=period,
        channel=subscriber.channel,
        language=subscriber.language,
        subject=rendered.subject,
        body=rendered.text,
        attachment=attachment if subscriber.channel == "email" else None,
    )


def _number(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number > 0 and number == number else None
