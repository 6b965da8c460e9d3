"""Collection progress, missing items, export and QC decisions on a small hand-built registry; the CLI."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pandas as pd
import pytest
from registry_dicom_factory import series_uid_of, write_series
from sqlalchemy import select, update
from typer.testing import CliRunner

from registry.cli import app
from registry.clinical.csv_import import import_table
from registry.clinical.patient_table import patient_table
from registry.collection.progress import collection_progress, missing_items, missing_summary
from registry.db.engine import make_engine, session_scope
from registry.db.models import AuditEvent, QCDecision, Series
from registry.db.store import record_qc_decision
from registry.deid.pseudonym import pseudo_id
from registry.home import Home
from registry.ingest.directory import ingest_directory

CLINICAL = ("center,patient_id,injury_datetime,age,sex,gcs_total,gcs_motor,pupils_unreactive,hypoxia,hypotension,"
            "glucose_mmol_l,hemoglobin_g_dl,marshall_ct,tsah,edh,major_extracranial_injury\n"
            "IT064,A,2024-03-05T14:30,45,M,8,4,1,0,1,7.5,13.1,3,1,0,0\n"
            "IT064,B,2024-03-01T08:00,60,F,,5,0,0,0,6,12,2,0,0,0\n"
            "GR001,D,,30,M,,6,0,0,0,,,1,0,0,0\n")
OUTCOMES = "center,patient_id,gos_6m,died,days_to_death_or_censor\nIT064,A,4,0,182\n"


def build_registry(home: Home, tmp_path: Path) -> None:
    """IT064: A (admission passed, follow-up pending; clinical, outcome), B (gap: auto-failed; clinical).
    GR001: C (series failed by the coordinator), D (clinical data, no CT)."""
    src = tmp_path / "in"
    write_series(src / "IT064" / "A1", "A-adm", patient_id="A", acquisition="20240306093000")
    write_series(src / "IT064" / "A2", "A-fu", patient_id="A", acquisition="20240312093000")
    write_series(src / "IT064" / "B", "B-adm", patient_id="B", skip=(3, 4))
    write_series(src / "GR001" / "C", "C-adm", patient_id="C")
    (tmp_path / "clinical.csv").write_text(CLINICAL)
    (tmp_path / "outcomes.csv").write_text(OUTCOMES)
    engine = make_engine(home.db_url)
    ingest_directory(engine, home, src)
    import_table(engine, home, tmp_path / "clinical.csv", "clinical", create=True)  # D: clinical data, no CT
    import_table(engine, home, tmp_path / "outcomes.csv", "outcomes")
    with session_scope(engine) as s:
        record_qc_decision(s, series_uid_of("A-adm"), "passed", None, "coord")
        record_qc_decision(s, series_uid_of("C-adm"), "failed", "motion artefacts", "coord")
    engine.dispose()


EXPECTED = pd.DataFrame(
    [["GR001", 2, 1, 1, 0, 0, 1, 0, 1, 0, 0],
     ["IT064", 2, 2, 3, 1, 1, 0, 1, 2, 1, 1],
     ["TOTAL", 4, 3, 4, 1, 1, 1, 1, 3, 1, 1]],
    columns=["center", "patients", "with_ct", "series", "qc_passed", "qc_failed_auto", "qc_failed_manual",
             "qc_pending", "with_clinical", "with_outcome", "with_follow_up"],
)


def test_progress_missing_and_export(any_home: Home, tmp_path: Path) -> None:
    build_registry(any_home, tmp_path)
    engine = make_engine(any_home.db_url)
    with session_scope(engine) as s:
        pd.testing.assert_frame_equal(collection_progress(s), EXPECTED)
        before = collection_progress(s, as_of=dt.date.today() - dt.timedelta(days=1))
        assert before["center"].tolist() == ["GR001", "IT064", "TOTAL"]
        assert before.drop(columns="center").to_numpy().sum() == 0

        items = missing_items(s)
        key = any_home.secret()
        owed = {(r.item, r.pseudo_id) for r in items.itertuples()}
        p = {name: pseudo_id(key, center, name) for center, name in
             [("IT064", "A"), ("IT064", "B"), ("GR001", "C"), ("GR001", "D")]}
        assert owed == {
            ("no_ct", p["D"]), ("no_clinical", p["C"]),
            ("no_outcome", p["B"]), ("no_outcome", p["C"]), ("no_outcome", p["D"]),
            ("no_qc_passed_admission_scan", p["B"]), ("no_qc_passed_admission_scan", p["C"]),
            ("series_pending_review", p["A"]),
        }
        assert items[items["item"] == "series_pending_review"]["detail"].tolist() == [series_uid_of("A-fu")]
        summary = missing_summary(items).set_index("center")
        assert summary.loc["GR001"].tolist() == [1, 1, 2, 1, 0] and summary.loc["TOTAL", "no_outcome"] == 3

        table = patient_table(s).set_index("pseudo_id")
        assert len(table) == 4 and "patient_id" not in table.columns and "injury_datetime" not in table.columns
        a = table.loc[p["A"]]
        assert (a["n_series"], a["n_series_qc_passed"], a["n_studies"], a["scan_days"]) == (2, 1, 2, "0.79")
        assert (a["gos_6m"], a["gcs_motor"], a["hypotension"], a["age"]) == (4, 4, 1, 45.0)
        assert table.loc[p["D"], "n_series"] == 0 and pd.isna(table.loc[p["D"], "scan_days"])

        # As of a date before the coordinator's pass, the admission series was still pending.
        s.execute(update(QCDecision).where(QCDecision.automatic.is_(False), QCDecision.status == "passed")
                  .values(decided_at=dt.datetime(2100, 1, 1)))
    with session_scope(engine) as s:
        then = collection_progress(s, as_of=dt.date.today()).set_index("center")
        assert (then.loc["IT064", "qc_passed"], then.loc["IT064", "qc_pending"]) == (0, 2)
        assert then.loc["IT064", "qc_failed_auto"] == 1 and then.loc["TOTAL", "series"] == 4
    engine.dispose()


def test_qc_decision_rules_and_audit(home: Home, tmp_path: Path) -> None:
    write_series(tmp_path / "in" / "IT064", "s", patient_id="A")
    engine = make_engine(home.db_url)
    ingest_directory(engine, home, tmp_path / "in")
    uid = series_uid_of("s")
    with session_scope(engine) as s:
        with pytest.raises(ValueError, match="needs a reason"):
            record_qc_decision(s, uid, "failed", " ", "coord")
        with pytest.raises(ValueError, match="must be one of"):
            record_qc_decision(s, uid, "auto_failed", "x", "coord")
        with pytest.raises(LookupError, match="1.2.3"):
            record_qc_decision(s, "1.2.3", "passed", None, "coord")
        record_qc_decision(s, uid, "failed", "metal artefacts", "coord")
    with session_scope(engine) as s:
        series = s.scalars(select(Series).where(Series.series_instance_uid == uid)).one()
        assert (series.qc_status, series.qc_reasons) == ("failed", ["metal artefacts"])
        event = s.scalars(select(AuditEvent).where(AuditEvent.action == "qc_decision")).one()
        assert (event.actor, event.before["qc_status"], event.after["qc_status"]) == ("coord", "pending", "failed")
    engine.dispose()


def test_cli_end_to_end(home: Home, tmp_path: Path) -> None:
    runner = CliRunner()
    write_series(tmp_path / "in" / "IT064" / "a", "cli", patient_id="A")
    first = runner.invoke(app, ["ingest", str(tmp_path / "in"), "--actor", "tester"], obj=home)
    assert first.exit_code == 0, first.output
    assert "new instances" in first.output and "24" in first.output
    again = runner.invoke(app, ["ingest", str(tmp_path / "in")], obj=home)
    assert again.exit_code == 0 and "Nothing new" in again.output

    uid = series_uid_of("cli")
    refused = runner.invoke(app, ["qc", uid, "--fail"], obj=home)
    assert refused.exit_code == 1 and "needs a reason" in refused.output
    assert runner.invoke(app, ["qc", uid, "--pass", "--actor", "coord"], obj=home).exit_code == 0

    bad = tmp_path / "clinical.csv"
    bad.write_text(CLINICAL.replace("IT064,B,2024-03-01T08:00,60", "IT064,B,2024-03-01T08:00,999"))
    failed = runner.invoke(app, ["import-clinical", str(bad)], obj=home)
    assert failed.exit_code == 1 and "age" in failed.output and "999" in failed.output
    assert "nothing imported" in failed.output

    progress = runner.invoke(app, ["progress", "--format", "json"], obj=home)
    assert progress.exit_code == 0
    rows = {r["center"]: r for r in json.loads(progress.output)}
    assert (rows["IT064"]["series"], rows["IT064"]["qc_passed"], rows["TOTAL"]["patients"]) == (1, 1, 1)
    assert runner.invoke(app, ["progress", "--as-of", "2020-01-01"], obj=home).exit_code == 0
    missing = runner.invoke(app, ["missing", "--format", "csv"], obj=home)
    assert missing.exit_code == 0 and missing.output.splitlines()[1].startswith("IT064,0,1,1,0,0")

    out = tmp_path / "patients.parquet"
    assert runner.invoke(app, ["export", str(out)], obj=home).exit_code == 0
    assert pd.read_parquet(out)["n_series_qc_passed"].tolist() == [1]
    assert runner.invoke(app, ["export", str(tmp_path / "p.xlsx")], obj=home).exit_code == 1
