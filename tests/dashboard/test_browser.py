"""The dashboard in a real browser: `streamlit run` on a free port, Debian's Chromium through Playwright.

The registry comes from a small synthetic study run through the real ingest (dashboard_synthetic_study).
Logs in as a coordinator and as a statistician, visits every page, records one QC decision, checks
the key texts and saves a screenshot of every page under `screenshots/` at the repository root.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import dashboard_synthetic_study
import pytest
from dashboard_registry_factory import PASSWORD
from sqlalchemy import select
from sqlalchemy.orm import Session

from dashboard.cli import start_server
from registry.db import make_engine
from registry.models import Center, Patient, QCDecision, Series, Study

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "screenshots"
TIMEOUT_MS = 60_000

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed at /usr/bin/chromium "
                       "(`make browser-deps` or `apt-get install chromium`)"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def server(home, tmp_path: Path) -> Iterator[tuple[str, object, dict[str, str]]]:
    centers = dashboard_synthetic_study.build(home, tmp_path)
    port = _free_port()
    log = open(tmp_path / "streamlit.log", "wb")  # noqa: SIM115 - closed after the server stops
    proc = start_server(home, port, address="127.0.0.1", stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            log.close()
            pytest.fail(f"streamlit did not start: {(tmp_path / 'streamlit.log').read_text()[-2000:]}")
        time.sleep(0.3)
    try:
        yield url, home, centers
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _settle(page) -> None:  # noqa: ANN001
    """Wait until Streamlit has finished the script run (its status widget says so) and charts have drawn."""
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=TIMEOUT_MS)
    page.wait_for_timeout(800)


def _log_in(page, url: str, username: str) -> None:  # noqa: ANN001
    page.goto(url)
    page.get_by_label("User name").fill(username)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("heading", name="Collection", exact=True, level=1).wait_for(timeout=TIMEOUT_MS)
    _settle(page)


def _visit(page, title: str, shot: str, *texts: str) -> None:  # noqa: ANN001
    page.get_by_role("link", name=title, exact=True).click()
    page.get_by_role("heading", name=title, exact=True, level=1).wait_for(timeout=TIMEOUT_MS)
    _settle(page)
    for text in texts:
        page.get_by_text(text).first.wait_for(timeout=TIMEOUT_MS)
    # Streamlit scrolls inside its own container, so the tall viewport is what makes the whole page visible.
    page.screenshot(path=str(SCREENSHOTS / f"{shot}.png"), full_page=True)


def test_coordinator_and_statistician_in_chromium(server) -> None:
    from playwright.sync_api import sync_playwright

    url, home, centers = server
    mine, other = centers["coordinator"], centers["other"]
    if SCREENSHOTS.exists():
        shutil.rmtree(SCREENSHOTS)
    SCREENSHOTS.mkdir()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 2600})
            page.goto(url)
            page.get_by_label("User name").wait_for(timeout=TIMEOUT_MS)
            page.screenshot(path=str(SCREENSHOTS / "0_login.png"))

            _log_in(page, url, "coord")
            page.get_by_text(f"coord · coordinator · center {mine}").wait_for()
            _visit(page, "Collection", "coordinator_1_collection", f"Center {mine}", "What each center still owes")
            assert page.get_by_text(other).count() == 0  # another center's rows never reach a coordinator
            _visit(page, "Quality control", "coordinator_2_quality_control", "Review queue", "Audit trail")
            page.get_by_role("button", name="Record decision").click()
            page.get_by_text(re.compile(r"marked passed by coord\b")).wait_for(timeout=TIMEOUT_MS)
            _settle(page)
            page.screenshot(path=str(SCREENSHOTS / "coordinator_2b_qc_recorded.png"), full_page=True)
            _visit(page, "Case viewer", "coordinator_3_case_viewer", "Hematoma and edema volumes over time",
                   "hematoma red, edema blue")
            _visit(page, "Biomarkers", "coordinator_4_biomarkers", "ABC/2 against segmented hematoma volume")
            _visit(page, "Outcome models", "coordinator_5_outcome_models")
            _visit(page, "Risk calculator", "coordinator_6_risk_calculator")
            page.get_by_role("button", name="Log out").click()

            _log_in(page, url, "stat")
            page.get_by_text("stat · statistician · all centers").wait_for()
            _visit(page, "Collection", "statistician_1_collection", "All centers")
            assert page.get_by_text(other).count() > 0  # table cells (the grid renders to a canvas)
            _visit(page, "Quality control", "statistician_2_quality_control", "can review but not record")
            assert page.get_by_role("button", name="Record decision").count() == 0
            _visit(page, "Case viewer", "statistician_3_case_viewer", "Slices")
            _visit(page, "Biomarkers", "statistician_4_biomarkers", "by center")
            _visit(page, "Outcome models", "statistician_5_outcome_models")
            _visit(page, "Risk calculator", "statistician_6_risk_calculator")
        finally:
            browser.close()

    # The decision the coordinator took in the browser is in the registry, with them as actor, on their center.
    engine = make_engine(home.db_url)
    with Session(engine) as s:
        decisions = s.execute(select(Center.code, QCDecision.status, Series.qc_status)
                              .join(Series, QCDecision.series_id == Series.id).join(Study, Series.study_id == Study.id)
                              .join(Patient, Study.patient_id == Patient.id)
                              .join(Center, Patient.center_id == Center.id)
                              .where(QCDecision.actor == "coord")).all()
    engine.dispose()
    assert decisions == [(mine, "passed", "passed")]
    assert len(list(SCREENSHOTS.glob("*.png"))) == 14
