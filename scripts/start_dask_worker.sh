#!/usr/bin/env bash
# Start Dask worker processes offering the resources a kind of work asks for.
#   scripts/start_dask_worker.sh cpu [processes]    default: number of cores
#   scripts/start_dask_worker.sh io [processes]     default: 8
#   scripts/start_dask_worker.sh all [processes]    both kinds, default: number of cores
# One thread per process: Dagster is not thread-safe (dagster-io/dagster#2181).
set -euo pipefail
cd "$(dirname "$0")/.."
kind="${1:?usage: start_dask_worker.sh io|cpu|all [processes]}"
case "$kind" in
    io) resources="io=1"; processes="${2:-8}" ;;
    cpu) resources="cpu=1"; processes="${2:-$(nproc)}" ;;
    all) resources="io=1,cpu=1"; processes="${2:-$(nproc)}" ;;
    *) echo "kind must be io, cpu or all, not $kind" >&2; exit 2 ;;
esac
exec .venv/bin/dask worker "${DASK_SCHEDULER_ADDRESS:-tcp://127.0.0.1:8786}" \
    --nworkers "$processes" --nthreads 1 --resources "$resources" --name "$kind-$(hostname)"
