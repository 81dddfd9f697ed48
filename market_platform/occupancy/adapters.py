"""Readers that turn the known occupancy file layouts into the observation schema.

The layout of a CSV file is recognised from its header alone (:func:`detect_layout`):

``heidenheim``  ``timestamp_utc, person_in, person_out, ...``: 30-minute counts of one sensor,
                the file stem is the sensor key; ``sensors.csv`` beside it gives name and place
``swm_munich``  ``timestamp_utc, <facility>, ...``: people inside each facility, sampled
                irregularly; ``facilities.csv`` beside it gives names and capacities
``auckland``    ``timestamp_local, <address>, ...``: hourly counts in naive New Zealand local
                time; ``locations.csv`` beside it gives coordinates
``canonical``   ``site_id, timestamp, value`` (+ optional ``kind, capacity, name, timezone,
                country, subdivision, latitude, longitude, osm_market_id``): the format for
                new feeds dropped into the landing folder; timestamps must carry a zone

The value of a Heidenheim slot is footfall, people in plus people out.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from market_platform.errors import InputError
from market_platform.occupancy import schema
from market_platform.occupancy.schema import BERLIN, Observations

METADATA_FILES = {"sensors.csv", "facilities.csv", "locations.csv"}

LAYOUTS = ("heidenheim", "swm_munich", "auckland", "canonical")

_HEIDENHEIM_COLUMNS = ["timestamp_utc", "person_in", "person_out"]
_CANONICAL_COLUMNS = ["site_id", "timestamp", "value"]
_CANONICAL_OPTIONAL = [c for c in schema.SITE_COLUMNS if c not in ("site_id", "dataset")]
_SLOT = pd.Timedelta(minutes=30)


def detect_layout(path: Path) -> str:
    """The layout name of an observation file, or :class:`InputError` for anything else."""
    path = Path(path)
    try:
        header = pd.read_csv(path, nrows=0).columns.tolist()
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise InputError(path, f"row 1: not a readable CSV file ({error})") from error

    if header[:3] == _HEIDENHEIM_COLUMNS:
        return "heidenheim"
    if header[:3] == _CANONICAL_COLUMNS:
        return "canonical"
    if len(header) > 1 and header[0] == "timestamp_utc":
        return "swm_munich"
    if len(header) > 1 and header[0] == "timestamp_local":
        return "auckland"
    raise InputError(
        path,
        f"row 1: unknown layout, header {header[:6]}; expected 'site_id,timestamp,value' "
        "or one of the Heidenheim, SWM Munich or Auckland layouts",
    )


def read_observations(path: Path) -> Observations:
    """Validated readings and site metadata of one observation file of any known layout."""
    path = Path(path)
    reader = {
        "heidenheim": _read_heidenheim,
        "swm_munich": _read_swm_munich,
        "auckland": _read_auckland,
        "canonical": _read_canonical,
    }[detect_layout(path)]
    readings, sites = reader(path)
    return Observations(str(path), schema.validate(readings, str(path)), sites)


def observation_files(folder: Path) -> list[Path]:
    """The observation CSV files of a folder (its metadata files left out), sorted by name."""
    folder = Path(folder)
    if folder.is_file():
        return [folder]
    if not folder.is_dir():
        raise InputError(folder, "no such folder")
    return sorted(p for p in folder.glob("*.csv") if p.name not in METADATA_FILES)


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def _read_text(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    frame["row"] = frame.index + 2
    return frame


def _read_heidenheim(path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    raw = _read_text(path)
    site_id = f"heidenheim.{slug(path.stem)}"
    ts = schema.parse_utc(raw["timestamp_utc"], raw["row"], str(path), site_id)
    person_in = schema.parse_values(raw["person_in"], raw["row"], str(path), site_id)
    person_out = schema.parse_values(raw["person_out"], raw["row"], str(path), site_id)
    # Two slots in the real data are stamped a minute early (08:59, 09:29); the sensor
    # reports per 30-minute slot, so the nearest slot is where they belong.
    readings = pd.DataFrame(
        {
            "site_id": site_id,
            "ts_utc": ts.dt.round(_SLOT),
            "value": _checked_sum(person_in, person_out, raw["row"], str(path), site_id),
            "row": raw["row"],
        }
    )

    record = {"site_id": site_id, "dataset": "heidenheim", "name": path.stem, "kind": "count"}
    record |= {"timezone": BERLIN, "country": "DE", "subdivision": "BW"}
    sensors = path.with_name("sensors.csv")
    if sensors.exists():
        meta = pd.read_csv(sensors).set_index("sensor_key")
        if path.stem in meta.index:
            row = meta.loc[path.stem]
            record |= {"name": row["name"], "latitude": row["latitude"]}
            record |= {"longitude": row["longitude"]}
    return readings, schema.site_frame([record])


def _checked_sum(
    first: pd.Series, second: pd.Series, rows: pd.Series, source: str, site: str
) -> pd.Series:
    for part in (first, second):
        negative = part < 0
        if negative.any():
            position = int(negative.to_numpy().argmax())
            raise InputError(
                source,
                f"row {int(rows.iloc[position])}, site {site}: negative count "
                f"{part.iloc[position]:g}",
            )
    return first + second


def _read_wide(
    path: Path, raw: pd.DataFrame, ts: pd.Series, site_ids: dict[str, str]
) -> pd.DataFrame:
    parts = []
    for column, site_id in site_ids.items():
        values = schema.parse_values(raw[column], raw["row"], str(path), site_id)
        parts.append(pd.DataFrame({"site_id": site_id, "ts_utc": ts, "value": values,
                                   "row": raw["row"]}))
    return pd.concat(parts, ignore_index=True)


def _read_swm_munich(path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    raw = _read_text(path)
    facilities = [c for c in raw.columns if c not in ("timestamp_utc", "row")]
    site_ids = {c: f"swm.{slug(c)}" for c in facilities}
    ts = schema.parse_utc(raw["timestamp_utc"], raw["row"], str(path), "all sites")
    readings = _read_wide(path, raw, ts, site_ids)

    meta = pd.DataFrame(index=pd.Index([], name="facility_id"))
    facilities_file = path.with_name("facilities.csv")
    if facilities_file.exists():
        meta = pd.read_csv(facilities_file).set_index("facility_id")
    records = []
    for column, site_id in site_ids.items():
        record = {"site_id": site_id, "dataset": "swm_munich", "name": column}
        record |= {"kind": "occupancy", "timezone": BERLIN, "country": "DE"}
        record |= {"subdivision": "BY"}
        if column in meta.index:
            row = meta.loc[column]
            record |= {"name": f"{row['facility_name']} ({row['facility_type']})"}
            record |= {"capacity": float(row["capacity"])}
        records.append(record)
    return readings, schema.site_frame(records)


def _read_auckland(path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    raw = _read_text(path)
    addresses = [c for c in raw.columns if c not in ("timestamp_local", "row")]
    site_ids = {c: f"auckland.{slug(c)}" for c in addresses}
    # The counting system writes 24 rows for the 23-hour spring-forward day, one of them
    # stamped with the local 02:00 that does not exist; which real hour it held is unknowable,
    # so that row becomes a gap rather than a guess.
    ts = schema.localize(
        raw["timestamp_local"], "Pacific/Auckland", raw["row"], str(path), "all sites",
        drop_nonexistent=True,
    )
    raw, ts = raw[ts.notna()], ts[ts.notna()]
    readings = _read_wide(path, raw, ts, site_ids)

    meta = pd.DataFrame(index=pd.Index([], name="Address"))
    locations = path.with_name("locations.csv")
    if locations.exists():
        meta = pd.read_csv(locations).set_index("Address")
    records = []
    for address, site_id in site_ids.items():
        record = {"site_id": site_id, "dataset": "auckland", "name": address, "kind": "count"}
        record |= {"timezone": "Pacific/Auckland", "country": "NZ", "subdivision": "AUK"}
        if address in meta.index:
            record |= {"latitude": meta.loc[address, "Latitude"]}
            record |= {"longitude": meta.loc[address, "Longitude"]}
        records.append(record)
    return readings, schema.site_frame(records)


def _read_canonical(path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    raw = _read_text(path)
    site = raw["site_id"].str.strip()
    empty = site == ""
    if empty.any():
        row = int(raw.loc[empty, "row"].iloc[0])
        raise InputError(path, f"row {row}, site (empty): every row needs a site_id")
    ts = schema.parse_utc(raw["timestamp"], raw["row"], str(path), site)
    values = schema.parse_values(raw["value"], raw["row"], str(path), site)
    readings = pd.DataFrame({"site_id": site, "ts_utc": ts, "value": values, "row": raw["row"]})

    extra = [c for c in _CANONICAL_OPTIONAL if c in raw.columns]
    sites = raw[["site_id", *extra]].assign(site_id=site).replace("", None)
    sites = sites.groupby("site_id", sort=True).first().reset_index()
    sites["dataset"] = "landing"
    for column, default in (("kind", "count"), ("timezone", BERLIN), ("country", "DE")):
        sites[column] = sites[column].fillna(default) if column in sites else default
    unknown = ~sites["kind"].isin(schema.KINDS)
    if unknown.any():
        bad = sites[unknown].iloc[0]
        row = int(raw.loc[site == bad["site_id"], "row"].iloc[0])
        raise InputError(
            path, f"row {row}, site {bad['site_id']}: kind {bad['kind']!r} is not one of "
            f"{', '.join(schema.KINDS)}"
        )
    for _, item in sites.iterrows():
        problem = schema.site_problem(item.to_dict())
        if problem:
            row = int(raw.loc[site == item["site_id"], "row"].iloc[0])
            raise InputError(path, f"row {row}, site {item['site_id']}: {problem}")
    return readings, schema.site_frame(sites.to_dict("records"))
