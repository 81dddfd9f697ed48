"""The fake Overpass/Nominatim server as a real process on 127.0.0.1, one per test session."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from market_platform_tests.conftest import KREISE, LIDL

SERVER_SCRIPT = Path(__file__).with_name("fake_server.py")
REDIS_URL = "redis://127.0.0.1:6379/0"


class FakeServer:
    """Handle on the running server: its base URL, scripted answers, the request log."""

    def __init__(self, base: str):
        self.base = base
        self.overpass_url = f"{base}/api/interpreter"

    def script(self, path: str, *responses: dict) -> None:
        order = {"path": path, "responses": list(responses)}
        httpx.post(f"{self.base}/_control/script", content=json.dumps(order)).raise_for_status()

    def log(self, path: str | None = None) -> list[dict]:
        entries = httpx.get(f"{self.base}/_control/log").json()
        return [e for e in entries if path is None or e["path"] == path]

    def reset(self) -> None:
        httpx.post(f"{self.base}/_control/reset").raise_for_status()


def start_server(data: Path | None = LIDL) -> tuple[subprocess.Popen, str]:
    """Start the server script; returns the process and its base URL."""
    command = [sys.executable, str(SERVER_SCRIPT)] + (["--data", str(data)] if data else [])
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    first_line: list[str] = []
    reader = threading.Thread(target=lambda: first_line.append(process.stdout.readline()))
    reader.start()
    reader.join(timeout=30)
    if not first_line or not first_line[0].startswith("PORT "):
        stop_server(process)
        raise RuntimeError(f"fake server did not start: {first_line}")
    return process, f"http://127.0.0.1:{int(first_line[0].split()[1])}"


def stop_server(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


@pytest.fixture(scope="session")
def _server_process():
    process, base = start_server()
    try:
        yield base
    finally:
        stop_server(process)


@pytest.fixture
def server(_server_process) -> FakeServer:
    """The session's server with an empty log and no scripted answers."""
    fake = FakeServer(_server_process)
    fake.reset()
    return fake


@pytest.fixture(scope="session")
def kreise():
    from market_platform.regions.loading import load_kreise

    return load_kreise(KREISE)
