"""Occupancy on Dagster: daily observations, models with their backtest, hourly forecasts.

Thin definitions over ``market_platform.occupancy``: each asset reads, calls the domain
functions, writes in one transaction and reports counts, flags, scores and charts.

* ``occupancy_observations`` (daily, Europe/Berlin, io): reads the sources of
  ``OCCUPANCY_SOURCES`` (or the landing files given in its config) and upserts the hours of
  its partition window. A backfill is one run for the whole range (single-run policy).
* ``occupancy_models`` (daily, cpu): backtests every model on all history before the end of
  its day, picks one per site and forecasts the next 168 hours.
* ``occupancy_forecasts`` (daily, cpu): publishes those forecasts with intervals to the
  ``occupancy_forecasts`` table, keyed on (site, hour, forecast run), with a chart per site.

``occupancy_schedule`` runs ``occupancy_job`` at 05:00 Europe/Berlin for yesterday's partition;
``occupancy_landing_sensor`` starts one ``occupancy_ingest_job`` run per new file in
``OCCUPANCY_LANDING_DIR`` once the file has not changed for ``OCCUPANCY_LANDING_SETTLE_SECONDS``
(default 60), covering the days that file holds.
"""

import json
import os
import time
from pathlib import Path

import dagster as dg
import pandas as pd
import sqlalchemy as sa

from market_platform import settings
from market_platform.defs.resources import MarketDatabase
from market_platform.defs.work import CPU, IO, work
from market_platform.errors import InputError
from market_platform.execution import executor_for
from market_platform.occupancy import adapters, backtest, charts, forecast, ingest, quality, store
from market_platform.occupancy.schema import BERLIN

WORK_IO = work(IO)
WORK_CPU = work(CPU)
GROUP = "occupancy"
#: Weeks of stored history the models read. It covers backtest origins up to 26 weeks back
#: (backtest.LOOKBACK_WEEKS) with the 4 weeks each needs before it, and the boosted model's
#: 30 training weeks (models.GBM_TRAINING_WEEKS) before recent origins, plus its weekly lags.
HISTORY_WEEKS = 42
#: Charts embedded in the forecast metadata; all of them are written as files as well.
CHARTS_IN_METADATA = 50

daily_partitions = dg.DailyPartitionsDefinition(start_date="2022-11-01", timezone=BERLIN)


class ObservationsConfig(dg.Config):
    """Landing files to ingest instead of the configured sources (set by the landing sensor)."""

    files: list[str] = []


@dg.asset(
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    op_tags=WORK_IO,
    group_name=GROUP,
    kinds={"pandas", "sql"},
    check_specs=[
        dg.AssetCheckSpec("unique_site_hour", asset="occupancy_observations"),
        dg.AssetCheckSpec("no_negative_values", asset="occupancy_observations"),
    ],
)
def occupancy_observations(
    context: dg.AssetExecutionContext, config: ObservationsConfig, market_db: MarketDatabase
):
    """People counts and occupancy per site and UTC hour, with outage and backlog flags.

    Counts are summed per hour (complete hours only), occupancy is the mean of the hour's
    samples; gaps stay gaps. Each run stores the hours of its partition window (local days in
    Europe/Berlin) and replaces what was stored for them.
    """
    started = time.monotonic()
    window = context.partition_time_window
    start, end = pd.Timestamp(window.start), pd.Timestamp(window.end)
    paths = [Path(f) for f in config.files] or ingest.source_paths()

    hourly, sites = ingest.load(paths)
    in_window = hourly[(hourly["hour_utc"] >= start) & (hourly["hour_utc"] < end)]
    stored_sites = sites[sites["site_id"].isin(in_window["site_id"].unique())]

    engine = market_db.engine
    with engine.begin() as conn:
        store.metadata.create_all(conn)
        store.write_sites(conn, stored_sites)
        written = store.write_observations(conn, in_window, (start, end))
    context.log.info(
        f"stored {written} hourly values of {len(stored_sites)} sites for "
        f"{start:%Y-%m-%d %H:%M}..{end:%Y-%m-%d %H:%M} UTC from {len(paths)} sources "
        f"in {time.monotonic() - started:.1f} s"
    )

    yield dg.MaterializeResult(
        metadata={
            "rows": dg.MetadataValue.int(written),
            "sites": dg.MetadataValue.int(len(stored_sites)),
            "gap_hours": dg.MetadataValue.int(int(in_window["value"].isna().sum())),
            "flags": dg.MetadataValue.md(_flag_table(in_window)),
            "sources": dg.MetadataValue.text("\n".join(str(p) for p in paths)),
            "seconds": dg.MetadataValue.float(round(time.monotonic() - started, 2)),
        }
    )
    yield from _observation_checks(engine, start, end)


