#!/usr/bin/env bash
# Start a Celery worker for one kind of work: `io` (many slots) or `cpu` (one slot per core).
#   scripts/start_celery_worker.sh io [slots]     default slots: io 8, cpu = number of cores
# Needs the same environment as the webserver and daemon: DAGSTER_HOME (with deploy/dagster.yaml),
# DAGSTER_PG_URL, CELERY_BROKER_URL, MARKET_DB_URL, MARKET_PLATFORM_IO_DIR on a shared folder.
set -euo pipefail
cd "$(dirname "$0")/.."
kind="${1:?usage: start_celery_worker.sh io|cpu [slots]}"
case "$kind" in
    io) slots="${2:-8}" ;;
    cpu) slots="${2:-$(nproc)}" ;;
    *) echo "kind must be io or cpu, not $kind" >&2; exit 2 ;;
esac
queue="${CELERY_QUEUE_PREFIX:-}$kind"
exec .venv/bin/celery -A market_platform.execution.celery_app worker \
    -Q "$queue" -n "$kind@%h" --concurrency "$slots" --loglevel INFO
