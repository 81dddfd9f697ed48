"""Which backend runs a job and where its services are: environment variables, no Dagster.

The executor (``market_platform.execution.executor``), the Celery worker app and the start
scripts all read these functions, so a job, its workers and the docs agree on one set of names.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from market_platform.errors import InputError

MULTIPROCESS = "multiprocess"
IN_PROCESS = "in_process"
CELERY = "celery"
DASK = "dask"
BACKENDS = (MULTIPROCESS, IN_PROCESS, CELERY, DASK)
#: Other spellings accepted in the environment.
ALIASES = {"default": MULTIPROCESS, "in-process": IN_PROCESS, "inprocess": IN_PROCESS}

DEFAULT_BROKER = "redis://127.0.0.1:6379/0"
#: kombu's own default; a step that runs longer than this on Redis is delivered a second time.
DEFAULT_VISIBILITY_TIMEOUT = 3600
DEFAULT_PRIORITY = 5


def backend_for(job_name: str | None = None) -> str:
    """``MARKET_PLATFORM_EXECUTOR_<JOB>``, else ``MARKET_PLATFORM_EXECUTOR``, else multiprocess."""
    names = ["MARKET_PLATFORM_EXECUTOR"]
    if job_name:
        names.insert(0, f"MARKET_PLATFORM_EXECUTOR_{job_name.strip('_').upper()}")
    for name in names:
        value = os.environ.get(name, "").strip()
        if value:
            return parse_backend(value, source=name)
    return MULTIPROCESS


def parse_backend(value: str, source: str = "executor backend") -> str:
    backend = ALIASES.get(value.strip().lower(), value.strip().lower())
    if backend not in BACKENDS:
        raise InputError(source, f"unknown backend {value!r}; use one of {', '.join(BACKENDS)}")
    return backend


def mask_url(url: str) -> str:
    """The URL with its password replaced, for logs and error messages."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


def is_redis(url: str) -> bool:
    return url.split("://", 1)[0] in ("redis", "rediss", "sentinel")


@dataclass(frozen=True)
class CelerySettings:
    """Broker, result backend and queue names shared by the executor and the workers."""

    broker: str
    backend: str
    queue_prefix: str = ""
    visibility_timeout: int = DEFAULT_VISIBILITY_TIMEOUT
    default_priority: int = DEFAULT_PRIORITY

    @classmethod
    def from_env(cls) -> CelerySettings:
        broker = os.environ.get("CELERY_BROKER_URL") or DEFAULT_BROKER
        return cls(
            broker=broker,
            backend=os.environ.get("CELERY_RESULT_BACKEND") or default_result_backend(broker),
            queue_prefix=os.environ.get("CELERY_QUEUE_PREFIX", ""),
            visibility_timeout=int(
                os.environ.get("CELERY_VISIBILITY_TIMEOUT", DEFAULT_VISIBILITY_TIMEOUT)
            ),
            default_priority=int(os.environ.get("CELERY_DEFAULT_PRIORITY", DEFAULT_PRIORITY)),
        )

    def queue(self, kind: str) -> str:
        return f"{self.queue_prefix}{kind}"


def default_result_backend(broker: str) -> str:
    # Redis keeps results where the tasks are; RabbitMQ sends them back as messages (rpc).
    return broker if is_redis(broker) else "rpc://"


def dask_scheduler_address() -> str | None:
    return os.environ.get("DASK_SCHEDULER_ADDRESS") or None


def dask_local_workers() -> int:
    return int(os.environ.get("DASK_LOCAL_WORKERS") or os.cpu_count() or 1)
