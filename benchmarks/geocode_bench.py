"""Geocoding under a shared rate limit: N markets from two worker processes, one limit.

Each scenario starts the fake Nominatim of the tests (a separate process on 127.0.0.1) and
two worker processes that share one limiter in Redis (``REDIS_URL``, default
redis://127.0.0.1:6379/0) and one SQLite market database. Every worker geocodes its half of
the points through ``addresses.fetch_missing`` (request, then store the answer) with the
``Geocoder`` the ``market_addresses`` asset uses. The points are the first N distinct
positions of the real Lidl file.

The clock starts when both workers have imported everything and stops when both are done.
The bound is N / rate: the time N requests take at exactly the limit. The server's log gives
the busiest second: the most requests that arrived within any 1-second window (sliding, so
also across calendar seconds) and within any calendar second.

    .venv/bin/python benchmarks/geocode_bench.py --scenario 500:20/second --scenario 12:1/second

``--margin 0`` shows what the spacing margin of ``RateLimiter`` is for.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import tempfile
import time
from pathlib import Path

import httpx
from limits import parse

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from market_platform import db  # noqa: E402
from market_platform.outside import addresses  # noqa: E402
from market_platform.outside import geocoder as geocoder_module  # noqa: E402
from market_platform.outside.geocoder import Geocoder  # noqa: E402
from market_platform_tests.conftest import LIDL  # noqa: E402
from market_platform_tests.outside.conftest import start_server, stop_server  # noqa: E402

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
WORKERS = 2


def lidl_points(count: int) -> list[addresses.Point]:
    points = []
    for element in json.loads(LIDL.read_text())["elements"]:
        place = element if element["type"] == "node" else element["center"]
        point = addresses.Point.of(place["lat"], place["lon"])
        if point not in points:
            points.append(point)
        if len(points) == count:
            return points
    raise SystemExit(f"the Lidl file has fewer than {count} distinct points")


def worker(base, rate, margin, db_url, points, ready, go, out):
    geocoder_module.RATE_MARGIN = margin
    engine = db.get_engine(db_url)
    with Geocoder(base, rate=rate, user_agent="market_platform geocode benchmark",
                  timeout=10, max_wait=60, limiter_url=REDIS_URL) as geocoder:
        ready.set()
        go.wait()
        started = time.time()
        found, not_found = addresses.fetch_missing(
            engine, points, geocoder.reverse, base, log=lambda _: None
        )
        out.put({"started": started, "ended": time.time(), "requests": geocoder.requests,
                 "found": found, "not_found": not_found})


def busiest(arrivals: list[float]) -> tuple[int, int]:
    """Most arrivals in any 1-second window, and in any calendar second."""
    arrivals = sorted(arrivals)
    sliding = max(
        sum(1 for t in arrivals[i:] if t - start < 1.0) for i, start in enumerate(arrivals)
    )
    per_second: dict[int, int] = {}
    for t in arrivals:
        per_second[int(t)] = per_second.get(int(t), 0) + 1
    return sliding, max(per_second.values())


def run(count: int, rate: str, margin: float) -> dict:
    item = parse(rate)
    allowed = item.amount
    process, base = start_server(data=None)
    try:
        with tempfile.TemporaryDirectory() as folder:
            db_url = f"sqlite:///{folder}/markets.sqlite"
            addresses.create_tables(db.get_engine(db_url))
            points = lidl_points(count)
            spawn = multiprocessing.get_context("spawn")
            go, out = spawn.Event(), spawn.Queue()
            readies = [spawn.Event() for _ in range(WORKERS)]
            procs = [
                spawn.Process(target=worker, args=(
                    base, rate, margin, db_url, points[n::WORKERS], readies[n], go, out
                ))
                for n in range(WORKERS)
            ]
            for proc in procs:
                proc.start()
            for ready in readies:
                ready.wait(timeout=120)
            started = time.time()
            go.set()
            results = [out.get(timeout=3600) for _ in procs]
            wall = time.time() - started
            for proc in procs:
                proc.join(timeout=30)
            stored = len(db.read_table(db.get_engine(db_url), "geocoded_addresses"))
        log = [e for e in httpx.get(f"{base}/_control/log").json() if e["path"] == "/reverse"]
    finally:
        stop_server(process)

    bound = count * item.get_expiry() / allowed
    sliding, calendar = busiest([e["start"] for e in log])
    return {
        "markets": count,
        "limit": rate,
        "margin": margin,
        "workers": WORKERS,
        "requests at server": len(log),
        "answers stored": stored,
        "wall s": round(wall, 2),
        "bound N/rate s": round(bound, 2),
        "wall / bound": round(wall / bound, 3),
        "busiest 1-s window": sliding,
        "busiest calendar second": calendar,
        "allowed per second": allowed / item.get_expiry(),
        "per worker": " / ".join(str(r["requests"]) for r in results),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", action="append", default=[],
                        help="<markets>:<rate>, e.g. 500:20/second (repeatable)")
    parser.add_argument("--margin", type=float, action="append", default=[],
                        help="RateLimiter margin (default: the geocoder's 0.05; repeatable)")
    args = parser.parse_args()
    margins = args.margin or [geocoder_module.RATE_MARGIN]
    rows = [run(int(n), rate, margin) for margin in margins for n, rate in
            (s.split(":", 1) for s in (args.scenario or ["500:20/second"]))]

    columns = list(rows[0])
    print("| " + " | ".join(columns) + " |")
    print("|" + "|".join("---" for _ in columns) + "|")
    for row in rows:
        print("| " + " | ".join(str(row[c]) for c in columns) + " |")


if __name__ == "__main__":
    main()
