"""The one observation schema every occupancy source is turned into, and its validation.

An observation is one reading of one site at one instant:

``site_id``  stable id, ``<dataset>.<slug>`` (``heidenheim.arkaden``, ``swm.pool_nordbad``)
``ts_utc``   timezone-aware UTC timestamp; naive timestamps are refused where a zone is required
``value``    people counted in the slot (kind ``count``) or people inside (kind ``occupancy``)
``row``      the line of the source file, kept only so that errors can point at it

Sites carry their own metadata (``SITE_COLUMNS``): the kind decides how readings become hourly
values (summed counts, mean occupancy), the capacity turns occupancy into a share, and the time
zone, country and Land pick local hours and public holidays.
"""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays
import numpy as np
import pandas as pd

from market_platform.errors import InputError

OBSERVATION_COLUMNS = ["site_id", "ts_utc", "value", "row"]

SITE_COLUMNS = [
    "site_id",
    "dataset",
    "name",
    "kind",
    "capacity",
    "latitude",
    "longitude",
    "timezone",
    "country",
    "subdivision",
    "osm_market_id",
]

KINDS = ("count", "occupancy")

#: Local time of the German sites; everything is stored in UTC and modelled in local time.
BERLIN = "Europe/Berlin"


@dataclass(frozen=True)
class Observations:
    """Readings of one source file and the sites they belong to."""

    source: str
    readings: pd.DataFrame
    sites: pd.DataFrame


def empty_sites() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in SITE_COLUMNS})


def site_frame(records: list[dict]) -> pd.DataFrame:
    """Site metadata as a frame with every column of ``SITE_COLUMNS`` (missing ones empty)."""
    frame = pd.DataFrame.from_records(records)
    for column in SITE_COLUMNS:
        if column not in frame:
            frame[column] = None
    frame["capacity"] = pd.to_numeric(frame["capacity"], errors="coerce")
    return frame[SITE_COLUMNS]


def parse_values(raw: pd.Series, rows: pd.Series, source: str, site: pd.Series | str) -> pd.Series:
    """Numbers from text cells; an empty cell is a gap, anything else unreadable is an error."""
    text = raw.astype("string").str.strip()
    numbers = pd.to_numeric(text, errors="coerce")
    bad = numbers.isna() & text.notna() & (text != "")
    if bad.any():
        position = int(np.flatnonzero(bad.to_numpy())[0])
        where = _site_at(site, position)
        raise InputError(
            source,
            f"row {int(rows.iloc[position])}, site {where}: value {text.iloc[position]!r} "
            f"is not a number ({int(bad.sum())} such cells)",
        )
    infinite = ~np.isfinite(numbers.fillna(0).to_numpy(dtype=float))
    if infinite.any():
        position = int(np.flatnonzero(infinite)[0])
        raise InputError(
            source,
            f"row {int(rows.iloc[position])}, site {_site_at(site, position)}: value "
            f"{text.iloc[position]!r} is not a finite number",
        )
    return numbers.astype(float)


def site_problem(site: dict) -> str | None:
    """What is wrong with a site's metadata (capacity, time zone, country, Land), or None."""
    capacity = site.get("capacity")
    if capacity is not None and not pd.isna(capacity):
        number = pd.to_numeric(capacity, errors="coerce")
        if pd.isna(number) or not np.isfinite(number) or number <= 0:
            return f"capacity {capacity!r} is not a positive number"
    zone = site.get("timezone")
    try:
        ZoneInfo(str(zone))
    except (ZoneInfoNotFoundError, ValueError):
        return f"time zone {zone!r} is not an IANA time zone (e.g. Europe/Berlin)"
    supported = holidays.list_supported_countries()
    country, subdivision = site.get("country"), site.get("subdivision")
    if country not in supported:
        return f"country {country!r} is not an ISO 3166 code the holidays package knows"
    if subdivision and not pd.isna(subdivision) and subdivision not in supported[country]:
        return (f"subdivision {subdivision!r} is not one of {country}'s "
                f"({', '.join(supported[country][:20])})")
    return None


