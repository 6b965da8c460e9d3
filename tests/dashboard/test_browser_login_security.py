"""Log-in security in a real browser (Debian's Chromium through Playwright): the lockout after repeated
wrong passwords, and an open session cut at its next request once the account is deactivated from the
CLI, before the QC decision it tried to record. Screenshots: screenshots/security_*.png.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import dashboard_registry_factory
import pytest
from dashboard_browser import BROWSER_MARKS, CHROMIUM, CHROMIUM_ARGS, SCREENSHOTS, TIMEOUT_MS, running_dashboard
from dashboard_registry_factory import PASSWORD
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from registry.access.users import MAX_USER_FAILURES
from registry.db.engine import make_engine
from registry.db.models import AuditEvent, LoginAttempt, QCDecision, Series

pytestmark = BROWSER_MARKS


@pytest.fixture()
def server(home, tmp_path: Path) -> Iterator[tuple[str, object, dict[str, str]]]:
    uids = dashboard_registry_factory.build(home)
    with running_dashboard(home, tmp_path) as url:
        yield url, home, uids



def _settle(page) -> None:  # noqa: ANN001
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=TIMEOUT_MS)
    page.wait_for_timeout(500)


def _submit(page, username: str, password: str) -> None:  # noqa: ANN001
    page.get_by_label("User name").fill(username)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Log in").click()
    _settle(page)


def _wait_for_attempts(engine, n: int) -> None:  # noqa: ANN001
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while True:
        with Session(engine) as s:
            if s.scalar(select(func.count()).select_from(LoginAttempt)) >= n:
                return
        assert time.monotonic() < deadline, f"the dashboard did not record log-in attempt {n}"
        time.sleep(0.2)


def test_lockout_and_a_deactivated_session_cut_in_chromium(server) -> None:
    from playwright.sync_api import sync_playwright

    from ctstudy.cli import app

    url, home, uids = server
    SCREENSHOTS.mkdir(exist_ok=True)
    engine = make_engine(home.db_url)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1400})
            page.goto(url)
            page.get_by_label("User name").wait_for(timeout=TIMEOUT_MS)
            for i in range(MAX_USER_FAILURES):
                _submit(page, "coord1", f"wrong-password-{i}")
                _wait_for_attempts(engine, i + 1)  # each submission processed before the next
            page.get_by_text("this account is locked").wait_for(timeout=TIMEOUT_MS)
            _submit(page, "coord1", PASSWORD)  # the right password no longer opens it
            _wait_for_attempts(engine, MAX_USER_FAILURES + 1)
            page.get_by_text("This account is locked after").wait_for(timeout=TIMEOUT_MS)
            assert page.get_by_role("heading", name="Collection").count() == 0
            page.screenshot(path=str(SCREENSHOTS / "security_1_lockout.png"), full_page=True)

            _submit(page, "coord2", PASSWORD)
            page.get_by_role("heading", name="Collection", exact=True, level=1).wait_for(timeout=TIMEOUT_MS)
            page.get_by_role("link", name="Quality control", exact=True).click()
            page.get_by_role("button", name="Record decision").wait_for(timeout=TIMEOUT_MS)
            _settle(page)
            page.screenshot(path=str(SCREENSHOTS / "security_2_before_deactivation.png"), full_page=True)

            result = CliRunner().invoke(app, ["--home", str(home.root), "--db-url", home.db_url,
                                              "users", "deactivate", "coord2"])
            assert result.exit_code == 0, result.output
            page.get_by_role("button", name="Record decision").click()  # the very next request
            page.get_by_text("Your session ended: this account has been deactivated.").wait_for(timeout=TIMEOUT_MS)
            # the QC form goes once the run that cut the session has finished (stale elements linger until then)
            page.get_by_role("button", name="Record decision").wait_for(state="detached", timeout=TIMEOUT_MS)
            _settle(page)
            page.screenshot(path=str(SCREENSHOTS / "security_3_session_cut.png"), full_page=True)
        finally:
            browser.close()

    with Session(engine) as s:
        # coord2's only decision is the one the factory made; the series they had open is still pending.
        assert s.scalar(select(func.count()).select_from(QCDecision).where(QCDecision.actor == "coord2")) == 1
        assert s.scalar(select(Series.qc_status).where(Series.series_instance_uid == uids["S7"])) == "pending"
        failed = s.scalars(select(AuditEvent.after).where(AuditEvent.action == "login_failed",
                                                          AuditEvent.entity_id == "coord1")).all()
        assert len(failed) == MAX_USER_FAILURES + 1 and failed[-1]["reason"] == "locked"
    engine.dispose()