def _flag_table(hourly: pd.DataFrame) -> str:
    lines = [
        "| site | hours | gaps | outage hours | backlog hours | closed hours |",
        "|---|---|---|---|---|---|",
    ]
    for site_id, rows in hourly.groupby("site_id", sort=True):
        counts = quality.describe(rows["flags"].to_numpy())
        lines.append(
            f"| {site_id} | {len(rows)} | {int(rows['value'].isna().sum())} | "
            f"{counts['outage']} | {counts['backlog']} | {counts['closed']} |"
        )
    return "\n".join(lines)


def _observation_checks(engine, start: pd.Timestamp, end: pd.Timestamp):
    table = store.observations_table
    window = sa.and_(table.c.hour_utc >= start.to_pydatetime(), table.c.hour_utc < end)
    duplicates = (
        sa.select(table.c.site_id, table.c.hour_utc, sa.func.count().label("n"))
        .where(window)
        .group_by(table.c.site_id, table.c.hour_utc)
        .having(sa.func.count() > 1)
    )
    negatives = sa.select(table.c.site_id, table.c.hour_utc).where(window, table.c.value < 0)
    with engine.connect() as conn:
        dupes = conn.execute(duplicates).all()
        negative = conn.execute(negatives).all()
    yield dg.AssetCheckResult(
        check_name="unique_site_hour",
        passed=not dupes,
        metadata={"duplicates": len(dupes), "first": str(dupes[0]) if dupes else ""},
    )
    yield dg.AssetCheckResult(
        check_name="no_negative_values",
        passed=not negative,
        metadata={
            "negative_rows": len(negative),
            "sites": ", ".join(sorted({r.site_id for r in negative})),
        },
    )


@dg.asset(
    partitions_def=daily_partitions,
    deps=[occupancy_observations],
    op_tags=WORK_CPU,
    group_name=GROUP,
    kinds={"statsmodels", "scikitlearn"},
    check_specs=[
        dg.AssetCheckSpec(
            "chosen_model_not_worse_than_seasonal_naive",
            asset="occupancy_models",
            description="Backtest MAE of each site's chosen model <= that of the one-week-"
            "earlier baseline; the failing sites are named.",
        )
    ],
)
def occupancy_models(context: dg.AssetExecutionContext, market_db: MarketDatabase):
    """Backtest of every model per site, the choice per site and its 168-hour forecast.

    Four weekly origins before the end of the partition day, 168 hours each; MAE and MAE
    relative to the one-week-earlier baseline per site, model and origin are stored in
    ``occupancy_backtest_scores``. Sites with too little history fall back to that baseline.
    """
    started = time.monotonic()
    run = context.partition_key
    end = pd.Timestamp(context.partition_time_window.end).tz_convert("UTC")

    engine = market_db.engine
    store.create_tables(engine)
    history_start = end - pd.Timedelta(weeks=HISTORY_WEEKS)
    observations = store.read_observations(engine, start=history_start, end=end)
    sites = store.read_sites(engine)
    series = forecast.series_from_observations(observations, sites, end)
    result = forecast.run_all(series, end)

    chosen = dict(zip(result.choice.get("site_id", []), result.choice.get("model", [])))
    with engine.begin() as conn:
        written = store.write_scores(conn, result.scores, chosen, run)
    for note in result.notes.values():
        context.log.warning(note)
    context.log.info(
        f"backtested {len(chosen)} sites ({written} scores) in {time.monotonic() - started:.1f} s"
    )

    yield dg.Output(
        result,
        metadata={
            "sites_modelled": dg.MetadataValue.int(len(chosen)),
            "sites_skipped_or_fallback": dg.MetadataValue.int(len(result.notes)),
            "notes": dg.MetadataValue.md("\n".join(f"- {n}" for n in result.notes.values())),
            "backtest_scores": dg.MetadataValue.md(_score_table(result)),
            "flags_in_history": dg.MetadataValue.md(_history_flags(series)),
            "seconds": dg.MetadataValue.float(round(time.monotonic() - started, 2)),
        },
    )
    yield _model_check(result)


