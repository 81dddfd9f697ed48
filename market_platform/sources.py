"""Input files given as a local path or an http(s) URL, downloaded once into a cache."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import requests

from market_platform.errors import InputError

_CHUNK = 1 << 20
_USER_AGENT = "market_platform/0.1 (+https://github.com/market-platform)"


@dataclass(frozen=True)
class LocalFile:
    """A readable local copy of an input, with what identifies its content."""

    source: str
    path: Path
    size: int
    sha256: str
    downloaded: bool


def is_url(source: str) -> bool:
    return urlparse(str(source)).scheme in ("http", "https")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def fetch(source: str | os.PathLike, cache_dir: Path, timeout: float = 60.0) -> LocalFile:
    """Return a local copy of ``source``.

    A URL is downloaded once into ``cache_dir`` (keyed by the URL) and later calls reuse the
    cached file; a path is used where it lies. Either way the file must exist and not be
    empty, so that every reader downstream can trust it.
    """
    source = str(source)
    if is_url(source):
        path = cache_dir / _cache_name(source)
        downloaded = not path.exists()
        if downloaded:
            _download(source, path, timeout)
    else:
        path = Path(source).expanduser()
        downloaded = False
        if not path.exists():
            raise InputError(source, "file not found")
        if not path.is_file():
            raise InputError(source, "is not a file")

    size = path.stat().st_size
    if size == 0:
        raise InputError(source, "file is empty (0 bytes)")
    # A relative path means nothing in the database once the run is over; keep it absolute.
    named = source if is_url(source) else str(path.resolve())
    return LocalFile(named, path.resolve(), size, sha256_of(path), downloaded)


def pin(local: LocalFile, cache_dir: Path, keep_days: float = 7.0) -> LocalFile:
    """The same file under a name only this run uses, so later steps read what was hashed.

    A landing file can be replaced while its run waits in the queue; the later steps would
    then parse another file than the one the snapshot is named after. A hard link keeps the
    hashed content even when the original is replaced by a rename (a copy where the cache
    lies on another filesystem); the sha256 is computed again on the pinned file.
    """
    folder = cache_dir / "pinned"
    folder.mkdir(parents=True, exist_ok=True)
    _prune(folder, keep_days)
    target = folder / f"{local.sha256[:16]}-{local.path.name}"
    if not target.exists():
        partial = folder / f".{target.name}.{os.getpid()}"
        try:
            os.link(local.path, partial)
        except OSError:
            shutil.copyfile(local.path, partial)
        os.replace(partial, target)
    digest = sha256_of(target)
    if digest != local.sha256:
        target.unlink(missing_ok=True)
        raise InputError(local.source, "changed while it was being read; try again")
    return LocalFile(local.source, target, target.stat().st_size, digest, local.downloaded)


def _prune(folder: Path, keep_days: float) -> None:
    cutoff = time.time() - keep_days * 86_400
    for entry in folder.iterdir():
        try:
            # ctime: a hard link shares the original's mtime, but linking sets the ctime.
            if entry.stat().st_ctime < cutoff:
                entry.unlink()
        except FileNotFoundError:
            continue


def _cache_name(url: str) -> str:
    key = hashlib.sha256(url.encode()).hexdigest()[:16]
    name = Path(urlparse(url).path).name or "download"
    return f"{key}-{name}"


def _download(url: str, target: Path, timeout: float) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    # Download next to the target and rename at the end: a cut connection never leaves a
    # half-written file that a later run would take for the real one.
    handle, partial = tempfile.mkstemp(dir=target.parent, prefix=".part-")
    try:
        with os.fdopen(handle, "wb") as out:
            response = requests.get(
                url, stream=True, timeout=timeout, headers={"User-Agent": _USER_AGENT}
            )
            if response.status_code != 200:
                raise InputError(url, f"download failed with HTTP {response.status_code}")
            for chunk in response.iter_content(_CHUNK):
                out.write(chunk)
        os.replace(partial, target)
    except requests.RequestException as error:
        raise InputError(url, f"could not be downloaded ({type(error).__name__}: {error})")
    finally:
        if os.path.exists(partial):
            os.unlink(partial)
