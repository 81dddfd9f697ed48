"""Reverse geocoding against the fake Nominatim: which markets are asked, what lands in the
market database (SQLite and PostgreSQL), and the spacing of the requests at the server."""

from __future__ import annotations

import dataclasses
import multiprocessing

import pytest

from market_platform import db
from market_platform.markets import store
from market_platform.markets.reading import read_markets
from market_platform.outside import addresses
from market_platform.outside.geocoder import Address, GeocodeError, Geocoder, parse_reverse
from market_platform_tests.conftest import LAUF
from market_platform_tests.outside.conftest import REDIS_URL
from market_platform_tests.outside.fake_server import expected_address

REVERSE = "/reverse"


def make_geocoder(base, rate="20/second", limiter_url="memory://", max_wait=20.0):
    return Geocoder(
        base, rate=rate, user_agent="market_platform tests", timeout=5.0,
        max_wait=max_wait, limiter_url=limiter_url, backoff=0.2,
    )


def snapshot(markets, name: str) -> store.Snapshot:
    return store.Snapshot(name * 64, f"test:{name}", "pbf", 1, None)


def geocode(url, base) -> addresses.GeocodeReport:
    with make_geocoder(base) as geocoder:
        return addresses.geocode_markets(db.get_engine(url), geocoder.reverse, base)


def test_parse_reverse_answers():
    answer = {"address": {"pedestrian": "Marienplatz", "house_number": "8",
                          "postcode": "80331", "city": "München"}}
    assert parse_reverse(answer) == Address(True, "Marienplatz", "8", "80331", "München")
    village = {"address": {"road": "Hauptstraße", "village": "Ottensoos"}}
    assert parse_reverse(village) == Address(True, "Hauptstraße", None, None, "Ottensoos")
    assert parse_reverse({"error": "Unable to geocode"}) == Address(False)


def test_only_markets_without_address_are_asked_and_only_once(market_db_url, server):
    engine = db.get_engine(market_db_url)
    markets = read_markets(LAUF).markets
    store.apply_snapshot(engine, snapshot(markets, "a"), markets)

    report = geocode(market_db_url, server.base)
    need = markets[markets["street"].isna() | markets["housenumber"].isna()]
    assert (report.markets, report.needing_address, report.with_osm_address) == (32, 20, 12)
    assert report.asked == len(server.log(REVERSE)) == report.points == 20
    answers = [expected_address(lat, lon) for lat, lon in zip(need["lat"], need["lon"])]
    assert report.not_found == sum(a is None for a in answers)
    assert report.geocoded == 20 - report.not_found

    rows = {(r["osm_type"], r["osm_id"]): r for r in db.read_table(engine, "markets")}
    for market in markets.itertuples(index=False):
        row = rows[(market.osm_type, market.osm_id)]
        assert (row["street"], row["housenumber"]) == (market.street, market.housenumber)
        if market.street is not None and market.housenumber is not None:
            assert row["address_source"] == "osm" and row["geocoded_street"] is None
            continue
        answer = expected_address(market.lat, market.lon)
        if answer is None:
            assert row["address_source"] == "not_found" and row["geocoded_street"] is None
        else:
            assert row["address_source"] == "geocoded"
            assert (row["geocoded_street"], row["geocoded_housenumber"]) == (
                answer["road"], answer["house_number"]
            )
            assert (row["geocoded_postcode"], row["geocoded_city"]) == (
                answer["postcode"], "Teststadt"
            )

    # The same extract again: every answer is known.
    server.reset()
    again = geocode(market_db_url, server.base)
    assert (again.asked, again.cache_hits, len(server.log())) == (0, 20, 0)

    # A new extract: one market without address moved 50 m, one lost its house number.
    changed = markets.copy()
    moved = need.index[0]
    changed.loc[moved, "lat"] = round(changed.loc[moved, "lat"] + 0.00045, 7)
    lost = markets.index[markets["housenumber"].notna() & markets["street"].notna()][0]
    changed.loc[lost, "housenumber"] = None
    store.apply_snapshot(engine, snapshot(changed, "b"), changed)
    third = geocode(market_db_url, server.base)
    asked = {(round(float(e["query"].split("lat=")[1].split("&")[0]), 5)) for e in
             server.log(REVERSE)}
    assert third.asked == len(server.log(REVERSE)) == 2
    assert asked == {round(changed.loc[moved, "lat"], 5), round(changed.loc[lost, "lat"], 5)}
    row = next(r for r in db.read_table(engine, "markets")
               if r["osm_id"] == int(changed.loc[lost, "osm_id"])
               and r["osm_type"] == changed.loc[lost, "osm_type"])
    assert row["street"] == markets.loc[lost, "street"]  # the OSM street stays as mapped
    assert row["address_source"] in ("geocoded", "not_found")


def _reverse_in_process(base, points):
    with make_geocoder(base, rate="1/second", limiter_url=REDIS_URL) as geocoder:
        for lat, lon in points:
            geocoder.reverse(lat, lon)


def test_one_request_per_second_across_two_processes(server):
    spawn = multiprocessing.get_context("spawn")
    workers = [
        spawn.Process(target=_reverse_in_process, args=(server.base, [
            (49.5 + worker / 10 + n / 1000, 11.3) for n in range(3)
        ]))
        for worker in range(2)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert [worker.exitcode for worker in workers] == [0, 0]

    arrivals = sorted(e["start"] for e in server.log(REVERSE))
    assert len(arrivals) == 6
    gaps = [later - earlier for earlier, later in zip(arrivals, arrivals[1:])]
    assert min(gaps) >= 1.0, gaps


def test_429_is_waited_out_and_endless_refusal_names_the_place(server):
    server.script(REVERSE, {"status": 429, "retry_after": 0.5})
    with make_geocoder(server.base, rate="5/second") as geocoder:
        address = geocoder.reverse(49.51234, 11.28)
    log = server.log(REVERSE)
    assert len(log) == 2 and log[1]["start"] - log[0]["end"] >= 0.5
    assert dataclasses.asdict(address)["street"] == expected_address(49.51234, 11.28)["road"]

    server.reset()
    server.script(REVERSE, *[{"status": 429}] * 40)
    with make_geocoder(server.base, rate="5/second", max_wait=1.5) as geocoder:
        with pytest.raises(GeocodeError) as error:
            geocoder.reverse(49.51234, 11.28)
    assert str(error.value).startswith(f"{server.base} at 49.51234,11.28000: kept refusing")
    assert "last: HTTP 429" in str(error.value)
