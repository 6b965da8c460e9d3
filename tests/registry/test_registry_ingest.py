"""DICOM ingest on SQLite and PostgreSQL: bad files, duplicates, conflicts, interruption, PHI, archive."""

from __future__ import annotations

import shutil
from pathlib import Path

import pydicom
import pytest
from registry_dicom_factory import (
    series_uid_of,
    write_non_dicom,
    write_series,
    write_truncated,
    write_without,
)
from sqlalchemy import func, select

import registry.ingest.directory as ingest_module
import registry.ingest.reading as ingest_reading
from registry.db.engine import make_engine, session_scope, upgrade
from registry.db.models import AuditEvent, Base, IngestRun, Instance, Patient, QCDecision, Rejection, Series, Study
from registry.db.store import record_qc_decision
from registry.deid.profile import mapped_uid
from registry.deid.pseudonym import pseudo_id
from registry.home import Home
from registry.ingest.directory import ingest_directory
from registry.instance_files import instance_file, instance_file_paths

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom warns on the deliberately broken files


def build_center_folder(root: Path) -> dict[str, int]:
    """IT064: two patients, three good series (one a follow-up), one with a gap; four broken files."""
    center = root / "IT064"
    ok = write_series(center / "a" / "adm", "a-adm", patient_id="IT064-0001",
                      phi={"PatientBirthDate": "19700101", "PatientName": "Rossi^Mario"})
    write_series(center / "a" / "fu", "a-fu", patient_id="IT064-0001", acquisition="20240309120000")
    write_series(center / "b", "b-adm", patient_id="IT064-0002", skip=(4,))
    write_non_dicom(center / "junk" / "notes.txt")
    write_truncated(ok[0], center / "junk" / "cut.dcm")
    write_without(ok[1], center / "junk" / "nosop.dcm", "SOPInstanceUID")
    write_series(center / "junk", "mr", patient_id="IT064-0001", n_slices=1, modality="MR")
    return {"good": 24 + 24 + 23, "bad": 4}


def table_snapshot(engine) -> dict[str, object]:
    """The registry's content that two equivalent ingests must share (ids and times aside)."""
    with session_scope(engine) as s:
        return {
            "patients": sorted(s.scalars(select(Patient.pseudo_id))),
            "studies": sorted(s.scalars(select(Study.study_instance_uid))),
            "series": sorted(s.execute(select(Series.series_instance_uid, Series.instance_count, Series.qc_status,
                                              Series.coverage_mm)).all()),
            "instances": sorted(s.execute(select(Instance.sop_instance_uid, Instance.sha256,
                                                 Instance.position_z)).all()),
            "auto_qc": s.scalar(select(func.count()).select_from(QCDecision)),
        }


def test_ingest_stores_series_and_rejects_bad_files(any_home: Home, tmp_path: Path) -> None:
    expected = build_center_folder(tmp_path / "in")
    engine = make_engine(any_home.db_url)
    report = ingest_directory(engine, any_home, tmp_path / "in", actor="tester")

    assert report.new_instances == expected["good"] and report.already_present == 0
    assert report.rejected_by_reason == {"missing_sop_instance_uid": 1, "not_ct": 1, "not_dicom": 1, "truncated": 1}
    assert (report.series_new, report.patients_new) == (3, 2)
    assert report.qc == {"pending": 2, "auto_failed": 1}
    with session_scope(engine) as s:
        gap = s.scalars(select(Series).where(Series.series_instance_uid == series_uid_of("b-adm"))).one()
        assert gap.qc_status == "auto_failed" and gap.qc_reasons == ["missing_slices"]
        adm = s.scalars(select(Series).where(Series.series_instance_uid == series_uid_of("a-adm"))).one()
        assert adm.phi_tags == ["PatientBirthDate", "PatientName"]
        assert adm.instance_count == 24 and adm.slice_spacing == 5.0 and adm.coverage_mm == 120.0
        assert adm.z_positions[:3] == [0.0, 5.0, 10.0] and adm.convolution_kernel == "H30s"
        pseudo = pseudo_id(any_home.secret(), "IT064", "IT064-0001")
        assert s.scalars(select(Patient.pseudo_id).join(Study).join(Series).where(Series.id == adm.id)).one() == pseudo
        # Archived, de-identified, as archive/<center>/<pseudo_id>/<StudyUID>/<SeriesUID>/<SOPUID>.dcm with the
        # keyed replacement UIDs; the registry keeps the hash of the bytes received.
        key = any_home.secret()
        inst = s.scalars(select(Instance).where(Instance.series_id == adm.id).order_by(Instance.position_z)).first()
        archived = Path(inst.file_path)
        assert archived.relative_to(any_home.archive_dir).parts[:2] == ("IT064", pseudo)
        assert archived.name == f"{mapped_uid(key, inst.sop_instance_uid)}.dcm"
        assert archived.parent.name == mapped_uid(key, adm.series_instance_uid)
        copy = pydicom.dcmread(archived)
        assert copy.PatientID == pseudo and copy.PatientBirthDate == "" and copy.PatientIdentityRemoved == "YES"
        assert copy.SOPInstanceUID == mapped_uid(key, inst.sop_instance_uid) and copy.StudyDate == "20240306"
        run = s.get(IngestRun, report.run_id)
        assert run.finished_at is not None and run.counts["new_instances"] == expected["good"] and run.status == "done"
        reasons = {r.reason: r for r in s.scalars(select(Rejection).where(Rejection.ingest_run_id == run.id))}
        # Rejections keep the center and a keyed token of the path, never the folder and file names.
        assert reasons["truncated"].path.startswith("IT064/file-") and "PixelData" in reasons["truncated"].detail
        assert s.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "ingest_dicom")) == 1
        # No direct identifier (name, birth date, original ID) anywhere in the database.
        dump = " ".join(str(row) for table in Base.metadata.sorted_tables
                        for row in s.execute(select(table)).all())
        for secret_value in ("Rossi", "19700101", "IT064-0001", "IT064-0002"):
            assert secret_value not in dump
    engine.dispose()


