"""Intermediates are kept per run, so overlapping runs never read each other's outputs."""

from __future__ import annotations

import dagster as dg

from market_platform.defs.io import RunScopedFilesystemIOManager


def _output(run_id):
    return dg.build_output_context(asset_key=dg.AssetKey("osm_markets"), run_id=run_id)


def _input(run_id=None):
    upstream = _output(run_id) if run_id else None
    return dg.build_input_context(asset_key=dg.AssetKey("osm_markets"), upstream_output=upstream)


def test_each_run_reads_its_own_upstream_output(tmp_path):
    manager = RunScopedFilesystemIOManager(base_dir=str(tmp_path)).create_io_manager(None)
    manager.handle_output(_output("run-a"), {"extract": "lauf"})
    manager.handle_output(_output("run-b"), {"extract": "helgoland"})

    assert manager.load_input(_input("run-a")) == {"extract": "lauf"}
    assert manager.load_input(_input("run-b")) == {"extract": "helgoland"}
    # A run that did not compute the asset gets the newest value.
    assert manager.load_input(_input()) == {"extract": "helgoland"}
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["run-a", "run-b"]
