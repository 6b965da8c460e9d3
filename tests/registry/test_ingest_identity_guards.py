"""Two identity leaks ingest refuses: a center folder named after its patient, and this registry's own
de-identified copies ingested again (which would make the same person a second patient)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pydicom
import pytest
from registry_dicom_factory import series_uid_of, write_non_dicom, write_series
from sqlalchemy import func, select
from typer.testing import CliRunner

from ctstudy.cli import app
from registry.db.engine import make_engine, session_scope
from registry.db.models import Base, Center, Instance, Patient, Rejection, Study
from registry.deid.center_names import center_names_patient
from registry.deid.profile import deidentified_bytes
from registry.deid.pseudonym import pseudo_id
from registry.home import Home
from registry.ingest.directory import ingest_directory
from registry.ingest.report import CENTER_NAMES_PATIENT, REGISTRY_COPY, SERIES_CONFLICT

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

ROSSI = {"PatientName": "Rossi^Mario"}


def database_text(engine) -> str:
    with session_scope(engine) as s:
        return "\n".join(str(row) for table in Base.metadata.sorted_tables for row in s.execute(select(table)).all())


def test_center_codes_compared_with_the_patients_name_and_id() -> None:
    for code in ("ROSSI_MARIO", "rossimario", "MARIO-ROSSI", "ROSSI", "Rossi_M_1961"):
        assert center_names_patient(code, "H0012", "Rossì^Mário"), code
    assert center_names_patient("H0012", "H0012", None) and center_names_patient("IT064_H0012", "H0012", "")
    # A study code in PatientName is no name; short pieces and other words are no match.
    assert not center_names_patient("IT064", "IT064-0001", "IT064-0001")
    assert not center_names_patient("IT064", "H0012", "Li^Bo") and not center_names_patient("MIL", "H1", "Milano^Ugo")


def test_new_center_named_after_its_patient_is_refused(home: Home, tmp_path: Path) -> None:
    root = tmp_path / "in"
    write_series(root / "IT064", "ok", patient_id="IT064-0001", n_slices=3)
    # A center exported into folders named after its patients: by name, and by PatientID.
    write_series(root / "ROSSI_MARIO" / "ct", "rossi", patient_id="H0012", n_slices=3, phi=ROSSI)
    write_series(root / "ROSSI_MARIO" / "other", "other", patient_id="H0013", n_slices=2,
                 phi={"PatientName": "Bianchi^Luca"})
    write_non_dicom(root / "ROSSI_MARIO" / "notes.txt")
    write_series(root / "H0099" / "ct", "byid", patient_id="H0099", n_slices=2, phi={"PatientName": "Gallo^Anna"})
    engine = make_engine(home.db_url)
    result = CliRunner().invoke(app, ["--home", str(home.root), "--db-url", home.db_url, "registry", "ingest",
                                      str(root)])
    assert result.exit_code == 0, result.output

    with session_scope(engine) as s:
        assert list(s.scalars(select(Center.code))) == ["IT064"]
        assert s.scalar(select(Patient.pseudo_id)) == pseudo_id(home.secret(), "IT064", "IT064-0001")
        rejections = s.scalars(select(Rejection)).all()
        refused = [r for r in rejections if r.reason == CENTER_NAMES_PATIENT]
        assert len(refused) == 3 + 2 + 2
        own = "the center folder's name matches the patient's name/ID in the file's header"
        assert sum(own in r.detail for r in refused) == 3 + 2
        assert sum("another patient" in r.detail for r in refused) == 2
        assert all(r.path.startswith("file-") for r in rejections)  # no center folder kept for these
    # The folder names reach neither the registry nor the screen.
    shown = result.output.replace(str(root), "<DIR>")
    for needle in ("ROSSI", "Rossi", "MARIO", "H0099", "Bianchi", "Gallo"):
        assert needle not in database_text(engine) and needle not in shown, needle
    assert "Center folder named after a patient" in shown
    engine.dispose()


def test_center_option_is_checked_and_a_registered_center_keeps_its_code(home: Home, tmp_path: Path) -> None:
    engine = make_engine(home.db_url)
    flat = tmp_path / "flat"
    write_series(flat, "rossi", patient_id="H0012", n_slices=2, phi=ROSSI)
    report = ingest_directory(engine, home, flat, center="ROSSI")
    assert report.rejected_by_reason == {CENTER_NAMES_PATIENT: 2} and report.new_instances == 0
    assert "the --center code matches the patient's name/ID" in report.rejected[0].detail
    assert ingest_directory(engine, home, flat, center="IT100").new_instances == 2
    # With --center the first folder is any folder, often the patient's: a rejected file is kept under the code.
    write_non_dicom(tmp_path / "export" / "ROSSI_MARIO" / "notes.txt")
    run = ingest_directory(engine, home, tmp_path / "export", center="IT100").run_id
    with session_scope(engine) as s:
        assert s.scalars(select(Rejection.path).where(Rejection.ingest_run_id == run)).one().startswith("IT100/file-")

    # A center registered as ROSSI (its first patient is no Rossi) keeps its code for a patient who is.
    write_series(tmp_path / "site" / "ROSSI" / "a", "bianchi", patient_id="R-1", n_slices=2,
                 phi={"PatientName": "Bianchi^Luca"})
    assert ingest_directory(engine, home, tmp_path / "site").new_instances == 2
    write_series(tmp_path / "site2" / "ROSSI" / "b", "rossi-anna", patient_id="R-2", n_slices=2,
                 phi={"PatientName": "Rossi^Anna"})
    report = ingest_directory(engine, home, tmp_path / "site2")
    assert report.new_instances == 2 and report.rejected == []
    with session_scope(engine) as s:
        assert sorted(s.scalars(select(Center.code))) == ["IT100", "ROSSI"]
    engine.dispose()


def test_registry_copies_ingested_again_are_refused(home: Home, tmp_path: Path) -> None:
    engine = make_engine(home.db_url)
    write_series(tmp_path / "in" / "IT064", "adm", patient_id="IT064-0001", n_slices=3)
    assert ingest_directory(engine, home, tmp_path / "in").patients_new == 1
    pseudonym = pseudo_id(home.secret(), "IT064", "IT064-0001")

    # The archive itself, and an export of it under another folder name.
    export = tmp_path / "export" / "XX01"
    shutil.copytree(home.archive_dir / "IT064", export)
    for folder in (home.archive_dir, tmp_path / "export"):
        report = ingest_directory(engine, home, folder)
        assert report.rejected_by_reason == {REGISTRY_COPY: 3}, folder
        assert report.new_instances == report.patients_new == 0
        detail = report.rejected[0].detail
        assert f"already in this registry as series {series_uid_of('adm')} of patient {pseudonym}" in detail
        assert "IT064-0001" not in detail
    with session_scope(engine) as s:
        assert list(s.scalars(select(Patient.pseudo_id))) == [pseudonym]
        assert list(s.scalars(select(Center.code))) == ["IT064"]

    # Another registry's copy (its own key, a pseudonym unknown here) carries the same marks: a patient like any.
    source = next((tmp_path / "in" / "IT064").iterdir())
    other = tmp_path / "other" / "IT064" / "copy.dcm"
    other.parent.mkdir(parents=True)
    other.write_bytes(deidentified_bytes(source.read_bytes(), b"another registry's key", "0123456789abcdef0123"))
    assert pydicom.dcmread(other).PatientIdentityRemoved == "YES"
    report = ingest_directory(engine, home, tmp_path / "other")
    assert report.new_instances == 1 and report.patients_new == 1 and report.rejected == []
    engine.dispose()


def test_a_series_uid_already_in_another_study_is_refused_and_its_study_not_kept(home: Home, tmp_path: Path) -> None:
    engine = make_engine(home.db_url)
    write_series(tmp_path / "first" / "IT064", "ct", study="one", n_slices=3)
    ingest_directory(engine, home, tmp_path / "first")
    # New slices under the same SeriesInstanceUID, but in another study of the same patient.
    write_series(tmp_path / "second" / "IT064", "ct", study="two", n_slices=2, skip=(0, 1), duplicate=(0, 1))
    report = ingest_directory(engine, home, tmp_path / "second")

    assert [r.reason for r in report.rejected] == [SERIES_CONFLICT, SERIES_CONFLICT]
    assert all("already belongs to another study" in r.detail for r in report.rejected)
    assert report.new_instances == 0 and report.series_updated == 0
    with session_scope(engine) as s:
        assert s.scalar(select(func.count()).select_from(Study)) == 1  # the second study's row rolled back
        assert s.scalar(select(func.count()).select_from(Instance)) == 3
    engine.dispose()
