"""Intermediates between steps: pickles in a folder every worker can read, kept per run.

Dagster's own filesystem IO manager stores an unpartitioned asset at one path for all runs.
Two runs of markets_job at the same time (a sensor run and a scheduled one, or two landed
files) then read each other's extracts between steps and apply the wrong one without an
error. Here each run writes under ``runs/<run_id>/`` and reads its own upstream outputs from
there; a copy at the asset's plain path serves runs that load an asset they did not compute
(a single asset materialized from the UI, another job). Partitioned assets keep Dagster's
layout: their paths already differ per partition.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import dagster as dg
from dagster._core.storage.fs_io_manager import PickledObjectFilesystemIOManager
from upath import UPath

RUNS = "runs"
KEEP_RUNS_DAYS = 7.0


class _RunScopedPickles(PickledObjectFilesystemIOManager):
    def get_asset_relative_path(self, context) -> UPath:
        path = super().get_asset_relative_path(context)
        run_id = None if context.has_asset_partitions else _run_id(context)
        return UPath(RUNS, run_id, *path.parts) if run_id else path

    def _get_path(self, context) -> UPath:
        path = super()._get_path(context)
        if isinstance(context, dg.InputContext) and context.has_asset_key and not path.exists():
            return self._shared_path(context)
        return path

    def handle_output(self, context: dg.OutputContext, obj) -> None:
        super().handle_output(context, obj)
        if not context.has_asset_key or context.has_asset_partitions:
            return
        scoped, shared = Path(self._get_path(context)), Path(self._shared_path(context))
        if scoped.exists() and scoped != shared:
            shared.parent.mkdir(parents=True, exist_ok=True)
            partial = shared.with_name(f".{shared.name}.{context.run_id}")
            shutil.copyfile(scoped, partial)
            os.replace(partial, shared)  # readers see the old file or the new, never half
        _prune(Path(self._base_path) / RUNS, KEEP_RUNS_DAYS)

    def _shared_path(self, context) -> UPath:
        return self._with_extension(self._base_path.joinpath(*context.asset_key.path))


def _run_id(context) -> str | None:
    if isinstance(context, dg.OutputContext):
        return context.run_id
    upstream = context.upstream_output
    try:
        return upstream.run_id if upstream is not None else None
    except Exception:  # an artificial upstream context (asset from another job) has no run
        return None


def _prune(folder: Path, days: float) -> None:
    """Remove the intermediates of runs that ended long ago, so the folder does not grow."""
    if not folder.is_dir():
        return
    cutoff = time.time() - days * 86_400
    for run in folder.iterdir():
        try:
            if run.stat().st_mtime < cutoff:
                shutil.rmtree(run, ignore_errors=True)
        except FileNotFoundError:
            continue


class RunScopedFilesystemIOManager(dg.ConfigurableIOManagerFactory):
    """Pickles under ``base_dir``; unpartitioned assets per run (see the module docstring)."""

    base_dir: str

    def create_io_manager(self, context) -> _RunScopedPickles:
        return _RunScopedPickles(base_dir=self.base_dir)
