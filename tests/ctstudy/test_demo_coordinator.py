"""The demo leaves its coordinator a day's work: series to review, their center's targets, a readable log."""

from __future__ import annotations

import datetime as dt
import io
import os
import subprocess
from pathlib import Path

from rich.console import Console
from sqlalchemy import select

from ctstudy import demo
from registry.collection.targets import effective_targets, stored_targets
from registry.db.engine import session_scope
from registry.db.models import Center, Patient, Series, Study
from registry.qc.review_queue import qc_queue_rows


def _fill(engine) -> None:
    """Center BIG (3 patients, 8 pending series, one with identifiers in its header), SMALL (1 patient, 2)."""
    start = dt.datetime(2024, 5, 1)
    with session_scope(engine) as s:
        big, small = Center(code="BIG"), Center(code="SMALL")
        k = 0
        for center, n_patients, per_patient in ((big, 3, [3, 3, 2]), (small, 1, [2])):
            for p in range(n_patients):
                patient = Patient(pseudo_id=f"{center.code}{p}", center=center)
                study = Study(study_instance_uid=f"1.2.3.{k}.0", patient=patient)
                for _ in range(per_patient[p]):
                    k += 1
                    s.add(Series(series_instance_uid=f"1.2.3.{k}", study=study, modality="CT", qc_status="pending",
                                 phi_tags=["PatientName"] if k == 2 else [], ingested_at=start + dt.timedelta(hours=k)))


def test_review_leaves_the_coordinators_latest_series_pending_and_again_on_a_rerun(home, engine, tmp_path) -> None:
    _fill(engine)
    assert demo.coordinator_center(home) == "BIG"
    no_defects = tmp_path / "defects.csv"
    passed, failed, left = demo.review_pending_series(home, no_defects, "BIG", leave=3)
    assert (passed, failed, left) == (6, 1, 3)  # the series with a patient name in its header fails
    with session_scope(engine) as s:
        queue = qc_queue_rows(s)
        assert [r[-1] for r in queue.rows] == ["1.2.3.6", "1.2.3.7", "1.2.3.8"]  # BIG's last three arrivals
        assert s.scalar(select(Series.qc_status).where(Series.series_instance_uid == "1.2.3.2")) == "failed"
    assert demo.review_pending_series(home, no_defects, "BIG", leave=3) == (0, 0, 3)  # the same three stay


def test_demo_targets_give_each_center_its_own_and_keep_an_admins(home, engine) -> None:
    _fill(engine)
    from registry.collection.targets import set_target

    with session_scope(engine) as s:
        set_target(s, "SMALL", "patients", 40, "admin")
    demo.set_demo_targets(home)
    with session_scope(engine) as s:
        stored = stored_targets(s)
    big = effective_targets(stored, {}, "BIG")
    assert big["patients"] > 3 and big["series_qc_passed"] == 6 and big["series_segmented"] == 6
    assert effective_targets(stored, {}, "SMALL")["patients"] == 40  # what an admin stored stays


def test_piped_demo_output_is_not_wrapped_at_80_columns() -> None:
    environ: dict[str, str] = {}
    assert demo.widen_output_when_piped(io.StringIO(), environ) and int(environ["COLUMNS"]) >= 160
    assert not demo.widen_output_when_piped(io.StringIO(), {"COLUMNS": "100"})  # the user's own width stays
    out = io.StringIO()
    line = "word " * 30
    Console(file=out, _environ=environ).print(line.strip())
    assert out.getvalue().count("\n") == 1



def test_the_demo_hands_over_to_a_dashboard_command_that_runs(home) -> None:
    args = demo.dashboard_exec_args(home, 8765)
    assert args[-3:] == ["dashboard", "--port", "8765"] and str(home.root) in args
    shown = subprocess.run([*args, "--help"], capture_output=True, text=True, timeout=120,
                           env={**os.environ, "PYTHONPATH": str(Path(demo.__file__).parents[1])})
    assert shown.returncode == 0, shown.stderr
    assert "Serve the dashboard" in shown.stdout
