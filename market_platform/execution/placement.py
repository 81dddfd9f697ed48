"""Where a step ran: one engine event per step attempt, written by the worker that runs it.

The Celery and Dask workers call ``report`` before the step starts; the event carries the
worker's name, host, pid and queue (Celery) or resources (Dask) as metadata, so the UI shows it
in the step's log and tests and benchmarks read it back with ``placements``.
"""

from __future__ import annotations

import os
import socket

import dagster as dg
from dagster._core.events import DagsterEventType, EngineEventData

MARKER = "market_platform/placement"


def report(instance: dg.DagsterInstance, run, step_key: str, backend: str, worker: str,
           where: str) -> None:
    """Record that ``step_key`` of ``run`` runs here; ``where`` is the queue or resources."""
    metadata = {
        "marker": MARKER,
        "backend": backend,
        "worker": worker,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "queue": where,
    }
    instance.report_engine_event(
        f"step {step_key} runs on {backend} worker {worker} (pid {os.getpid()}, {where})",
        run,
        EngineEventData(metadata=metadata),
        step_key=step_key,
    )


def placements(instance: dg.DagsterInstance, run_id: str) -> list[dict]:
    """Every placement of a run, in order: dicts with step_key, backend, worker, pid, queue and
    ``at``, the time the event was stored (seconds since the epoch)."""
    found = []
    records = instance.get_records_for_run(
        run_id, of_type=DagsterEventType.ENGINE_EVENT, limit=10_000
    ).records
    for record in records:
        event = record.event_log_entry.dagster_event
        metadata = event.engine_event_data.metadata if event else {}
        marker = metadata.get("marker")
        if marker is None or marker.value != MARKER:
            continue
        row = {key: value.value for key, value in metadata.items() if key != "marker"}
        found.append({"step_key": event.step_key, "at": record.event_log_entry.timestamp, **row})
    return found
