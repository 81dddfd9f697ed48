"""What the stub servers share: a behaviour file re-read when it changes, a record file."""

from __future__ import annotations

import json
import os
import sys
import threading
import time


class Script:
    """The behaviour of a stub, from a JSON file that tests rewrite between cases."""

    def __init__(self, path: str):
        self.path = path
        self._mtime = None
        self.rules: dict = {}
        self.counters: dict = {}
        self.refresh()

    def refresh(self) -> dict:
        try:
            mtime = os.stat(self.path).st_mtime_ns
        except FileNotFoundError:
            return self.rules
        if mtime != self._mtime:
            with open(self.path, encoding="utf-8") as handle:
                self.rules = json.load(handle)
            self._mtime = mtime
            # A new script starts its counters (every n-th, first n) from zero.
            self.counters = {}
        return self.rules

    def count(self, name: str) -> int:
        self.counters[name] = self.counters.get(name, 0) + 1
        return self.counters[name]

    def every(self, name: str) -> bool:
        """True on every n-th call when the rule ``name`` is n (0 or absent: never)."""
        n = int(self.rules.get(name, 0) or 0)
        return n > 0 and self.count(name) % n == 0

    def first(self, name: str, key: str, n: int) -> bool:
        """True for the first ``n`` calls with ``key``."""
        return self.count(f"{name}:{key}") <= n


class Record:
    """Append-only JSON lines, flushed per line, so a test can read them at any moment."""

    def __init__(self, path: str):
        self._handle = open(path, "a", encoding="utf-8", buffering=1)

    def write(self, **event) -> None:
        event.setdefault("t", time.time())
        self._handle.write(json.dumps(event, ensure_ascii=False) + "\n")


def ready(port: int) -> None:
    """Tell the starting test the port, and end with it: a stub never outlives its test."""
    parent = os.getppid()

    def watch():
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, daemon=True).start()
    print(f"READY {port}", flush=True)
    sys.stdout.flush()
