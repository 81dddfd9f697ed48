"""Running the platform beyond one process: Celery queues, a Dask cluster, PostgreSQL storage.

``executor_for(job_name)`` is the executor every job uses; the backend is configuration (see
``executor``). The Celery and Dask executors here are Dagster's, wrapped where 0.29.27 falls
short; each wrapper names the upstream issue beside it.
"""

from market_platform.execution.executor import executor_for

__all__ = ["executor_for"]
