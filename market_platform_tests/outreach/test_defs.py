"""The outreach assets materialized in-process against the stub servers, and their place in
the code location's asset graph."""

from __future__ import annotations

import io

import dagster as dg
import matplotlib
import pandas as pd

from market_platform import db
from market_platform.defs import outreach as defs
from market_platform.defs.resources import MarketDatabase
from market_platform.markets import store as market_store
from market_platform.occupancy import store as occupancy_store
from market_platform.regions import store as region_store
from market_platform.regions.statistics import TYPE_COLUMNS

from .conftest import TELEGRAM_TOKEN, received

matplotlib.use("Agg")

SUBSCRIBERS = """subscriber_id,email,telegram_chat_id,channel,language,markets,regions,consent_at
anna,anna@ok.example,,email,de,heidenheim.arkaden,09162,2024-01-02T09:30:00+01:00
ben,,5550001,telegram,en,node/42,DE,2024-02-01T10:00:00Z
zoe,zoe@ok.example,,email,de,heidenheim.arkaden,09,2024-01-05T12:00:00Z
"""


def _seed_forecasts(engine):
    sites = pd.DataFrame({
        "site_id": ["heidenheim.arkaden", "heidenheim.knoepfle_nord"], "dataset": "heidenheim",
        "name": ["Schloss-Arkaden", "Knöpfle Nord"], "kind": "count", "capacity": None,
        "latitude": None, "longitude": None, "timezone": "Europe/Berlin", "country": "DE",
        "subdivision": "BW", "osm_market_id": [None, "42"],
    })
    hours = pd.date_range("2024-05-12 22:00", periods=168, freq="h", tz="UTC")
    frames = []
    for site_id, busy in (("heidenheim.arkaden", 180.0), ("heidenheim.knoepfle_nord", 100.0)):
        values = [busy if (h.day, h.hour) == (14, 15) else 40.0 + (h.hour == 10) * 20
                  for h in hours]
        frames.append(pd.DataFrame({
            "site_id": site_id, "hour_utc": hours, "model": "seasonal_naive",
            "forecast": values, "lower_80": 0.0, "upper_80": 300.0, "lower_95": 0.0,
            "upper_95": 400.0,
        }))
    occupancy_store.create_tables(engine)
    with engine.begin() as conn:
        occupancy_store.write_sites(conn, sites)
        occupancy_store.write_forecasts(conn, pd.concat(frames), "2024-05-12")


def _seed_statistics(engine, data_dir):
    market_store.metadata.create_all(engine)
    with engine.begin() as conn:
        db.upsert(conn, market_store.snapshots_table, [{
            "snapshot_id": "5a1e0c0ffee00042", "sha256": "5a1e0c0ffee00042" * 4,
            "source": "muenchen.osm.pbf", "source_format": "pbf", "size_bytes": 1,
            "osm_timestamp": None, "markets": 321, "load_seq": 1,
            "previous_snapshot_id": None,
        }], ["snapshot_id"])
    rows = []
    for level, ags, name, markets, population in (
        ("germany", "DE", "Deutschland", 321, 1_484_226),
        ("land", "09", "Bayern", 321, 1_484_226),
        ("kreis", "09162", "München, Landeshauptstadt", 321, 1_484_226),
    ):
        rows.append({"level": level, "ags": ags, "name": name, "population": population,
                     "area_km2": 310.7, "markets": markets,
                     **{c: 0 for c in TYPE_COLUMNS}, "n_supermarket": 200, "n_bakery": 121,
                     "markets_per_10k": markets / population * 10_000,
                     "markets_per_km2": markets / 310.7, "top_brands": "REWE, Edeka",
                     "top_brand_share": 0.41, "markets_change": 3})
    region_store.replace_statistics(engine, "5a1e0c0ffee00042", pd.DataFrame(rows), None)
    figure = matplotlib.figure.Figure(figsize=(1, 1))
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    maps = data_dir / "maps"
    maps.mkdir(parents=True)
    (maps / "markets_per_10k_5a1e0c0ffee00042.png").write_bytes(buffer.getvalue())


