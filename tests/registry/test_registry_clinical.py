"""Clinical and outcome CSV import: every error at once, all-or-nothing, --skip-invalid, audited updates."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest
from registry_dicom_factory import series_uid_of, write_series
from sqlalchemy import func, select

from registry.clinical.csv_import import CSVValidationError, import_table
from registry.db.engine import make_engine, session_scope
from registry.db.models import AuditEvent, ClinicalRecord, Outcome, Patient, Series
from registry.deid.pseudonym import pseudo_id
from registry.home import Home
from registry.ingest.directory import ingest_directory

HEADER = ("center,patient_id,injury_datetime,age,sex,gcs_total,gcs_motor,pupils_unreactive,hypoxia,hypotension,"
          "glucose_mmol_l,hemoglobin_g_dl,marshall_ct,tsah,edh,major_extracranial_injury")


def write_csv(path: Path, header: str, *rows: str) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


GOOD_1 = "IT064,IT064-0001,2024-03-05T14:30,45,M,8,4,1,0,1,7.5,13.1,3,1,0,0"
GOOD_2 = "IT064,IT064-0002,,70,F,,6,0,,,,,2,0,0,1"


def count(engine, model) -> int:
    with session_scope(engine) as s:
        return s.scalar(select(func.count()).select_from(model))


def test_every_error_reported_at_once_and_nothing_imported(any_home: Home, tmp_path: Path) -> None:
    csv = write_csv(
        tmp_path / "clinical.csv", HEADER, GOOD_1,
        "IT064,IT064-0003,5/3/2024,150,X,,7,1,0,0,abc,13,3,0,0,0",   # line 3: date, age, sex, motor, glucose
        ",IT064-0004,,30,M,,5,3,2,0,7,13,9,0,0,0",                  # line 4: center, pupils, hypoxia, marshall
        "IT064,IT064-0001,,40,M,,5,0,0,0,7,13,2,0,0,0",              # line 5: duplicate of line 2
        GOOD_2,
    )
    engine = make_engine(any_home.db_url)
    with pytest.raises(CSVValidationError) as caught:
        import_table(engine, any_home, csv, "clinical", create=True)
    errors = caught.value.errors
    found = set(zip(errors["row"], errors["column"], strict=True))
    assert found == {
        (3, "injury_datetime"), (3, "age"), (3, "sex"), (3, "gcs_motor"), (3, "glucose_mmol_l"),
        (4, "center"), (4, "pupils_unreactive"), (4, "hypoxia"), (4, "marshall_ct"), (5, "patient_id"),
    }
    age = errors[(errors["row"] == 3) & (errors["column"] == "age")].iloc[0]
    assert age["value"] == "150" and "between 0 and 110" in age["rule"]
    assert "line 2" in errors[errors["row"] == 5].iloc[0]["rule"]
    assert count(engine, Patient) == 0 and count(engine, ClinicalRecord) == 0  # all or nothing

    report = import_table(engine, any_home, csv, "clinical", skip_invalid=True, actor="dm", create=True)
    assert (report.created, report.invalid_rows, report.patients_new) == (2, 3, 2)
    rejects = pd.read_csv(report.rejects_path)
    assert report.rejects_path == tmp_path / "clinical.rejects.csv"
    assert list(rejects["line"]) == [3, 4, 5] and "gcs_motor" in rejects.loc[0, "errors"]
    with session_scope(engine) as s:
        rec = s.scalars(select(ClinicalRecord).join(Patient).where(
            Patient.pseudo_id == pseudo_id(any_home.secret(), "IT064", "IT064-0002"))).one()
        assert (rec.age, rec.sex, rec.gcs_motor, rec.hypoxia, rec.major_extracranial_injury) == (70, "F", 6, None, True)
        assert rec.injury_datetime is None and rec.glucose_mmol_l is None
    engine.dispose()


def test_header_errors_name_unknown_and_missing_columns(home: Home, tmp_path: Path) -> None:
    bad_header = HEADER.replace("gcs_motor", "gcs_motr").replace(",tsah", "")
    csv = write_csv(tmp_path / "c.csv", bad_header, "IT064,IT064-0001,,45,M,8,4,1,0,1,7.5,13.1,3,0,0")
    engine = make_engine(home.db_url)
    with pytest.raises(CSVValidationError) as caught:
        import_table(engine, home, csv, "clinical", skip_invalid=True)  # a wrong header is never partly imported
    errors = caught.value.errors
    assert set(zip(errors["column"], errors["rule"].str.split(" ").str[0], strict=True)) == {
        ("gcs_motr", "unknown"), ("gcs_motor", "missing"), ("tsah", "missing")}
    assert count(engine, Patient) == 0
    engine.dispose()


def test_reimport_updates_with_audit_and_days_from_injury_follow(any_home: Home, tmp_path: Path) -> None:
    # Images first: days from injury are unknown until the clinical data arrive.
    write_series(tmp_path / "in" / "IT064" / "a", "adm", patient_id="IT064-0001", acquisition="20240306093000")
    engine = make_engine(any_home.db_url)
    ingest_directory(engine, any_home, tmp_path / "in")
    uid = series_uid_of("adm")

    def days() -> float | None:
        with session_scope(engine) as s:
            return s.scalars(select(Series.days_from_injury).where(Series.series_instance_uid == uid)).one()

    assert days() is None
    import_table(engine, any_home, write_csv(tmp_path / "c1.csv", HEADER, GOOD_1, GOOD_2), "clinical", actor="dm",
                 create=True)
    assert days() == pytest.approx(0.792, abs=1e-3)  # 2024-03-05 14:30 -> 2024-03-06 09:30 = 19 h

    changed = GOOD_1.replace("2024-03-05T14:30", "2024-03-04T09:30").replace(",45,", ",46,")
    report = import_table(engine, any_home, write_csv(tmp_path / "c2.csv", HEADER, changed, GOOD_2), "clinical",
                          actor="dm2")
    assert (report.created, report.updated, report.unchanged) == (0, 1, 1)
    assert days() == 2.0
    with session_scope(engine) as s:
        event = s.scalars(select(AuditEvent).where(AuditEvent.action == "clinical_updated")).one()
        assert event.actor == "dm2" and event.entity_id == pseudo_id(any_home.secret(), "IT064", "IT064-0001")
        assert event.before == {"injury_datetime": "2024-03-05T14:30:00", "age": 45.0}
        assert event.after == {"injury_datetime": "2024-03-04T09:30:00", "age": 46.0}
        assert s.scalar(select(func.count()).select_from(Patient)) == 2  # matched to imaging, not duplicated
    # A later ingest of a patient whose clinical data are known gets its days at once.
    write_series(tmp_path / "fu" / "IT064", "fu", patient_id="IT064-0001", acquisition="20240310093000")
    ingest_directory(engine, any_home, tmp_path / "fu")
    with session_scope(engine) as s:
        assert s.scalars(select(Series.days_from_injury).where(
            Series.series_instance_uid == series_uid_of("fu"))).one() == 6.0
    engine.dispose()


def test_outcomes_rules(home: Home, tmp_path: Path) -> None:
    header = "center,patient_id,gos_6m,died,days_to_death_or_censor"
    csv = write_csv(tmp_path / "o.csv", header, "IT064,A,1,1,12", "IT064,B,1,0,180", "IT064,C,4,0,0",
                    "IT064,D,6,,", "IT064,E,5,0,183")
    engine = make_engine(home.db_url)
    with pytest.raises(CSVValidationError) as caught:
        import_table(engine, home, csv, "outcomes", create=True)
    errors = caught.value.errors
    assert list(zip(errors["row"], errors["column"], strict=True)) == [
        (3, "gos_6m,died"), (4, "days_to_death_or_censor"), (5, "gos_6m")]
    assert errors.iloc[0]["value"] == "gos_6m=1, died=0"
    assert "if and only if" in errors.iloc[0]["rule"]
    report = import_table(engine, home, csv, "outcomes", skip_invalid=True, create=True)
    assert report.created == 2
    with session_scope(engine) as s:
        assert sorted(s.execute(select(Outcome.gos_6m, Outcome.died)).all()) == [(1, True), (5, False)]
    engine.dispose()


def test_injury_datetime_with_offset_is_kept_as_wall_time(home: Home, tmp_path: Path) -> None:
    csv = write_csv(tmp_path / "c.csv", HEADER, GOOD_1.replace("2024-03-05T14:30", "2024-03-05T14:30+01:00"))
    engine = make_engine(home.db_url)
    import_table(engine, home, csv, "clinical", create=True)
    with session_scope(engine) as s:
        assert s.scalars(select(ClinicalRecord.injury_datetime)).one() == dt.datetime(2024, 3, 5, 14, 30)
    engine.dispose()


def test_evacuated_mass_lesion_is_an_optional_checked_column(home: Home, tmp_path: Path) -> None:
    engine = make_engine(home.db_url)
    with_column = HEADER + ",evacuated_mass_lesion"
    bad = write_csv(tmp_path / "bad.csv", with_column, GOOD_1 + ",2")
    with pytest.raises(CSVValidationError) as caught:
        import_table(engine, home, bad, "clinical", create=True)
    err = caught.value.errors.iloc[0]
    assert (err["column"], err["value"]) == ("evacuated_mass_lesion", "2") and "0 (no) or 1 (yes)" in err["rule"]
    import_table(engine, home, write_csv(tmp_path / "a.csv", with_column, GOOD_1 + ",1", GOOD_2 + ","),
                 "clinical", create=True)
    # A file without the column imports, and leaves the stored surgery field as it was, even with blank_clears.
    import_table(engine, home, write_csv(tmp_path / "b.csv", HEADER, GOOD_1, GOOD_2), "clinical", blank_clears=True)
    with session_scope(engine) as s:
        stored = dict(s.execute(select(Patient.pseudo_id, ClinicalRecord.evacuated_mass_lesion)
                                .join(ClinicalRecord, ClinicalRecord.patient_id == Patient.id)).all())
    key = home.secret()
    assert stored == {pseudo_id(key, "IT064", "IT064-0001"): True, pseudo_id(key, "IT064", "IT064-0002"): None}
    engine.dispose()
