"""The UI in a real browser: dagster-webserver and dagster-daemon on the test instance, headless
Chromium (Debian's, driven by Playwright; no browser download), a materialization launched by
clicking. The screenshots stay in test-artifacts/."""

from __future__ import annotations

from pathlib import Path

import pytest

from market_platform_tests.distributed import harness, services

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
LOCATION = "market_platform.definitions"


@pytest.fixture
def ui(stack, market_db):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: scripts/setup.sh installs Debian's chromium")
    port = services.free_port()
    # Runs launched from the UI go through the daemon's queue to a run worker; in_process keeps
    # the run in that worker (the backend is configuration, as for every job).
    env = stack.with_env(MARKET_DB_URL=market_db, MARKET_PLATFORM_EXECUTOR="in_process")
    target = ["-m", LOCATION, "-a", "defs"]
    webserver = services.start(
        f"webserver-{port}",
        [str(services.VENV_BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port),
         *target],
        env, stack.logs,
    )
    daemon = services.start("daemon", [str(services.VENV_BIN / "dagster-daemon"), "run",
                                       *target], env, stack.logs)
    try:
        webserver.wait_until(lambda: services.port_open(port), f"open port {port}", 180)
        yield f"http://127.0.0.1:{port}"
    finally:
        webserver.stop()
        daemon.stop()


def test_materialize_from_the_asset_graph_in_chromium(ui, stack, tmp_path):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    known = {run.run_id for run in stack.instance.get_runs()}
    with sync_playwright() as playwright:
        # A fresh --user-data-dir: Playwright takes it as the persistent context's folder.
        browser = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium"), executable_path=CHROMIUM, headless=True,
            args=CHROMIUM_FLAGS, viewport={"width": 1600, "height": 1000},
        )
        page = browser.new_page()
        try:
            # The global asset lineage, filtered to the markets group.
            page.goto(f"{ui}/asset-groups~group%3Amarkets/", timeout=120_000)
            skip = page.get_by_role("button", name="Skip")  # the first-visit newsletter dialog
            skip.wait_for(timeout=60_000)
            skip.click()
            for name in ("osm_extract", "markets", "market_regions", "regional_statistics"):
                page.get_by_text(name, exact=True).first.wait_for(timeout=60_000)
            page.screenshot(path=str(ARTIFACTS / "asset-graph.png"))

            page.get_by_text("Materialize all", exact=True).click()
            new_runs = harness.wait_for(
                lambda: [r for r in stack.instance.get_runs() if r.run_id not in known],
                "a run launched from the UI", timeout=60,
            )
            run_id = new_runs[0].run_id
            run = harness.wait_for(
                lambda: (r := stack.instance.get_run_by_id(run_id)).is_finished and r,
                "the run to finish", timeout=300, every=1.0,
            )
            page.goto(f"{ui}/runs/{run_id}", timeout=120_000)
            page.get_by_text("Success", exact=True).first.wait_for(timeout=60_000)
            page.get_by_text("RUN_SUCCESS", exact=True).first.wait_for(timeout=60_000)
            page.screenshot(path=str(ARTIFACTS / "run-success.png"))
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "browser-failure.png"))
            raise
        finally:
            browser.close()

    assert run.is_success, f"run {run_id} ended {run.status}"
    materialized = {key.path[-1] for key in run.asset_selection or []}
    assert materialized == {"osm_extract", "osm_markets", "regions", "markets",
                            "market_regions", "regional_statistics"}