def _score_table(result: forecast.GroupResult) -> str:
    if result.scores.empty:
        return "no site could be backtested"
    relative = backtest.relative_by_model(result.scores)
    columns = [c for c in backtest.CANDIDATES if c in relative.columns]
    choice = result.choice.set_index("site_id")
    lines = [
        "| site | chosen | " + " | ".join(columns) + " |",
        "|---|---|" + "---|" * len(columns),
    ]
    for (_, site_id), row in relative.iterrows():
        cells = " | ".join(f"{row[c]:.3f}" if pd.notna(row[c]) else "-" for c in columns)
        lines.append(f"| {site_id} | {choice.loc[site_id, 'model']} | {cells} |")
    return "MAE relative to the one-week-earlier baseline, 4 weekly origins\n\n" + "\n".join(
        lines
    )


def _history_flags(series) -> str:
    lines = ["| site | outage hours | backlog hours | closed hours |", "|---|---|---|---|"]
    for item in series:
        counts = quality.describe(item.flags)
        lines.append(
            f"| {item.site_id} | {counts['outage']} | {counts['backlog']} | {counts['closed']} |"
        )
    return "\n".join(lines)


def _model_check(result: forecast.GroupResult) -> dg.AssetCheckResult:
    scored = result.choice[result.choice.get("scored", pd.Series(dtype=bool)).fillna(False)]
    if scored.empty:
        return dg.AssetCheckResult(
            check_name="chosen_model_not_worse_than_seasonal_naive",
            passed=True,
            metadata={"scored_sites": 0},
        )
    worse = scored[scored["mae"] > scored["mae_reference"] + 1e-9]
    return dg.AssetCheckResult(
        check_name="chosen_model_not_worse_than_seasonal_naive",
        passed=worse.empty,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "scored_sites": len(scored),
            "failing_sites": ", ".join(worse["site_id"]) or "none",
            "mean_choice_rel": round(float(scored["choice_rel"].mean()), 3),
            "mean_choice_holdout_rel": round(float(scored["choice_holdout_rel"].mean()), 3),
        },
    )


@dg.asset(
    partitions_def=daily_partitions,
    op_tags=WORK_CPU,
    group_name=GROUP,
    kinds={"sql"},
)
def occupancy_forecasts(
    context: dg.AssetExecutionContext,
    occupancy_models: forecast.GroupResult,
    market_db: MarketDatabase,
) -> dg.MaterializeResult:
    """Hourly forecasts for the 168 hours after the partition day, with 80 % and 95 % intervals.

    Never negative and never above a site's capacity; stored in ``occupancy_forecasts`` keyed
    on (site, hour, forecast run = partition key), so a rerun replaces its own rows.
    """
    run = context.partition_key
    frame = occupancy_models.forecasts
    engine = market_db.engine
    store.create_tables(engine)
    with engine.begin() as conn:
        written = store.write_forecasts(conn, frame, run)

    sites = store.read_sites(engine).set_index("site_id")
    folder = settings.data_dir() / "occupancy" / "charts" / run
    metadata: dict[str, dg.MetadataValue] = {
        "rows": dg.MetadataValue.int(written),
        "sites": dg.MetadataValue.int(frame["site_id"].nunique()),
        "chart_folder": dg.MetadataValue.path(str(folder)),
    }
    for index, (site_id, rows) in enumerate(frame.groupby("site_id", sort=True)):
        timezone = sites.loc[site_id, "timezone"] if site_id in sites.index else BERLIN
        history = occupancy_models.history.get(site_id, pd.Series(dtype=float))
        png = charts.forecast_png(site_id, history, rows, timezone)
        charts.save(png, folder, site_id)
        if index < CHARTS_IN_METADATA:
            metadata[f"chart {site_id}"] = dg.MetadataValue.md(charts.markdown_image(png, site_id))
    context.log.info(f"stored {written} forecast hours for {metadata['sites'].value} sites")
    return dg.MaterializeResult(metadata=metadata)


@dg.asset_check(asset=occupancy_forecasts, description="No stored forecast is negative, above "
                "capacity, or outside its own intervals.")
