"""The one place where an asset says what kind of work it does.

``io`` steps wait on networks and databases, ``cpu`` steps compute. The executors read these
tags: on Celery the tag picks the queue, on the default executor it changes nothing.
"""

WORK_TAG = "market_platform/work"
IO = "io"
CPU = "cpu"


def work(kind: str) -> dict[str, str]:
    """``op_tags`` for an asset doing ``kind`` work (``"io"`` or ``"cpu"``)."""
    if kind not in (IO, CPU):
        raise ValueError(f"kind of work must be 'io' or 'cpu', not {kind!r}")
    return {WORK_TAG: kind, "dagster-celery/queue": kind}