def test_second_ingest_adds_nothing_and_conflicts_are_not_overwritten(any_home: Home, tmp_path: Path) -> None:
    expected = build_center_folder(tmp_path / "in")
    engine = make_engine(any_home.db_url)
    ingest_directory(engine, any_home, tmp_path / "in")
    before = table_snapshot(engine)

    again = ingest_directory(engine, any_home, tmp_path / "in")
    assert again.nothing_new and again.already_present == expected["good"] and again.series_new == 0
    assert table_snapshot(engine) == before

    archive_before = {p: p.read_bytes() for p in any_home.archive_dir.rglob("*.dcm")}
    # The same SOPInstanceUID with other bytes (another pixel value) from a later delivery: a conflict.
    write_series(tmp_path / "later" / "IT064" / "a", "a-adm", patient_id="IT064-0001", n_slices=2, fill=7)
    clash = ingest_directory(engine, any_home, tmp_path / "later")
    assert len(clash.conflicts) == 2 and clash.new_instances == 0
    assert "already registered with other bytes" in clash.conflicts[0].detail
    assert table_snapshot(engine) == before
    with session_scope(engine) as s:
        assert {p: p.read_bytes() for p in any_home.archive_dir.rglob("*.dcm")} == archive_before
        assert s.scalar(select(func.count()).select_from(Rejection).where(Rejection.reason == "conflict")) == 2
    engine.dispose()


def test_interrupted_ingest_rerun_equals_one_clean_run(any_home: Home, tmp_path: Path, monkeypatch) -> None:
    build_center_folder(tmp_path / "in")
    reference = Home.resolve(tmp_path / "ref")
    reference.ensure()
    shutil.copy(any_home.secret_path, reference.secret_path)
    upgrade(reference.db_url)
    ref_engine = make_engine(reference.db_url)
    ingest_directory(ref_engine, reference, tmp_path / "in")

    original = ingest_module.store_series
    calls = {"n": 0}

    def crash_in_second_series(*args, **kwargs):
        calls["n"] += 1
        original(*args, **kwargs)  # files copied and rows written...
        if calls["n"] == 2:
            raise KeyboardInterrupt("killed")  # ...but the transaction never commits (a signal, not an error)

    monkeypatch.setattr(ingest_module, "store_series", crash_in_second_series)
    engine = make_engine(any_home.db_url)
    with pytest.raises(KeyboardInterrupt, match="killed"):
        ingest_directory(engine, any_home, tmp_path / "in")
    monkeypatch.setattr(ingest_module, "store_series", original)
    partial = table_snapshot(engine)
    assert len(partial["series"]) == 1  # only the first series was committed

    rerun = ingest_directory(engine, any_home, tmp_path / "in")
    assert rerun.series_new == 2 and rerun.already_present == 24
    assert table_snapshot(engine) == table_snapshot(ref_engine)
    with session_scope(engine) as s:
        runs = s.scalars(select(IngestRun).order_by(IngestRun.id)).all()
        assert [r.finished_at is None for r in runs] == [True, False]  # the killed run stays visible as unfinished
        # (its process, this test's, is alive: it is not marked interrupted; see test_ingest_hardening)
        assert [r.status for r in runs] == ["running", "done"]
    leftovers = [p for p in any_home.archive_dir.rglob("*") if ".tmp" in p.name]
    assert leftovers == []
    engine.dispose()
    ref_engine.dispose()


