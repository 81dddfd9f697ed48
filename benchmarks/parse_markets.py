"""How fast and how lean ``read_markets`` is, next to a bare pyosmium scan and to pyrosm.

Run by hand from the repository root::

    .venv/bin/python benchmarks/parse_markets.py [--repeat 5]

It prints a markdown table for each PBF in shared data and for a large synthetic extract: the
Lauf extract tiled 20 times (ids shifted by a per-tile offset, coordinates by a per-tile
lon/lat step so that no tile overlaps another), built once with pyosmium and cached in the
system's temp folder. None of the real extracts has a market mapped as a multipolygon
relation, the one case that makes ``read_markets`` read the file a second time (ways only),
so a last row measures that case too: the same tiling with Lauf's five building
multipolygons tagged ``shop=department_store``. Every measurement runs in a fresh subprocess,
so that one library's caches and memory never count for another. The subprocess times only
the call (imports excluded) and reports its own peak RSS (``getrusage``), which includes what
its imports cost.

The goals: ``read_markets`` within 1.5x of the bare scan, and at most 150 MB more peak memory
on the 20x extract than on the file it was tiled from.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OSM = ROOT / "../shared/data/osm"
EXTRACTS = [
    OSM / "muenchen_altstadt_2020-07-20.osm.pbf",
    OSM / "lauf_an_der_pegnitz_2020-01-15.osm.pbf",
    OSM / "helgoland_2026-07.osm.pbf",
]
TILED_SOURCE = OSM / "lauf_an_der_pegnitz_2020-01-15.osm.pbf"
TILES = 20
TILE_COLUMNS = 5
CACHE = Path(tempfile.gettempdir()) / "market_platform_benchmarks"

MODES = ("read_markets", "pyosmium_scan", "pyrosm")
MARKET_SHOPS = [
    "supermarket",
    "convenience",
    "greengrocer",
    "butcher",
    "bakery",
    "beverages",
    "chemist",
    "department_store",
    "mall",
]
GOAL_RATIO = 1.5
GOAL_EXTRA_MB = 150


# --- what runs inside each measuring subprocess --------------------------------------------


def measure(mode: str, path: str) -> dict:
    """Run one mode once on ``path``; the imports happen before the clock starts."""
    import resource

    if mode == "read_markets":
        from market_platform.markets.reading import read_markets

        def run() -> int:
            return len(read_markets(path).markets)

    elif mode == "pyosmium_scan":
        import osmium
        from osmium.filter import KeyFilter

        def run() -> int:
            # The floor: one streaming pass with the C++ key filter, and the tag rule in Python.
            found = 0
            for obj in osmium.FileProcessor(path).with_filter(KeyFilter("shop", "amenity")):
                tags = obj.tags
                if tags.get("shop") in MARKET_SHOPS or tags.get("amenity") == "marketplace":
                    found += 1
            return found

    else:
        from pyrosm import OSM as PyrosmOSM

        # pyrosm 0.25 keeps each read's result in a cache under the temp folder: without
        # clearing it, every run after the first times a parquet read, not the parse.
        PyrosmOSM.clear_cache(path)

        def run() -> int:
            custom = {"shop": MARKET_SHOPS, "amenity": ["marketplace"]}
            pois = PyrosmOSM(path, progress=False).get_pois(custom_filter=custom)
            return 0 if pois is None else len(pois)

    started = time.perf_counter()
    found = run()
    seconds = time.perf_counter() - started
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {"seconds": seconds, "peak_mb": peak_kb / 1024, "found": found}


# --- the synthetic large extract -----------------------------------------------------------


def tiled_extract(source: Path, tiles: int, market_relations: bool = False) -> Path:
    """``source`` repeated ``tiles`` times side by side; cached by the source's content.

    With ``market_relations`` every building multipolygon becomes a department store.
    """
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:12]
    variant = "_relations" if market_relations else ""
    stem = source.name.removesuffix(".osm.pbf")
    target = CACHE / f"{stem}_x{tiles}{variant}_{digest}.osm.pbf"
    if target.exists():
        return target

    import osmium

    max_id, west, south, east, north = _extent(source)
    # A power of ten above every id keeps the tiles' ids apart and readable (tile k: k·10^n + id).
    offset = 10 ** math.ceil(math.log10(max_id + 1))
    step_lon, step_lat = (east - west) * 1.1, (north - south) * 1.1

    CACHE.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial.osm.pbf")
    started = time.perf_counter()
    with osmium.SimpleWriter(str(partial), overwrite=True) as writer:
        # All nodes, then all ways, then all relations: the order readers rely on.
        for entity in (osmium.osm.NODE, osmium.osm.WAY, osmium.osm.RELATION):
            for tile in range(tiles):
                shift = tile * offset
                d_lon = (tile % TILE_COLUMNS) * step_lon
                d_lat = (tile // TILE_COLUMNS) * step_lat
                for obj in osmium.FileProcessor(str(source), entity):
                    _write_shifted(writer, obj, shift, d_lon, d_lat, market_relations)
    partial.rename(target)
    print(
        f"built {target} ({target.stat().st_size / 1e6:.1f} MB) in "
        f"{time.perf_counter() - started:.0f} s",
        file=sys.stderr,
    )
    return target


def _extent(source: Path) -> tuple[int, float, float, float, float]:
    import osmium

    max_id, lons, lats = 0, [], []
    for obj in osmium.FileProcessor(str(source)):
        max_id = max(max_id, obj.id)
        if obj.is_node() and obj.location.valid():
            lons.append(obj.location.lon)
            lats.append(obj.location.lat)
    return max_id, min(lons), min(lats), max(lons), max(lats)


def _write_shifted(writer, obj, shift, d_lon, d_lat, market_relations: bool) -> None:
    if obj.is_node():
        location = obj.location
        moved = (location.lon + d_lon, location.lat + d_lat) if location.valid() else None
        writer.add_node(obj.replace(id=obj.id + shift, location=moved))
    elif obj.is_way():
        nodes = [ref.ref + shift for ref in obj.nodes]
        writer.add_way(obj.replace(id=obj.id + shift, nodes=nodes))
    else:
        members = [(member.type, member.ref + shift, member.role) for member in obj.members]
        tags = dict(obj.tags)
        if market_relations and tags.get("type") == "multipolygon" and "building" in tags:
            tags["shop"] = "department_store"
        writer.add_relation(obj.replace(id=obj.id + shift, members=members, tags=tags))


# --- the driver ----------------------------------------------------------------------------


def run_once(mode: str, path: Path) -> dict:
    command = [sys.executable, __file__, "--measure", mode, str(path)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{mode} on {path.name} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def benchmark(path: Path, repeat: int) -> dict:
    """Best and median seconds and the largest peak memory per mode.

    The modes take turns in each round so that a busy machine slows them alike. The ratio uses
    the best time: on a shared machine other processes only ever add time, so the best of
    several runs is the closest to what the code itself costs.
    """
    runs = {mode: [] for mode in MODES}
    for _ in range(repeat):
        for mode in MODES:
            runs[mode].append(run_once(mode, path))
    return {
        mode: {
            "seconds": min(run["seconds"] for run in results),
            "median": statistics.median(run["seconds"] for run in results),
            "peak_mb": max(run["peak_mb"] for run in results),
            "found": results[0]["found"],
        }
        for mode, results in runs.items()
    }


def table(rows: list[tuple[str, Path, dict]], repeat: int) -> str:
    lines = [
        "| extract | size (MB) | markets | read_markets (s) | pyosmium scan (s) | pyrosm (s) "
        "| read − scan (ms) | ratio read/scan | ratio of medians | read_markets peak (MB) "
        "| scan peak (MB) | pyrosm peak (MB) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for label, path, result in rows:
        read, scan, pyrosm = (result[mode] for mode in MODES)
        lines.append(
            f"| {label} | {path.stat().st_size / 1e6:.1f} | {read['found']} "
            f"| {read['seconds']:.3f} | {scan['seconds']:.3f} | {pyrosm['seconds']:.3f} "
            f"| {(read['seconds'] - scan['seconds']) * 1000:.0f} "
            f"| {read['seconds'] / scan['seconds']:.2f} | {read['median'] / scan['median']:.2f} "
            f"| {read['peak_mb']:.0f} | {scan['peak_mb']:.0f} | {pyrosm['peak_mb']:.0f} |"
        )
    lines.append("")
    lines.append(
        f"Times are the best of {repeat} runs, each in a fresh process (imports not timed); "
        f"peak memory is the largest peak RSS of those runs, imports included."
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="rounds per extract")
    parser.add_argument("--measure", nargs=2, metavar=("MODE", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(*args.measure)))
        return

    tiled_name = f"{TILED_SOURCE.name} ×{TILES} (tiled)"
    labelled = [(path.name, path) for path in EXTRACTS] + [
        (tiled_name, tiled_extract(TILED_SOURCE, TILES)),
        (
            f"{tiled_name}, building multipolygons as shops",
            tiled_extract(TILED_SOURCE, TILES, market_relations=True),
        ),
    ]
    rows = []
    for label, path in labelled:
        print(f"measuring {label} ...", file=sys.stderr)
        rows.append((label, path, benchmark(path, args.repeat)))

    print(table(rows, args.repeat))
    print()
    print(summary(rows))


def summary(rows: list[tuple[str, Path, dict]]) -> str:
    results = {path: result for _, path, result in rows}
    tiled = rows[-2][2]["read_markets"]
    single = results[TILED_SOURCE]["read_markets"]
    ratios = [
        result["read_markets"]["seconds"] / result["pyosmium_scan"]["seconds"]
        for _, _, result in rows[:-1]
    ]
    worst = max(ratios)
    relations = rows[-1][2]
    relations_ratio = relations["read_markets"]["seconds"] / relations["pyosmium_scan"]["seconds"]
    extra = tiled["peak_mb"] - single["peak_mb"]
    same = tiled["found"] == TILES * single["found"]
    return "\n".join(
        [
            f"- slowest ratio read_markets / bare scan: {worst:.2f} (goal ≤ {GOAL_RATIO}): "
            f"{'met' if worst <= GOAL_RATIO else 'NOT met'}",
            f"- with market multipolygons (second pass over the ways): {relations_ratio:.2f}",
            f"- peak memory of read_markets, ×{TILES} minus ×1: {extra:.0f} MB "
            f"(goal ≤ {GOAL_EXTRA_MB} MB): {'met' if extra <= GOAL_EXTRA_MB else 'NOT met'}",
            f"- markets in the ×{TILES} extract: {tiled['found']} = {TILES} × {single['found']}: "
            f"{'yes' if same else 'NO'}",
        ]
    )


if __name__ == "__main__":
    main()
