"""Real processes for the distributed tests: Redis, Celery workers, a Dask scheduler and workers.

Each starts in its own process group, logs to a file, is waited for until it answers, and is
stopped with its children by ``Service.stop`` (the fixtures call it in their teardown).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

VENV_BIN = Path(sys.executable).parent
READY_TIMEOUT = 90.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class ServiceError(RuntimeError):
    """A service did not start; the message names it and ends with its log."""


@dataclass
class Service:
    name: str
    process: subprocess.Popen
    log: Path
    stopped: bool = field(default=False)

    @property
    def pid(self) -> int:
        return self.process.pid

    def tail(self, lines: int = 40) -> str:
        if not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def wait_until(self, ready, what: str, timeout: float = READY_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServiceError(f"{self.name} exited ({self.process.returncode}) before "
                                   f"{what}:\n{self.tail()}")
            if ready():
                return
            time.sleep(0.2)
        raise ServiceError(f"{self.name}: no {what} within {timeout:.0f} s:\n{self.tail()}")

    def kill(self) -> None:
        """SIGKILL to the whole process group: the host crashing, not a clean shutdown."""
        self._signal(signal.SIGKILL)
        self.process.wait(timeout=30)
        self.stopped = True

    def stop(self) -> None:
        if self.stopped or self.process.poll() is not None:
            self.stopped = True
            return
        self._signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self._signal(signal.SIGKILL)
            self.process.wait(timeout=15)
        self.stopped = True

    def _signal(self, sig) -> None:
        try:
            os.killpg(self.process.pid, sig)
        except ProcessLookupError:
            pass


def start(name: str, args: list[str], env: dict, log_dir: Path) -> Service:
    log = log_dir / f"{name}.log"
    handle = log.open("ab")
    process = subprocess.Popen(
        args, env=env, stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        start_new_session=True, cwd=str(log_dir),
    )
    handle.close()
    return Service(name, process, log)


def start_redis(port: int, log_dir: Path) -> Service:
    if shutil.which("redis-server") is None:
        raise ServiceError("redis-server is not installed (Debian package redis-server)")
    service = start(
        f"redis-{port}",
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--protected-mode", "no"],
        dict(os.environ), log_dir,
    )
    service.wait_until(lambda: port_open(port), f"open port {port}")
    return service


def start_celery_worker(kind: str, env: dict, log_dir: Path, concurrency: int = 1,
                        tag: str = "") -> Service:
    """A worker consuming the queue of ``kind`` (with the env's CELERY_QUEUE_PREFIX)."""
    name = f"{kind}-{tag}@{socket.gethostname()}" if tag else f"{kind}@{socket.gethostname()}"
    queue = env.get("CELERY_QUEUE_PREFIX", "") + kind
    service = start(
        f"celery-{kind}{tag}",
        [str(VENV_BIN / "celery"), "-A", "market_platform.execution.celery_app", "worker",
         "-Q", queue, "-n", name, "--concurrency", str(concurrency), "--loglevel", "INFO",
         "--without-gossip", "--without-mingle", "--without-heartbeat"],
        env, log_dir,
    )
    service.wait_until(lambda: " ready." in service.tail(200), "'ready' line in its log")
    return service


def start_dask_scheduler(port: int, env: dict, log_dir: Path) -> Service:
    service = start(
        f"dask-scheduler-{port}",
        [str(VENV_BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port),
         "--no-dashboard", "--no-show"],
        env, log_dir,
    )
    service.wait_until(lambda: port_open(port), f"open port {port}")
    return service


def start_dask_worker(address: str, name: str, resources: str, env: dict,
                      log_dir: Path) -> Service:
    service = start(
        f"dask-worker-{name}",
        [str(VENV_BIN / "dask"), "worker", address, "--name", name, "--nthreads", "1",
         "--nworkers", "1", "--resources", resources, "--no-dashboard",
         "--host", "127.0.0.1", "--death-timeout", "60"],
        env, log_dir,
    )
    service.wait_until(
        lambda: "Registered to" in service.tail(200) or "Starting established connection"
        in service.tail(200), "registration with the scheduler",
    )
    return service


def dask_worker_pids(address: str) -> dict[str, int]:
    """Worker name -> pid of the worker process (the child of the nanny)."""
    from dask.distributed import Client

    with Client(address, timeout=30) as client:
        return client.run(os.getpid)  # keyed by worker address