def occupancy_forecasts_within_bounds(market_db: MarketDatabase) -> dg.AssetCheckResult:
    f, s = store.forecasts_table, store.sites_table
    capacity = sa.func.coalesce(s.c.capacity, f.c.upper_95)
    bad = (
        sa.select(f.c.site_id, sa.func.count().label("n"))
        .select_from(f.join(s, f.c.site_id == s.c.site_id, isouter=True))
        .where(
            sa.or_(
                f.c.lower_95 < 0,
                f.c.upper_95 > capacity + 1e-6,
                f.c.lower_95 > f.c.lower_80,
                f.c.lower_80 > f.c.forecast,
                f.c.forecast > f.c.upper_80,
                f.c.upper_80 > f.c.upper_95,
            )
        )
        .group_by(f.c.site_id)
    )
    store.create_tables(market_db.engine)
    with market_db.engine.connect() as conn:
        rows = conn.execute(bad).all()
    return dg.AssetCheckResult(
        passed=not rows,
        metadata={"failing_sites": ", ".join(r.site_id for r in rows) or "none"},
    )


occupancy_job = dg.define_asset_job(
    "occupancy_job",
    selection=[occupancy_observations, occupancy_models, occupancy_forecasts],
    partitions_def=daily_partitions,
    description="Yesterday's observations, the backtest and model choice, the new forecast.",
    executor_def=executor_for("occupancy_job"),
)

occupancy_ingest_job = dg.define_asset_job(
    "occupancy_ingest_job",
    selection=[occupancy_observations],
    partitions_def=daily_partitions,
    description="Ingest one landing file into the observations of the days it covers.",
    executor_def=executor_for("occupancy_ingest_job"),
)

occupancy_schedule = dg.build_schedule_from_partitioned_job(
    occupancy_job, name="occupancy_schedule", hour_of_day=5, minute_of_hour=0
)


def landing_settle_seconds() -> float:
    return float(os.environ.get("OCCUPANCY_LANDING_SETTLE_SECONDS", "60"))


def _landing_candidates(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    # Writers should drop a file under a temporary name and rename it when complete; names
    # starting with "." or ending in ".tmp"/".part" are such files and are left alone.
    return sorted(
        p for p in folder.glob("*.csv") if p.is_file() and not p.name.startswith(".")
    )


def _partition_range(path: Path) -> tuple[str, str] | None:
    """First and last partition key of the days a landing file holds (clamped to the range)."""
    observations = adapters.read_observations(path)
    if observations.readings.empty:
        return None
    days = ingest.local_day_of(observations.readings["ts_utc"])
    keys = daily_partitions.get_partition_keys()
    first, last = max(days.min(), keys[0]), min(days.max(), keys[-1])
    if first > last:
        return None
    return first, last


@dg.sensor(
    job=occupancy_ingest_job,
    minimum_interval_seconds=60,
    description="One run per new or changed CSV file in OCCUPANCY_LANDING_DIR.",
)
def occupancy_landing_sensor(context: dg.SensorEvaluationContext):
    folder = settings.occupancy_landing_dir()
    seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    now = time.time()
    requests, current = [], {}

    for path in _landing_candidates(folder):
        stat = path.stat()
        signature = f"{stat.st_mtime_ns}:{stat.st_size}"
        if now - stat.st_mtime < landing_settle_seconds():
            # Possibly still being written: keep the old signature so it is looked at again.
            if path.name in seen:
                current[path.name] = seen[path.name]
            continue
        current[path.name] = signature
        if seen.get(path.name) == signature:
            continue
        requests.append(_landing_request(context, path, signature))

    # The cursor holds only files still present, so it stays as small as the folder.
    context.update_cursor(json.dumps(current, sort_keys=True))
    if not requests:
        return dg.SkipReason(f"no new settled file in {folder}")
    return requests


def _landing_request(context, path: Path, signature: str) -> dg.RunRequest:
    run_config = {"ops": {"occupancy_observations": {"config": {"files": [str(path)]}}}}
    run_key = f"{path.name}:{signature}"
    try:
        days = _partition_range(path)
    except InputError as error:
        # Launch anyway: the run fails with the same message, visible in the UI, and
        # nothing is written.
        context.log.warning(f"landing file {path.name} will fail: {error}")
        days = None
    if days is None:
        last = daily_partitions.get_last_partition_key()
        return dg.RunRequest(run_key=run_key, run_config=run_config, partition_key=last)
    return dg.RunRequest(
        run_key=run_key,
        run_config=run_config,
        tags={
            "dagster/asset_partition_range_start": days[0],
            "dagster/asset_partition_range_end": days[1],
            "market_platform/landing_file": path.name,
        },
    )


assets = [occupancy_observations, occupancy_models, occupancy_forecasts]
asset_checks = [occupancy_forecasts_within_bounds]
jobs = [occupancy_job, occupancy_ingest_job]
schedules = [occupancy_schedule]
sensors = [occupancy_landing_sensor]
