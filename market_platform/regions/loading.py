"""German regions: Kreise polygons with their AGS keys, Länder derived from them, population.

AGS (Amtlicher Gemeindeschlüssel) is the official key: two digits for the Land, five for the
Kreis (Landkreis or kreisfreie Stadt). The Länder are never read from a file of their own:
they follow from the first two digits of the Kreis key, so Kreise and Länder always agree.
"""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd

from market_platform.errors import InputError

LAENDER = {
    "01": "Schleswig-Holstein",
    "02": "Hamburg",
    "03": "Niedersachsen",
    "04": "Bremen",
    "05": "Nordrhein-Westfalen",
    "06": "Hessen",
    "07": "Rheinland-Pfalz",
    "08": "Baden-Württemberg",
    "09": "Bayern",
    "10": "Saarland",
    "11": "Berlin",
    "12": "Brandenburg",
    "13": "Mecklenburg-Vorpommern",
    "14": "Sachsen",
    "15": "Sachsen-Anhalt",
    "16": "Thüringen",
}

# Kreise merged since the geometry was drawn: old key -> the key that absorbed it. Applied
# only when the population file no longer knows the old key (e.g. 2018 geometry with 2023
# population), so both files can come from different years.
KREIS_MERGES = {"16056": "16063"}  # Eisenach joined the Wartburgkreis on 2021-07-01

_KEY_COLUMNS = ("AGS", "ags", "RS", "rs", "ARS", "ars")
_NAME_COLUMNS = ("GEN", "gen", "name", "NAME")
#: More inhabitants than any German Kreis (Berlin, the largest, has 3.9 million): a larger
#: figure is a unit or parsing error, not a population.
MAX_POPULATION = 20_000_000
_POPULATION_COLUMNS = ("population", "inhabitants", "einwohner", "EWZ", "ewz")
_EQUAL_AREA_CRS = "EPSG:3035"


def load_kreise(path: Path, source: str | None = None) -> gpd.GeoDataFrame:
    """Kreise as ``ags`` (5 digits), ``name``, ``geometry`` in WGS84, one row per Kreis.

    Water areas of the BKG files (``GF != 4``) are dropped and parts of one Kreis dissolved.
    """
    source = source or str(path)
    try:
        frame = gpd.read_file(path)
    except Exception as error:  # pyogrio raises several unrelated types for broken files
        raise InputError(source, f"cannot be read as GeoJSON/GeoPackage ({error})") from None

    key = _first_present(frame.columns, _KEY_COLUMNS)
    if key is None:
        raise InputError(
            source,
            f"has no region key column (expected one of {', '.join(_KEY_COLUMNS)}; "
            f"found {', '.join(map(str, frame.columns))})",
        )
    if frame.empty:
        raise InputError(source, "contains no regions")
    if "GF" in frame.columns:
        frame = frame[frame["GF"].astype(int) == 4]
    if frame.crs is None:
        raise InputError(source, "has no coordinate reference system")

    name = _first_present(frame.columns, _NAME_COLUMNS)
    kreise = gpd.GeoDataFrame(
        {
            "ags": frame[key].astype(str).str.slice(0, 5),
            "name": frame[name].astype(str) if name else frame[key].astype(str),
        },
        geometry=frame.geometry.values,
        crs=frame.crs,
    ).to_crs("EPSG:4326")

    bad_keys = sorted(set(kreise["ags"][~kreise["ags"].str.fullmatch(r"\d{5}")]))
    if bad_keys:
        raise InputError(source, f"region keys are not 5-digit AGS: {bad_keys[:5]}")
    kreise = kreise.dissolve(by="ags", aggfunc="first", as_index=False)
    return kreise[["ags", "name", "geometry"]].sort_values("ags").reset_index(drop=True)