def test_in_place_indexes_without_copying_and_series_grow(any_home: Home, tmp_path: Path) -> None:
    folder = tmp_path / "in" / "GR001" / "p"
    write_series(folder, "grow", patient_id="GR001-1", skip=(10, 11))
    engine = make_engine(any_home.db_url)
    first = ingest_directory(engine, any_home, tmp_path / "in", in_place=True)
    assert first.qc == {"auto_failed": 1}
    assert not any(any_home.archive_dir.rglob("*.dcm"))
    uid = series_uid_of("grow")
    with session_scope(engine) as s:
        # The registry keeps the data home's pseudonymous links, which lead to the originals.
        paths = {Path(p) for p in s.scalars(select(Instance.file_path))}
        assert all(p.is_symlink() and p.is_relative_to(any_home.in_place_dir) for p in paths)
        assert {p.resolve() for p in paths} == {p.resolve() for p in folder.iterdir()}
        series_id = s.scalars(select(Series.id)).one()
        assert set(instance_file_paths(s, series_id)) == paths
        assert {instance_file(i) for i in s.scalars(select(Instance))} == paths
        record_qc_decision(s, uid, "failed", "gap in the brain stem", "dr.coordinator")

    # The missing slices arrive later: the series grows, its geometry and QC are redone, and the
    # coordinator's verdict on the incomplete series gives way to the automatic one.
    write_series(tmp_path / "late" / "GR001", "grow", patient_id="GR001-1")
    late = ingest_directory(engine, any_home, tmp_path / "late", in_place=True)
    assert (late.new_instances, late.already_present, late.series_updated) == (2, 22, 1)
    with session_scope(engine) as s:
        series = s.scalars(select(Series).where(Series.series_instance_uid == uid)).one()
        assert series.instance_count == 24 and series.qc_status == "pending" and series.qc_reasons == []
        decisions = s.scalars(select(QCDecision.status).where(QCDecision.series_id == series.id)
                              .order_by(QCDecision.id)).all()
        assert decisions == ["auto_failed", "failed", "pending"]
        extended = s.scalars(select(AuditEvent).where(AuditEvent.action == "series_extended")).one()
        assert extended.before["qc_status"] == "failed" and extended.after["instances_added"] == 2
    engine.dispose()


def test_files_outside_a_center_folder_are_rejected_unless_center_given(home: Home, tmp_path: Path) -> None:
    write_series(tmp_path / "flat", "flat", n_slices=2)
    engine = make_engine(home.db_url)
    report = ingest_directory(engine, home, tmp_path / "flat")
    assert report.rejected_by_reason == {"no_center": 2} and report.new_instances == 0
    report = ingest_directory(engine, home, tmp_path / "flat", center="IT100")
    assert report.new_instances == 2
    with session_scope(engine) as s:
        assert s.scalars(select(Patient.pseudo_id)).one() == pseudo_id(home.secret(), "IT100", "IT064-0001")
    engine.dispose()


def test_reader_processes_give_the_same_registry(home: Home, tmp_path: Path, monkeypatch) -> None:
    build_center_folder(tmp_path / "in")
    reference = Home.resolve(tmp_path / "ref")
    reference.ensure()
    shutil.copy(home.secret_path, reference.secret_path)
    upgrade(reference.db_url)
    serial_engine, parallel_engine = make_engine(reference.db_url), make_engine(home.db_url)
    serial = ingest_directory(serial_engine, reference, tmp_path / "in", workers=1)
    monkeypatch.setattr(ingest_reading, "PARALLEL_MIN_FILES", 1)  # large folders only, normally
    parallel = ingest_directory(parallel_engine, home, tmp_path / "in", workers=2)
    assert parallel.rejected == serial.rejected  # rejections cross the process boundary intact
    assert table_snapshot(parallel_engine) == table_snapshot(serial_engine)
    serial_engine.dispose()
    parallel_engine.dispose()
