"""The Overpass client against the local fake server: order and spacing of what the server
received, the cache, refusals, remarks, timeouts and split queries."""

from __future__ import annotations

import json
import multiprocessing

import pytest

from market_platform.outside import areas
from market_platform.outside.cache import ResponseCache
from market_platform.outside.live import fetch_area
from market_platform.outside.overpass import OverpassClient, OverpassError, parse_status
from market_platform_tests.conftest import LIDL
from market_platform_tests.outside.conftest import REDIS_URL

STATUS, QUERY = "/api/status", "/api/interpreter"
BUSY_STATUS = (
    "Connected as: 2130706433\nRate limit: 2\n"
    "Slot available after: 2024-01-21T10:00:02Z, in 2 seconds.\n"
    "Slot available after: 2024-01-21T10:00:40Z, in 40 seconds.\n"
)
MUENCHEN_BBOX = "overpass:bbox=11.36,48.06,11.72,48.25"
BACKOFF = 0.2


def make_client(url, cache_dir, timeout=5.0, max_wait=20.0, lock_url="memory://"):
    return OverpassClient(
        url, user_agent="market_platform tests (+https://example.invalid/tests)",
        timeout=timeout, max_wait=max_wait, cache=ResponseCache(cache_dir, ttl=3600),
        backoff=BACKOFF, lock_url=lock_url,
    )


def lidl_in_bbox(west, south, east, north) -> set[tuple[str, int]]:
    """What the real file holds in the bbox, by node position or building centre."""
    found = set()
    for element in json.loads(LIDL.read_text())["elements"]:
        place = element if element["type"] == "node" else element["center"]
        if west <= place["lon"] <= east and south <= place["lat"] <= north:
            found.add((element["type"], element["id"]))
    return found


def keys(document) -> set[tuple[str, int]]:
    return {(e["type"], e["id"]) for e in document["elements"]}


def test_parse_status_free_busy_and_unlimited():
    assert parse_status("Rate limit: 2\n2 slots available now.\n").free
    busy = parse_status(BUSY_STATUS)
    assert (busy.free, busy.wait_s, busy.rate_limit) == (False, 2.0, 2)
    assert parse_status("Rate limit: 0\nCurrently running queries:\n").free


def test_status_first_then_query_and_a_rerun_comes_from_the_cache(server, tmp_path):
    area = areas.parse(MUENCHEN_BBOX, None)
    with make_client(server.overpass_url, tmp_path) as client:
        first = fetch_area(client, area, None, 1.0)

    log = server.log()
    assert [e["path"] for e in log] == [STATUS, QUERY]
    assert log[0]["end"] <= log[1]["start"]
    assert log[1]["user_agent"].startswith("market_platform tests (+https://")
    assert "[bbox:48.0600000,11.3600000,48.2500000,11.7200000]" in log[1]["data"]
    assert keys(first.document) == lidl_in_bbox(11.36, 48.06, 11.72, 48.25)
    assert first.document["osm3s"]["timestamp_osm_base"] == "2024-01-21T02:19:08Z"

    with make_client(server.overpass_url, tmp_path) as client:
        again = fetch_area(client, area, None, 1.0)
    assert len(server.log()) == 2  # not one request more
    assert (again.stats.cache_hits, again.stats.requests) == (1, 0)
    assert again.document == first.document


def test_waits_as_long_as_the_status_says(server, tmp_path):
    server.script(STATUS, {"body": BUSY_STATUS})
    with make_client(server.overpass_url, tmp_path) as client:
        client.query("[out:json][bbox:48.1,11.5,48.2,11.6];nwr;out center;", "test area")

    log = server.log()
    assert [e["path"] for e in log] == [STATUS, STATUS, QUERY]
    assert log[1]["start"] - log[0]["end"] >= 2.0  # "in 2 seconds"


def test_backs_off_on_429_and_504_then_succeeds(server, tmp_path):
    server.script(QUERY, {"status": 429}, {"status": 504})
    area = areas.parse(MUENCHEN_BBOX, None)
    with make_client(server.overpass_url, tmp_path) as client:
        fetched = fetch_area(client, area, None, 1.0)

    log = server.log()
    assert [e["path"] for e in log] == [STATUS, QUERY] * 3
    queries = [e for e in log if e["path"] == QUERY]
    assert queries[1]["start"] - queries[0]["end"] >= BACKOFF
    assert queries[2]["start"] - queries[1]["end"] >= 2 * BACKOFF
    assert max(e["in_flight"] for e in log) == 1
    assert fetched.stats.refusals == ["HTTP 429", "HTTP 504"]
    assert keys(fetched.document) == lidl_in_bbox(11.36, 48.06, 11.72, 48.25)


def test_a_remark_fails_loudly_and_is_not_cached(server, tmp_path):
    remark = 'runtime error: Query timed out in "query" at line 3 after 26 seconds.'
    server.script(QUERY, {"remark": remark})
    area = areas.parse(MUENCHEN_BBOX, None)
    with make_client(server.overpass_url, tmp_path) as client:
        with pytest.raises(OverpassError, match="remark.*not used or cached.*Query timed out"):
            fetch_area(client, area, None, 1.0)
        assert not list(tmp_path.glob("*.json"))

        fetched = fetch_area(client, area, None, 1.0)  # asks again: nothing was cached
    assert [e["path"] for e in server.log()] == [STATUS, QUERY, STATUS, QUERY]
    assert fetched.stats.queries == 1 and len(list(tmp_path.glob("*.json"))) == 1