def test_outreach_assets_end_to_end(tmp_path, monkeypatch, smtp, http, dns_server):
    url = f"sqlite:///{tmp_path / 'markets.sqlite'}"
    data_dir = tmp_path / "data"
    csv = tmp_path / "subscribers.csv"
    csv.write_text(SUBSCRIBERS)
    dns_server.configure(records={"ok.example.": {"MX": ["10 mx.ok.example."]},
                                  "mx.ok.example.": {"A": ["127.0.0.1"]}})
    smtp.configure(strict={"@ok.example": ["anna"]})
    http.configure(telegram_token=TELEGRAM_TOKEN)
    for name, value in {
        "MARKET_PLATFORM_DATA_DIR": str(data_dir), "OUTREACH_SUBSCRIBERS_FILE": str(csv),
        "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(smtp.port), "SMTP_STARTTLS": "off",
        "SMTP_FROM": "Marktplattform <alerts@platform.example>",
        "TELEGRAM_API_URL": f"http://127.0.0.1:{http.port}",
        "TELEGRAM_BOT_TOKEN": TELEGRAM_TOKEN, "VERIFY_SMTP_PORT": str(smtp.port),
        "VERIFY_DNS_SERVERS": f"127.0.0.1:{dns_server.port}", "VERIFY_DNS_TIMEOUT": "1",
        "VERIFY_RATE_PER_DOMAIN": "50/second", "RATE_LIMIT_STORAGE_URL": "memory://",
    }.items():
        monkeypatch.setenv(name, value)
    engine = db.get_engine(url)
    _seed_forecasts(engine)
    _seed_statistics(engine, data_dir)
    resources = {"market_db": MarketDatabase(url=url), "outreach": defs.OutreachResource()}

    people = dg.materialize([defs.subscribers, defs.verified_subscribers], resources=resources)
    alerts = dg.materialize([defs.busy_alerts], partition_key="2024-05-12",
                            resources=resources)
    digests = dg.materialize([defs.weekly_digests], partition_key="2024-05-13",
                             resources=resources)

    outbox = {r["message_key"]: r for r in db.read_table(engine, "outbox")}
    assert {k: r["status"] for k, r in outbox.items()} == {
        "busy_alert:2024-05-14:anna": "delivered",
        "busy_alert:2024-05-14:ben": "delivered",
        "busy_alert:2024-05-14:zoe": "skipped",
        "weekly_digest:2024-W20:anna": "delivered",
        "weekly_digest:2024-W20:ben": "delivered",
        "weekly_digest:2024-W20:zoe": "skipped",
    }
    assert outbox["busy_alert:2024-05-14:zoe"]["reason"].startswith(
        "email invalid: mailbox unknown: 550")
    assert "Schloss-Arkaden" in outbox["busy_alert:2024-05-14:anna"]["subject"]
    assert "Knöpfle Nord" in outbox["busy_alert:2024-05-14:ben"]["body"]
    assert "München, Landeshauptstadt" in outbox["weekly_digest:2024-W20:anna"]["body"]
    assert "je 10.000 Einwohner: 2,16 (Deutschland: 2,16)" in outbox[
        "weekly_digest:2024-W20:anna"]["body"]
    mails = [e for e in smtp.events() if e["event"] == "data"]
    assert sorted((m["rcpt"][0], m["multipart"]) for m in mails) == [
        ("anna@ok.example", False), ("anna@ok.example", True)]
    assert received(None, http) == {"5550001": 2}

    for result in (people, alerts, digests):
        for event in result.get_asset_materialization_events():
            text = str(event.event_specific_data.materialization.metadata)
            assert "@ok.example" not in text and "5550001" not in text
        assert all(c.passed for c in result.get_asset_check_evaluations())
    verified = people.asset_materializations_for_node("verified_subscribers")[0].metadata
    assert verified["by_status"].value == {"valid": 1, "invalid": 1}

    # Nothing waits for a retry, so the retry sensor starts nothing.
    context = dg.build_sensor_context(resources={"market_db": MarketDatabase(url=url)})
    assert isinstance(defs.outbox_retry_sensor(context), dg.SkipReason)


def test_lineage_in_the_code_location():
    from market_platform.definitions import defs as location

    graph = location.resolve_asset_graph()

    def parents(name):
        return sorted(k.to_user_string() for k in graph.get(dg.AssetKey(name)).parent_keys)

    assert parents("verified_subscribers") == ["subscribers"]
    assert parents("busy_alerts") == ["occupancy_forecasts", "verified_subscribers"]
    assert parents("weekly_digests") == ["regional_statistics", "verified_subscribers"]
    for name in ("subscribers", "verified_subscribers", "busy_alerts", "weekly_digests"):
        assert graph.get(dg.AssetKey(name)).assets_def.op.tags["dagster-celery/queue"] == "io"
    assert location.get_job_def("outbox_dispatch_job") is not None
    assert location.get_sensor_def("outbox_retry_sensor") is not None
