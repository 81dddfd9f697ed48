"""Print what the last markets_job run left in the market database.

``python -m market_platform.report`` after a run: table sizes, the latest snapshot and its
statistics for Germany, the Länder and the ten Kreise with the most markets.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from market_platform import db, settings

TABLES = ("markets", "market_changes", "market_snapshots", "market_regions",
          "regional_statistics")


def main() -> None:
    url = settings.market_db_url()
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite" and not Path(parsed.database or "").is_file():
        raise SystemExit(f"{parsed.database}: no market database here; set MARKET_DB_URL or "
                         "DAGSTER_HOME as for the run (see README)")
    engine = db.get_engine(url)
    print(f"market database: {engine.url.render_as_string(hide_password=True)}")
    if "market_snapshots" not in sa.inspect(engine).get_table_names():
        raise SystemExit(
            "no markets_job run has written to this database yet; set MARKET_DB_URL or "
            "DAGSTER_HOME as for the run (see README)"
        )
    with engine.connect() as conn:
        for table in TABLES:
            count = conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()
            print(f"  {table:<20} {count:>7} rows")
        latest = conn.execute(sa.text(
            "SELECT snapshot_id, source, osm_timestamp, markets FROM market_snapshots "
            "ORDER BY load_seq DESC LIMIT 1"
        )).first()
        stats = pd.read_sql(
            sa.text("SELECT level, ags, name, markets, n_supermarket, markets_per_10k, "
                    "markets_per_km2, top_brands, markets_change FROM regional_statistics "
                    "WHERE snapshot_id = :s"),
            conn, params={"s": latest.snapshot_id},
        )
    print(f"latest snapshot {latest.snapshot_id}: {latest.markets} markets from {latest.source} "
          f"(OSM data of {latest.osm_timestamp or 'unknown date'})")
    stats["markets_change"] = stats["markets_change"].astype("Int64")
    upper = stats[stats["level"] != "kreis"]
    kreise = stats[stats["level"] == "kreis"].sort_values("markets", ascending=False).head(10)
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        print(pd.concat([upper, kreise]).to_string(index=False))


if __name__ == "__main__":
    main()