def test_a_reply_slower_than_the_timeout_is_asked_again(server, tmp_path):
    server.script(QUERY, {"delay": 2.5})
    area = areas.parse(MUENCHEN_BBOX, None)
    with make_client(server.overpass_url, tmp_path, timeout=1.0) as client:
        fetched = fetch_area(client, area, None, 1.0)
    assert fetched.stats.refusals == ["no answer within 1 s (OVERPASS_TIMEOUT)"]
    assert [e["path"] for e in server.log()] == [STATUS, QUERY, STATUS, QUERY]


def test_a_server_that_keeps_refusing_fails_naming_the_region(server, tmp_path, kreise):
    server.script(QUERY, *[{"status": 429}] * 30)
    area = areas.parse("overpass:09162", kreise)
    with make_client(server.overpass_url, tmp_path, max_wait=2.0) as client:
        with pytest.raises(OverpassError) as error:
            fetch_area(client, area, kreise, 1.0)
    message = str(error.value)
    assert message.startswith("Kreis 09162 München: ")
    assert "kept refusing" in message and "last: HTTP 429" in message
    assert len(server.log(QUERY)) >= 3


def test_no_free_slot_within_the_time_left_fails_naming_the_region(server, tmp_path, kreise):
    server.script(STATUS, {"body": BUSY_STATUS.replace("in 2 seconds", "in 600 seconds")})
    area = areas.parse("overpass:04", kreise)
    with make_client(server.overpass_url, tmp_path, max_wait=5.0) as client:
        with pytest.raises(OverpassError, match=r"^Land 04 Bremen: .* no free slot for 40 s"):
            fetch_area(client, area, kreise, 1.0)
    assert [e["path"] for e in server.log()] == [STATUS]


def test_split_query_is_merged_without_duplicates(server, tmp_path):
    # Two tiles whose shared edge runs 0.001° east of a Lidl building's centre: the server
    # returns that building from both tiles, as Overpass does for a way crossing a tile edge.
    way = next(e for e in json.loads(LIDL.read_text())["elements"] if e["type"] == "way")
    lon, lat = way["center"]["lon"], way["center"]["lat"]
    bbox = (lon - 0.299, lat - 0.15, lon + 0.301, lat + 0.15)
    area = areas.parse("overpass:bbox=" + ",".join(f"{v:.7f}" for v in bbox), None)

    with make_client(server.overpass_url, tmp_path / "split") as client:
        split = fetch_area(client, area, None, 0.3)
    with make_client(server.overpass_url, tmp_path / "whole") as client:
        whole = fetch_area(client, area, None, 1.0)

    assert split.tiles == 2 and len(server.log(QUERY)) == 3
    assert split.duplicates >= 1
    ids = [(e["type"], e["id"]) for e in split.document["elements"]]
    assert len(ids) == len(set(ids))
    assert (way["type"], way["id"]) in set(ids)
    assert keys(split.document) == keys(whole.document) == lidl_in_bbox(*bbox)


def test_land_in_tiles_equals_the_land_of_the_whole_file(server, tmp_path, kreise):
    land = areas.parse("overpass:09", kreise)
    with make_client(server.overpass_url, tmp_path) as client:
        fetched = fetch_area(client, land, kreise, 1.0)
    whole = areas.clip(json.loads(LIDL.read_text())["elements"], land, kreise)
    assert fetched.tiles == 19 and len(server.log(QUERY)) == 19
    assert keys(fetched.document) == {(e["type"], e["id"]) for e in whole}
    assert max(e["in_flight"] for e in server.log()) == 1


def _fetch_in_process(url, cache_dir, bbox_source, lock_url):
    area = areas.parse(bbox_source, None)
    with make_client(url, cache_dir, lock_url=lock_url) as client:
        fetch_area(client, area, None, 0.25)


@pytest.mark.parametrize("lock_url", ["memory://", REDIS_URL], ids=["file-lock", "redis-lock"])
def test_two_processes_never_send_at_once(server, tmp_path, lock_url):
    # The fake server answers each request after 50 ms, so overlapping requests would show.
    server.script(STATUS, *[{"delay": 0.05}] * 40)
    server.script(QUERY, *[{"delay": 0.05}] * 40)
    spawn = multiprocessing.get_context("spawn")
    workers = [
        spawn.Process(target=_fetch_in_process, args=(
            server.overpass_url, tmp_path / str(n), source, lock_url,
        ))
        for n, source in enumerate([
            "overpass:bbox=11.0,48.0,12.0,48.5", "overpass:bbox=13.0,52.3,14.0,52.8",
        ])
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert [worker.exitcode for worker in workers] == [0, 0]

    log = sorted(server.log(), key=lambda e: e["start"])
    assert len(log) == 2 * 2 * 8  # two areas of 4 x 2 tiles, a status check before each
    assert max(e["in_flight"] for e in log) == 1
    assert all(before["end"] <= after["start"] for before, after in zip(log, log[1:]))
    # Status and query of one tile stay together: nobody slips in between.
    pairs = list(zip(log[::2], log[1::2]))
    assert all(a["path"] == STATUS and b["path"] == QUERY for a, b in pairs)
