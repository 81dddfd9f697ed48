"""Print what the last markets_job run left in the market database.

``python -m market_platform.report`` after a run: table sizes, the latest snapshot and its
statistics for Germany, the Länder and the ten Kreise with the most markets.
"""

from __future__ import annotations

import pandas as pd
import sqlalchemy as sa

from market_platform import db, settings

TABLES = ("markets", "market_changes", "market_snapshots", "market_regions",
          "regional_statistics")


def main() -> None:
    engine = db.get_engine(settings.market_db_url())
    print(f"market database: {engine.url.render_as_string(hide_password=True)}")
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
    upper = stats[stats["level"] != "kreis"]
    kreise = stats[stats["level"] == "kreis"].sort_values("markets", ascending=False).head(10)
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        print(pd.concat([upper, kreise]).to_string(index=False))


if __name__ == "__main__":
    main()