def load_population(path: Path, source: str | None = None) -> pd.DataFrame:
    """Inhabitants per Kreis as ``ags``, ``population`` and, where the file has it, ``area_km2``.

    Reads a CSV with an AGS column and a population column, or the Destatis
    Gemeindeverzeichnis as JSON keyed by the 12-digit Regionalschlüssel (summed per Kreis).
    """
    source = source or str(path)
    if Path(path).suffix.lower() == ".json":
        frame = _destatis_gemeinden(path, source)
    else:
        try:
            frame = pd.read_csv(path, dtype=str)
        except Exception as error:
            raise InputError(source, f"cannot be read as CSV ({error})") from None

    key = _first_present(frame.columns, _KEY_COLUMNS)
    population = _first_present(frame.columns, _POPULATION_COLUMNS)
    if key is None or population is None:
        raise InputError(
            source,
            "needs an AGS column and a population column "
            f"(found {', '.join(map(str, frame.columns))})",
        )

    result = pd.DataFrame({"ags": frame[key].astype(str).str.strip().str.zfill(5)})
    result["population"] = pd.to_numeric(frame[population], errors="coerce")
    _check_numbers(result["population"], frame[population], "population", source, whole=True,
                   most=MAX_POPULATION)
    if "area_km2" in frame.columns:
        result["area_km2"] = pd.to_numeric(frame["area_km2"], errors="coerce")
        given = frame["area_km2"].notna() & (frame["area_km2"].astype(str).str.strip() != "")
        _check_numbers(result["area_km2"][given], frame["area_km2"][given], "area_km2", source)

    # Only Kreis rows count; Land or Gemeinde rows of the same file would count people twice.
    is_gemeinde_file = result["ags"].str.len().max() > 5
    result["ags"] = result["ags"].str.slice(0, 5)
    result = result[result["ags"].str.fullmatch(r"\d{5}")]
    if not is_gemeinde_file:
        counts = result["ags"].value_counts()
        if (counts > 1).any():
            ags = counts.index[counts > 1][0]
            raise InputError(source, f"Kreis {ags} appears {counts[ags]} times")
    return result.groupby("ags", as_index=False).sum(min_count=1)


def _check_numbers(values: pd.Series, raw: pd.Series, name: str, source: str,
                   whole: bool = False, most: float = float("inf")) -> None:
    """Every value a finite positive number (a whole one if ``whole``) of at most ``most``."""
    checks = [
        (values.isna(), "is not a number"),
        (~np.isfinite(values.fillna(0)), "is not a finite number"),
        (values <= 0, "is not a positive number"),
        (values > most, f"is larger than {most:,.0f}, more than any Kreis has"),
    ]
    if whole:
        checks.append((values.fillna(0) % 1 != 0, "is not a whole number"))
    for bad, what in checks:
        if bad.any():
            index = bad.to_numpy().nonzero()[0][0]
            row = int(values.index[index]) + 2
            text = "" if pd.isna(raw.iloc[index]) else str(raw.iloc[index]).strip()
            shown = repr(text) if text else "(empty)"
            raise InputError(source, f"row {row}: {name} {shown} {what}")


def _destatis_gemeinden(path: Path, source: str) -> pd.DataFrame:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        rows = [
            {"ags": key, "population": item["population"], "area_km2": item.get("area")}
            for key, item in data.items()
        ]
    except (ValueError, AttributeError, KeyError, TypeError) as error:
        raise InputError(source, f"is not a Destatis Gemeinden JSON file ({error})") from None
    return pd.DataFrame(rows).astype({"ags": str})


def build_regions(kreise: gpd.GeoDataFrame, population: pd.DataFrame, source: str) -> gpd.GeoDataFrame:
    """Join Kreise and population: ``ags``, ``land_ags``, ``name``, ``population``, ``area_km2``.

    Area comes from the population file where it has one (official figures), else from the
    geometry in an equal-area projection.
    """
    known = set(population["ags"])
    for old, new in KREIS_MERGES.items():
        if old in set(kreise["ags"]) and old not in known and new in known:
            kreise = kreise.copy()
            kreise.loc[kreise["ags"] == old, "ags"] = new
            kreise = kreise.dissolve(by="ags", aggfunc="last", as_index=False)

    missing = sorted(set(kreise["ags"]) - known)
    if missing:
        raise InputError(source, f"has no population for Kreise {', '.join(missing[:10])}")

    regions = kreise.merge(population, on="ags", how="left")
    geometry_area = regions.geometry.to_crs(_EQUAL_AREA_CRS).area / 1e6
    if "area_km2" in regions.columns:
        regions["area_km2"] = regions["area_km2"].fillna(geometry_area)
    else:
        regions["area_km2"] = geometry_area
    regions["area_km2"] = regions["area_km2"].round(2)
    regions["population"] = regions["population"].astype("int64")
    regions["land_ags"] = regions["ags"].str.slice(0, 2)
    columns = ["ags", "land_ags", "name", "population", "area_km2", "geometry"]
    return regions[columns].sort_values("ags").reset_index(drop=True)


def _first_present(columns, candidates) -> str | None:
    present = set(columns)
    return next((c for c in candidates if c in present), None)