def parse_utc(raw: pd.Series, rows: pd.Series, source: str, site: pd.Series | str) -> pd.Series:
    """UTC timestamps from ISO-8601 text that must carry a zone (``Z`` or ``+hh:mm``)."""
    text = raw.astype("string").str.strip()
    has_zone = text.str.contains(r"(?:Z|[+-]\d\d:?\d\d)$", regex=True, na=False)
    if not has_zone.all():
        position = int(np.flatnonzero(~has_zone.to_numpy())[0])
        raise InputError(
            source,
            f"row {int(rows.iloc[position])}, site {_site_at(site, position)}: timestamp "
            f"{text.iloc[position]!r} has no time zone; write it as UTC ('Z') or with an offset",
        )
    try:
        return pd.to_datetime(text, utc=True, format="ISO8601")
    except (ValueError, TypeError) as error:
        raise InputError(source, f"unreadable timestamp ({error})") from error


def localize(
    naive: pd.Series,
    timezone: str,
    rows: pd.Series,
    source: str,
    site: pd.Series | str,
    drop_nonexistent: bool = False,
) -> pd.Series:
    """UTC timestamps from naive local wall-clock times of a source documented in ``timezone``.

    A repeated autumn hour can only appear once in such a source, and it is read as the first
    (summer-time) one. A wall-clock time that does not exist (the spring gap) is an error, or
    NaT with ``drop_nonexistent`` for sources known to write a row for it anyway.
    """
    stamps = pd.to_datetime(naive.astype("string").str.strip(), format="ISO8601")
    if stamps.dt.tz is not None:
        return stamps.dt.tz_convert("UTC")
    local = stamps.dt.tz_localize(
        timezone, ambiguous=np.ones(len(stamps), dtype=bool), nonexistent="NaT"
    )
    missing = local.isna() & stamps.notna()
    if missing.any() and not drop_nonexistent:
        position = int(np.flatnonzero(missing.to_numpy())[0])
        raise InputError(
            source,
            f"row {int(rows.iloc[position])}, site {_site_at(site, position)}: local time "
            f"{stamps.iloc[position]} does not exist in {timezone} (clock change)",
        )
    return local.dt.tz_convert("UTC")


def validate(readings: pd.DataFrame, source: str) -> pd.DataFrame:
    """Checked readings: no negative values, no conflicting duplicates, sorted by site and time.

    Exact duplicates (same site, instant and value) are dropped; gaps (NaN values) are kept
    as gaps. Every problem raises :class:`InputError` naming the file, row and site.
    """
    frame = readings[OBSERVATION_COLUMNS].copy()
    if frame["ts_utc"].dt.tz is None:
        row = int(frame["row"].iloc[0]) if len(frame) else 0
        raise InputError(source, f"row {row}: timestamps carry no time zone")

    negative = frame["value"] < 0
    if negative.any():
        first = frame[negative].iloc[0]
        raise InputError(
            source,
            f"row {int(first['row'])}, site {first['site_id']}: negative value "
            f"{first['value']:g} ({int(negative.sum())} negative cells)",
        )

    frame = frame.dropna(subset=["value"])
    frame = frame.drop_duplicates(subset=["site_id", "ts_utc", "value"])
    clash = frame.duplicated(subset=["site_id", "ts_utc"], keep=False)
    if clash.any():
        both = frame[clash].sort_values(["site_id", "ts_utc", "row"]).head(2)
        rows = " and ".join(str(int(r)) for r in both["row"])
        first = both.iloc[0]
        raise InputError(
            source,
            f"rows {rows}, site {first['site_id']}: duplicate readings for "
            f"{first['ts_utc']:%Y-%m-%dT%H:%M:%SZ} with conflicting values "
            f"{', '.join(f'{v:g}' for v in both['value'])}",
        )
    return frame.sort_values(["site_id", "ts_utc"], kind="stable").reset_index(drop=True)


def _site_at(site: pd.Series | str, position: int) -> str:
    return site if isinstance(site, str) else str(site.iloc[position])
