#!/usr/bin/env bash
# Open the Dagster UI (webserver + daemon) on http://127.0.0.1:3000 with the same inputs as
# scripts/run_main_job.sh: the real data in ../shared/data unless the variables are set.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/dagster ] || bash scripts/setup.sh

root="$PWD"
shared="$(cd .. && pwd)/shared/data"
export DAGSTER_HOME="${DAGSTER_HOME:-$root/.dagster_home}"
export OSM_EXTRACT="${OSM_EXTRACT:-$shared/osm/muenchen_altstadt_2020-07-20.osm.pbf}"
export REGIONS_FILE="${REGIONS_FILE:-$shared/regions/vg250_kreise_2018-12-31_sim200.geojson}"
export POPULATION_FILE="${POPULATION_FILE:-$shared/regions/population_kreise_2018-12-31.csv}"
mkdir -p "$DAGSTER_HOME"
[ -f "$DAGSTER_HOME/dagster.yaml" ] || cp dagster.yaml "$DAGSTER_HOME/dagster.yaml"

# Started from $DAGSTER_HOME so that Dagster reads the instance's dagster.yaml and not the
# checkout's copy (which it would otherwise warn about).
cd "$DAGSTER_HOME"
exec "$root/.venv/bin/dagster" dev -w "$root/workspace.yaml" -h 127.0.0.1 -p "${PORT:-3000}"
