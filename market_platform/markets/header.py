"""When an extract's data was taken, read from its header without parsing the data."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import osmium

from market_platform.markets.candidates import parse_timestamp
from market_platform.markets.pbf import TIMESTAMP_KEYS


def extract_timestamp(path: Path) -> datetime | None:
    """The replication timestamp of a PBF, or ``timestamp_osm_base`` of Overpass JSON."""
    with open(path, "rb") as handle:
        is_json = handle.read(64).lstrip().startswith(b"{")
    if is_json:
        try:
            with open(path, encoding="utf-8") as handle:
                value = json.load(handle).get("osm3s", {}).get("timestamp_osm_base")
        except (ValueError, AttributeError):
            return None
    else:
        # A broken file is the parser's to report, with its full story; here it has no date.
        try:
            reader = osmium.io.Reader(str(path), osmium.osm.osm_entity_bits.NOTHING)
            header = reader.header()
            value = next((header.get(key) for key in TIMESTAMP_KEYS if header.get(key)), None)
            reader.close()
        except RuntimeError:
            return None
    return parse_timestamp(value)

