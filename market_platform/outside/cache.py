"""Answers of an outside API on disk, one file per (endpoint, query), kept for a time-to-live."""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ResponseCache:
    """``get`` returns the stored body while it is younger than ``ttl`` seconds."""

    folder: Path
    ttl: float

    def path(self, endpoint: str, query: str) -> Path:
        key = hashlib.sha256(f"{endpoint}\n{query}".encode()).hexdigest()[:32]
        return Path(self.folder) / f"{key}.json"

    def get(self, endpoint: str, query: str) -> bytes | None:
        path = self.path(endpoint, query)
        try:
            if time.time() - path.stat().st_mtime >= self.ttl:
                return None
            return path.read_bytes()
        except FileNotFoundError:
            return None

    def put(self, endpoint: str, query: str, body: bytes) -> Path:
        path = self.path(endpoint, query)
        write_atomically(path, body)
        return path


def write_atomically(path: Path, body: bytes) -> None:
    """Write next to ``path`` and rename: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, partial = tempfile.mkstemp(dir=path.parent, prefix=".part-")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(body)
        os.replace(partial, path)
    finally:
        if os.path.exists(partial):
            os.unlink(partial)
