"""The markets tables on SQLite and PostgreSQL: upserts, history, one transaction per write."""

from __future__ import annotations

from datetime import datetime, timezone

import pandas as pd
import pytest
import sqlalchemy as sa

from market_platform import db
from market_platform.markets import store
from market_platform.markets.changes import diff_markets

KEY = ["osm_type", "osm_id"]


def _market(osm_id, name="Edeka", brand="Edeka", market_type="supermarket",
            lon=11.5755, lat=48.1374, osm_type="node", **extra):
    row = dict.fromkeys(store.FIELDS)
    row.update(osm_type=osm_type, osm_id=osm_id, market_type=market_type, name=name,
               brand=brand, lon=lon, lat=lat, **extra)
    return row


def _snapshot(tag: str) -> store.Snapshot:
    sha = (tag * 64)[:64]
    return store.Snapshot(sha, f"/data/{tag}.osm.pbf", "pbf", 1000,
                          datetime(2024, 1, 1, tzinfo=timezone.utc))


def _tables(url):
    engine = db.get_engine(url)
    return {
        name: db.read_table(engine, name, order)
        for name, order in [
            ("markets", KEY),
            ("market_changes", ["snapshot_id", *KEY]),
            ("market_snapshots", ["load_seq"]),
        ]
    }


FIRST = pd.DataFrame([
    _market(1),
    _market(2, name="Bäckerei Müller", brand=None, market_type="bakery"),
    _market(3, name="Rewe", brand="Rewe", osm_type="way"),
])
SECOND = pd.DataFrame([
    _market(1, lon=11.5755 + 0.0005),                    # moved about 37 m
    _market(2, name="Bäckerei Müller", brand=None, market_type="bakery",
            opening_hours="Mo-Sa 06:00-18:00"),           # untracked edit only
    _market(4, name="Lidl", brand="Lidl"),                # new
])                                                        # way 3 closed


def test_first_extract_is_the_baseline_and_rerun_changes_nothing(market_db_url):
    engine = db.get_engine(market_db_url)
    result = store.apply_snapshot(engine, _snapshot("a"), FIRST)
    assert result.baseline and result.markets == 3
    before = _tables(market_db_url)
    assert before["market_changes"] == []
    assert {r["status"] for r in before["markets"]} == {"open"}

    again = store.apply_snapshot(engine, _snapshot("a"), FIRST)
    assert (again.opened, again.changed, again.closed) == (0, 0, 0)
    assert _tables(market_db_url) == before


def test_second_extract_records_opened_changed_and_closed(market_db_url):
    engine = db.get_engine(market_db_url)
    store.apply_snapshot(engine, _snapshot("a"), FIRST)
    result = store.apply_snapshot(engine, _snapshot("b"), SECOND)
    assert (result.opened, result.changed, result.closed) == (1, 1, 1)
    assert result.previous_snapshot_id == "a" * 16

    tables = _tables(market_db_url)
    changes = {(r["osm_type"], r["osm_id"]): r for r in tables["market_changes"]}
    assert set(changes) == {("node", 1), ("node", 4), ("way", 3)}
    assert changes[("node", 1)]["change"] == "changed"
    assert changes[("node", 1)]["fields"] == "location"
    assert changes[("node", 1)]["moved_m"] == pytest.approx(37.1, abs=0.5)
    assert changes[("node", 4)]["change"] == "opened"
    assert changes[("way", 3)]["change"] == "closed"
    assert changes[("way", 3)]["name_old"] == "Rewe"

    markets = {(r["osm_type"], r["osm_id"]): r for r in tables["markets"]}
    assert markets[("way", 3)]["status"] == "closed"
    assert markets[("way", 3)]["closed_in"] == "b" * 16
    assert markets[("node", 2)]["opening_hours"] == "Mo-Sa 06:00-18:00"
    assert markets[("node", 1)]["first_seen"] == "a" * 16
    assert markets[("node", 4)]["first_seen"] == "b" * 16

    # Applying the second extract again leaves every table as it is.
    store.apply_snapshot(engine, _snapshot("b"), SECOND)
    assert _tables(market_db_url) == tables


def test_a_failing_write_leaves_every_table_as_it_was(market_db_url):
    engine = db.get_engine(market_db_url)
    store.apply_snapshot(engine, _snapshot("a"), FIRST)
    before = _tables(market_db_url)

    broken = SECOND.copy()
    broken.loc[2, "market_type"] = None  # violates NOT NULL after the changes were written
    with pytest.raises(sa.exc.IntegrityError):
        store.apply_snapshot(engine, _snapshot("b"), broken)
    assert _tables(market_db_url) == before


def test_renamed_and_retyped_markets_are_changes():
    before = pd.DataFrame([_market(1), _market(2)])
    after = pd.DataFrame([_market(1, name="Edeka Center"), _market(2, market_type="convenience")])
    changes = diff_markets(before, after).set_index("osm_id")
    assert changes.loc[1, "fields"] == "name"
    assert changes.loc[2, "fields"] == "market_type"
    assert changes.loc[2, "market_type_new"] == "convenience"


def test_a_small_move_is_not_a_change():
    before = pd.DataFrame([_market(1)])
    after = pd.DataFrame([_market(1, lat=48.1374 + 0.0002)])  # about 22 m
    assert diff_markets(before, after).empty


def test_postgres_has_a_postgis_point_for_every_market(postgres_url):
    engine = db.get_engine(postgres_url)
    store.apply_snapshot(engine, _snapshot("a"), FIRST)
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT osm_id, ST_X(geom), ST_Y(geom), ST_SRID(geom) FROM markets ORDER BY osm_id"
        )).all()
    assert [(r[0], round(r[1], 4), round(r[2], 4), r[3]) for r in rows] == [
        (1, 11.5755, 48.1374, 4326), (2, 11.5755, 48.1374, 4326), (3, 11.5755, 48.1374, 4326),
    ]


def _apply_in_process(url, tag, frame_records, barrier):
    from market_platform import db as db_module

    barrier.wait(timeout=30)
    store.apply_snapshot(db_module.get_engine(url), _snapshot(tag), pd.DataFrame(frame_records))


def test_two_writers_at_once_are_serialized(market_db_url):
    """Both extracts applied at the same moment: one after the other, nothing lost."""
    import multiprocessing

    engine = db.get_engine(market_db_url)
    store.apply_snapshot(engine, _snapshot("a"), FIRST)
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    workers = [
        context.Process(target=_apply_in_process,
                        args=(market_db_url, tag, frame.to_dict("records"), barrier))
        for tag, frame in (("b", SECOND), ("c", FIRST.iloc[:1]))
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert [w.exitcode for w in workers] == [0, 0]

    snapshots = _tables(market_db_url)["market_snapshots"]
    assert [s["load_seq"] for s in snapshots] == [1, 2, 3]
    second, third = snapshots[1], snapshots[2]
    assert second["previous_snapshot_id"] == "a" * 16
    assert third["previous_snapshot_id"] == second["snapshot_id"]
    # The last writer's extract is the state of the table, whichever came last.
    last = SECOND if third["snapshot_id"] == "b" * 16 else FIRST.iloc[:1]
    markets = _tables(market_db_url)["markets"]
    assert {(m["osm_type"], m["osm_id"]) for m in markets if m["status"] == "open"} == set(
        zip(last["osm_type"], last["osm_id"])
    )
