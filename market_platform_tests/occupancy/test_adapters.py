"""Adapters and validation on the real files and on small bad files."""

from __future__ import annotations

import pandas as pd
import pytest

from market_platform.errors import InputError
from market_platform.occupancy import adapters, ingest


@pytest.mark.parametrize(
    ("relative", "layout"),
    [
        ("heidenheim/arkaden.csv", "heidenheim"),
        ("swm_munich/persons_wide.csv", "swm_munich"),
        ("auckland/hourly_counts_2023_2025.csv", "auckland"),
    ],
)
def test_detects_the_real_layouts(data_dir, relative, layout):
    assert adapters.detect_layout(data_dir / relative) == layout


def test_real_files_read_into_one_schema(real_hourly):
    hourly, sites = real_hourly
    by_dataset = sites.groupby("dataset")["site_id"].size().to_dict()
    assert by_dataset == {"auckland": 21, "heidenheim": 6, "swm_munich": 17}
    assert hourly["hour_utc"].dt.tz is not None
    assert not hourly.duplicated(["site_id", "hour_utc"]).any()
    assert (hourly["value"].dropna() >= 0).all()

    meta = sites.set_index("site_id")
    assert meta.loc["swm.pool_westbad", "capacity"] == 872
    assert meta.loc["swm.pool_westbad", "subdivision"] == "BY"
    assert meta.loc["heidenheim.arkaden", "subdivision"] == "BW"
    assert meta.loc["heidenheim.arkaden", "latitude"] == pytest.approx(48.6793, abs=1e-3)
    assert meta.loc["auckland.45_queen_street", "timezone"] == "Pacific/Auckland"


def test_heidenheim_off_grid_slots_snap_to_their_slot(data_dir):
    readings = adapters.read_observations(data_dir / "heidenheim" / "brenzstr.csv").readings
    day = readings[readings["ts_utc"].dt.strftime("%Y-%m-%d") == "2023-12-18"]
    assert (day["ts_utc"].dt.minute % 30 == 0).all()
    # 08:59 (6 in + 2 out) became the 09:00 slot.
    at_nine = day[day["ts_utc"] == pd.Timestamp("2023-12-18T09:00Z")]
    assert at_nine["value"].tolist() == [8.0]


def test_auckland_spring_forward_label_becomes_a_gap(data_dir):
    observations = adapters.read_observations(data_dir / "auckland" / "hourly_counts_2023_2025.csv")
    stamps = observations.readings["ts_utc"]
    assert stamps.dt.tz is not None
    # 2023-09-24 02:00 does not exist in Auckland; the row written for it is not used.
    assert not observations.readings.duplicated(["site_id", "ts_utc"]).any()


def _write(tmp_path, text, name="feed.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_unknown_layout_names_the_file_and_row(tmp_path):
    path = _write(tmp_path, "when,how_many\n2025-01-01T00:00Z,3\n")
    with pytest.raises(InputError, match=r"feed\.csv: row 1: unknown layout"):
        adapters.read_observations(path)


def test_naive_timestamps_are_refused(tmp_path):
    path = _write(tmp_path, "site_id,timestamp,value\nshop_a,2025-01-01T00:00Z,3\n"
                            "shop_a,2025-01-01T01:00:00,4\n")
    with pytest.raises(InputError, match=r"feed\.csv: row 3, site shop_a: .*no time zone"):
        adapters.read_observations(path)


def test_conflicting_duplicates_are_refused(tmp_path):
    path = _write(tmp_path, "site_id,timestamp,value\nshop_a,2025-01-01T00:00Z,3\n"
                            "shop_b,2025-01-01T00:00Z,3\nshop_a,2025-01-01T01:00+01:00,5\n")
    with pytest.raises(InputError, match=r"feed\.csv: rows 2 and 4, site shop_a: duplicate"):
        adapters.read_observations(path)


def test_identical_duplicates_are_dropped(tmp_path):
    path = _write(tmp_path, "site_id,timestamp,value\nshop_a,2025-01-01T00:00Z,3\n"
                            "shop_a,2025-01-01T00:00Z,3\n")
    assert len(adapters.read_observations(path).readings) == 1


def test_negative_counts_are_refused(tmp_path):
    path = _write(tmp_path, "timestamp_utc,person_in,person_out\n2025-01-01T00:00:00Z,3,1\n"
                            "2025-01-01T00:30:00Z,-2,1\n", name="gate.csv")
    with pytest.raises(InputError, match=r"gate\.csv: row 3, site heidenheim\.gate: negative"):
        adapters.read_observations(path)


def test_non_numeric_values_are_refused(tmp_path):
    path = _write(tmp_path, "timestamp_utc,pool_a,pool_b\n2025-01-01T00:00:00Z,3,1\n"
                            "2025-01-01T00:20:00Z,4,many\n", name="persons_wide.csv")
    with pytest.raises(InputError, match=r"row 3, site swm\.pool_b: value 'many' is not a n"):
        adapters.read_observations(path)


def test_a_bad_file_among_good_ones_stops_the_read(tmp_path, data_dir):
    good = tmp_path / "good"
    good.mkdir()
    _write(good, "site_id,timestamp,value\nshop_a,2025-01-01T00:00Z,3\n", name="a.csv")
    _write(good, "site_id,timestamp,value\nshop_a,2025-01-01T01:00Z,-1\n", name="b.csv")
    with pytest.raises(InputError, match=r"b\.csv: row 2, site shop_a: negative"):
        ingest.load([good])


def test_infinite_values_are_refused(tmp_path):
    path = _write(tmp_path, "site_id,timestamp,value\nshop_a,2025-01-01T00:00Z,3\n"
                            "shop_a,2025-01-01T01:00Z,inf\n")
    with pytest.raises(InputError, match=r"row 3, site shop_a: value 'inf' is not a finite"):
        adapters.read_observations(path)


@pytest.mark.parametrize("column, value, problem", [
    ("capacity", "-50", "capacity '-50' is not a positive number"),
    ("capacity", "gross", "capacity 'gross' is not a positive number"),
    ("timezone", "Europe/Munich", "time zone 'Europe/Munich' is not an IANA time zone"),
    ("country", "ZZ", "country 'ZZ' is not an ISO 3166 code"),
    ("subdivision", "XX", "subdivision 'XX' is not one of DE's"),
])
def test_site_metadata_is_checked_where_the_feed_gives_it(tmp_path, column, value, problem):
    path = _write(tmp_path, f"site_id,timestamp,value,{column}\n"
                            f"shop_a,2025-01-01T00:00Z,3,{value}\n")
    with pytest.raises(InputError, match=rf"feed\.csv: row 2, site shop_a: {problem}"):
        adapters.read_observations(path)
