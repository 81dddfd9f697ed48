#!/usr/bin/env bash
# Start a Dask scheduler on DASK_SCHEDULER_ADDRESS's port (default tcp://127.0.0.1:8786).
set -euo pipefail
cd "$(dirname "$0")/.."
address="${DASK_SCHEDULER_ADDRESS:-tcp://127.0.0.1:8786}"
hostport="${address#tcp://}"
exec .venv/bin/dask scheduler --host "${hostport%:*}" --port "${hostport##*:}" --no-show
