"""Start a stub server as its own process, wait until it serves, stop it for sure."""

from __future__ import annotations

import json
import os
import selectors
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class StubServer:
    """A running stub: its port, the behaviour file it reads and the record it writes."""

    name: str
    process: subprocess.Popen
    port: int
    script: Path
    record: Path

    def configure(self, **rules) -> None:
        """Replace the behaviour; the server re-reads it at its next request."""
        temporary = self.script.with_suffix(".tmp")
        temporary.write_text(json.dumps(rules))
        previous = self.script.stat().st_mtime_ns if self.script.exists() else 0
        os.replace(temporary, self.script)
        # A new modification time even within the file system's timestamp resolution.
        stamp = max(time.time_ns(), previous + 1_000_000)
        os.utime(self.script, ns=(stamp, stamp))

    def events(self) -> list[dict]:
        if not self.record.exists():
            return []
        with self.record.open(encoding="utf-8") as handle:
            return [json.loads(line) for line in handle if line.endswith("\n")]

    def clear(self) -> None:
        # Truncate in place: the server keeps its append handle open.
        with self.record.open("r+") as handle:
            handle.truncate(0)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if self.process.stdout:
            self.process.stdout.close()


def start(name: str, script_name: str, folder: Path, rules: dict | None = None,
          port: int | None = None, timeout: float = 30.0) -> StubServer:
    folder.mkdir(parents=True, exist_ok=True)
    script, record = folder / f"{name}.json", folder / f"{name}.jsonl"
    script.write_text(json.dumps(rules or {}))
    record.touch()
    command = [sys.executable, str(HERE / script_name), "--script", str(script),
               "--record", str(record)]
    if port is not None:
        command += ["--port", str(port)]
    log = (folder / f"{name}.log").open("a")
    process = subprocess.Popen(command, cwd=HERE, stdout=subprocess.PIPE, stderr=log, text=True)
    log.close()
    try:
        served = _wait_ready(process, timeout)
    except Exception:
        process.kill()
        process.wait(timeout=10)
        raise
    return StubServer(name, process, served if port is None else port, script, record)


def _wait_ready(process: subprocess.Popen, timeout: float) -> int:
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"stub server exited with {process.returncode}")
        if selector.select(timeout=0.2):
            line = process.stdout.readline()
            if line.startswith("READY"):
                return int(line.split()[1])
    raise TimeoutError(f"stub server not ready within {timeout} s")
