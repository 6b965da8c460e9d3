"""The dashboard in a real browser: `streamlit run` on a free port, Debian's Chromium through Playwright.

The registry comes from a small synthetic study run through the real ingest (dashboard_synthetic_study).
Walks every role: the admin sets a center's targets in the targets editor and records a QC decision;
the coordinator sees progress against those targets, fails a series in the QC queue and lands on the
next one, finds the topogram; statistician and investigator review read-only. Every role visits the
outcome overview. A screenshot of every step is saved under `screenshots/` at the repository root.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import dashboard_synthetic_study
import pytest
from dashboard_browser import BROWSER_MARKS, CHROMIUM, CHROMIUM_ARGS, SCREENSHOTS, TIMEOUT_MS, running_dashboard
from dashboard_registry_factory import PASSWORD
from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.access.users import add_user
from registry.db.engine import make_engine
from registry.db.models import AuditEvent, Center, Patient, QCDecision, Series, Study

pytestmark = BROWSER_MARKS


@pytest.fixture()
def server(home, tmp_path: Path) -> Iterator[tuple[str, object, dict[str, str]]]:
    centers = dashboard_synthetic_study.build(home, tmp_path)
    with running_dashboard(home, tmp_path) as url:
        yield url, home, centers



def _settle(page) -> None:  # noqa: ANN001
    """Wait until Streamlit has finished the script run (its status widget says so) and charts have drawn."""
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=TIMEOUT_MS)
    # images (CT slices) are fetched after the script run: wait until each has arrived and decoded
    page.wait_for_function("() => Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)",
                           timeout=TIMEOUT_MS)
    page.wait_for_timeout(800)
    page.wait_for_function("() => Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)",
                           timeout=TIMEOUT_MS)  # again: an image element may have been added meanwhile


def _log_in(page, url: str, username: str) -> None:  # noqa: ANN001
    page.goto(url)
    page.get_by_label("User name").fill(username)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("heading", name="Collection", exact=True, level=1).wait_for(timeout=TIMEOUT_MS)
    _settle(page)


SLICE_SHOWN = re.compile(r"slice \d+/\d+")  # the caption under a CT slice: the image has been drawn


def _visit(page, title: str, shot: str, *texts: str | re.Pattern) -> None:  # noqa: ANN001
    page.get_by_role("link", name=title, exact=True).click()
    page.get_by_role("heading", name=title, exact=True, level=1).wait_for(timeout=TIMEOUT_MS)
    _settle(page)
    for text in texts:
        page.get_by_text(text).first.wait_for(timeout=TIMEOUT_MS)
    _shot(page, shot)


def _shot(page, name: str) -> None:  # noqa: ANN001
    # Streamlit scrolls inside its own container, so the tall viewport is what makes the whole page visible.
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def _choose(page, label: str, option: str) -> None:  # noqa: ANN001
    """Pick `option` in the Streamlit selectbox labelled `label` (a baseweb select: click, then the option)."""
    page.locator('[data-testid="stSelectbox"]').filter(has_text=label).first.click()
    page.get_by_role("option", name=option).first.click()
    _settle(page)


def _decide(page, verdict: str, reason: str | None, actor: str) -> None:  # noqa: ANN001
    """Record a verdict on the series under review and wait for the page to move to the next one."""
    page.get_by_text(verdict, exact=True).click()
    if reason:
        page.get_by_label("Other reason or note").fill(reason)
    page.get_by_role("button", name="Record decision").click()
    page.get_by_text(re.compile(rf"marked \w+ by {actor}\b")).wait_for(timeout=TIMEOUT_MS)
    _settle(page)


def _log_out(page) -> None:  # noqa: ANN001
    page.get_by_role("button", name="Log out").click()
    page.get_by_label("User name").wait_for(timeout=TIMEOUT_MS)


def test_every_role_in_chromium(server) -> None:
    from playwright.sync_api import sync_playwright

    url, home, centers = server
    mine, other = centers["coordinator"], centers["other"]
    engine = make_engine(home.db_url)
    with Session(engine) as s, s.begin():
        add_user(s, "inv", "investigator", PASSWORD)
        add_user(s, "admin", "admin", PASSWORD)
    engine.dispose()
    if SCREENSHOTS.exists():
        shutil.rmtree(SCREENSHOTS)
    SCREENSHOTS.mkdir()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 2600})
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(url)
            page.get_by_label("User name").wait_for(timeout=TIMEOUT_MS)
            page.screenshot(path=str(SCREENSHOTS / "0_login.png"))

            # admin: sets the coordinator's center targets, reviews one series, looks at the outcome overview
            _log_in(page, url, "admin")
            page.locator("summary").filter(has_text="Set targets (admin)").click()
            _choose(page, "Targets of", f"center {mine}")
            page.get_by_role("spinbutton", name="Patients enrolled").fill("10")
            page.get_by_role("spinbutton", name="Series passed QC").fill("20")
            page.get_by_role("button", name="Save targets").click()
            page.get_by_text(f"Targets of center {mine} saved by admin").wait_for(timeout=TIMEOUT_MS)
            _settle(page)
            _shot(page, "admin_1_targets_editor")
            _visit(page, "Quality control", "admin_2_quality_control", "series need a decision", "Record decision",
                   SLICE_SHOWN)
            _decide(page, "Pass: usable for analysis", None, "admin")
            _shot(page, "admin_2b_qc_next_series")
            _visit(page, "Outcome models", "admin_3_outcome_models")
            _log_out(page)

            # coordinator: own center only, progress against the targets the admin set, QC queue, next series
            _log_in(page, url, "coord")
            page.get_by_text(f"coord · coordinator · center {mine}").wait_for()
            _visit(page, "Collection", "coordinator_1_collection", f"Center {mine}", "Patients enrolled:",
                   "What each center still owes")
            assert page.get_by_text(other).count() == 0  # another center's rows never reach a coordinator
            assert page.get_by_text("dashboard-targets.toml").count() == 0  # never a server path
            _visit(page, "Quality control", "coordinator_2_quality_control", "series need a decision",
                   "Record decision")
            _decide(page, "Fail: not usable", "motion artefact", "coord")
            page.get_by_text("Next series below.").first.wait_for(timeout=TIMEOUT_MS)
            _shot(page, "coordinator_2b_qc_recorded_next_series")
            page.get_by_role("textbox", name="Find a series").fill("Topogram")
            page.get_by_role("textbox", name="Find a series").press("Enter")
            _settle(page)
            _shot(page, "coordinator_2c_qc_topogram")
            _visit(page, "Case viewer", "coordinator_3_case_viewer", "Lesion volumes over time", SLICE_SHOWN)
            assert page.get_by_text("not on the timeline").count() == 0  # opens on a dated case with findings
            _visit(page, "Outcome models", "coordinator_4_outcome_models")
            _log_out(page)

            for user, role in (("stat", "statistician"), ("inv", "investigator")):
                _log_in(page, url, user)
                page.get_by_text(f"{user} · {role} · all centers").wait_for()
                _visit(page, "Collection", f"{role}_1_collection", "All centers", "Per center")
                assert page.get_by_text(other).count() > 0
                _visit(page, "Quality control", f"{role}_2_quality_control", "can review but not record")
                assert page.get_by_role("button", name="Record decision").count() == 0
                _visit(page, "Case viewer", f"{role}_3_case_viewer", "Slices", SLICE_SHOWN)
                _visit(page, "Biomarkers", f"{role}_4_biomarkers")
                if role == "statistician":  # a value's provenance: open the list, pick the largest value
                    page.locator('[data-testid="stSelectbox"]').filter(has_text="pick a value").first.click()
                    page.get_by_role("option").first.click()
                    page.get_by_text("Slices that contribute").wait_for(timeout=TIMEOUT_MS)
                    _settle(page)
                    _shot(page, f"{role}_4b_biomarker_provenance")
                _visit(page, "Outcome models", f"{role}_5_outcome_models")
                _visit(page, "Risk calculator", f"{role}_6_risk_calculator")
                _log_out(page)
        except Exception:
            page.screenshot(path=str(SCREENSHOTS / "failure.png"), full_page=True)  # what the browser showed
            raise
        finally:
            browser.close()

    # The decisions taken in the browser are in the registry, with their actors; the targets with their audit.
    engine = make_engine(home.db_url)
    with Session(engine) as s:
        decisions = s.execute(select(QCDecision.actor, Center.code, QCDecision.status, Series.qc_status)
                              .join(Series, QCDecision.series_id == Series.id).join(Study, Series.study_id == Study.id)
                              .join(Patient, Study.patient_id == Patient.id)
                              .join(Center, Patient.center_id == Center.id)
                              .where(QCDecision.automatic.is_(False)).order_by(QCDecision.id)).all()
        targets = s.execute(select(AuditEvent.actor, AuditEvent.entity_id, AuditEvent.after)
                            .where(AuditEvent.entity_type == "center_target").order_by(AuditEvent.id)).all()
    engine.dispose()
    assert [(d.actor, d.status, d.qc_status) for d in decisions] == [("admin", "passed", "passed"),
                                                                     ("coord", "failed", "failed")]
    assert decisions[1].code == mine
    assert [(t.actor, t.entity_id, t.after["target"]) for t in targets] == [
        ("admin", f"{mine}:patients", 10), ("admin", f"{mine}:series_qc_passed", 20)]
    assert len(list(SCREENSHOTS.glob("*.png"))) == 24
