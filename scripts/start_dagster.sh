#!/usr/bin/env bash
# Start dagster-webserver (or dagster-daemon) against the PostgreSQL instance.
#   scripts/start_dagster.sh webserver     on ${DAGSTER_WEBSERVER_HOST:-127.0.0.1}:3000
#   scripts/start_dagster.sh daemon        schedules, sensors and the run queue
# DAGSTER_HOME must hold deploy/dagster.yaml; run `dagster instance migrate` once per upgrade.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${DAGSTER_HOME:?set DAGSTER_HOME to a folder holding deploy/dagster.yaml}"
: "${DAGSTER_PG_URL:?set DAGSTER_PG_URL, e.g. postgresql://dagster@db:5432/dagster}"
case "${1:?usage: start_dagster.sh webserver|daemon}" in
    webserver) exec .venv/bin/dagster-webserver -h "${DAGSTER_WEBSERVER_HOST:-127.0.0.1}" \
                   -p "${DAGSTER_WEBSERVER_PORT:-3000}" -m market_platform.definitions ;;
    daemon) exec .venv/bin/dagster-daemon run -m market_platform.definitions ;;
    *) echo "start webserver or daemon" >&2; exit 2 ;;
esac
