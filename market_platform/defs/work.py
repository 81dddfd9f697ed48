"""The one place where an asset says what kind of work it does.

``io`` steps wait on networks and databases, ``cpu`` steps compute. The executors read these
tags: on Celery the kind picks the queue (``dagster-celery/queue``), on Dask the worker
resource (``dagster-dask/resource_requirements``), on the default executor it changes nothing.
Moving an asset to the other pool is changing ``work(IO)`` to ``work(CPU)``.
"""

import json

WORK_TAG = "market_platform/work"
IO = "io"
CPU = "cpu"


def work(kind: str) -> dict[str, str]:
    """``op_tags`` for an asset doing ``kind`` work (``"io"`` or ``"cpu"``)."""
    if kind not in (IO, CPU):
        raise ValueError(f"kind of work must be 'io' or 'cpu', not {kind!r}")
    return {
        WORK_TAG: kind,
        "dagster-celery/queue": kind,
        # Dask workers offer "io" or "cpu" (or both) with --resources; see docs/distributed.md.
        "dagster-dask/resource_requirements": json.dumps({kind: 1}),
    }


def kind_of(tags: dict[str, str], default: str = IO) -> str:
    """The kind of work a step declared; steps without a declaration (asset checks) are io."""
    return tags.get(WORK_TAG) or default
