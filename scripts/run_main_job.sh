#!/usr/bin/env bash
# Set up the project and run markets_job once, offline, on the real data in ../shared/data.
# Any of the variables below can be set beforehand to use other inputs (e.g. a Geofabrik URL).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

shared="$(cd .. && pwd)/shared/data"
export DAGSTER_HOME="${DAGSTER_HOME:-$PWD/.dagster_home}"
export OSM_EXTRACT="${OSM_EXTRACT:-$shared/osm/muenchen_altstadt_2020-07-20.osm.pbf}"
export REGIONS_FILE="${REGIONS_FILE:-$shared/regions/vg250_kreise_2018-12-31_sim200.geojson}"
export POPULATION_FILE="${POPULATION_FILE:-$shared/regions/population_kreise_2018-12-31.csv}"
mkdir -p "$DAGSTER_HOME"
[ -f "$DAGSTER_HOME/dagster.yaml" ] || cp dagster.yaml "$DAGSTER_HOME/dagster.yaml"

echo "markets_job: OSM_EXTRACT=$OSM_EXTRACT"
.venv/bin/dagster job execute -m market_platform.definitions -j markets_job
.venv/bin/python -m market_platform.report
