"""Identifiers planted in headers, folder names and free text are found nowhere after ingest (issue 15, 10-11).

Looked for in: every table of the registry (SQLite and PostgreSQL), every byte of the archive, the
ingest command's output, the exported patient table, and DICOM SEG exports (from the archive and from
originals indexed in place).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pydicom
import pytest
from registry_dicom_factory import series_uid_of, uid, write_series, write_truncated
from sqlalchemy import select

from imaging.dicom_seg import segmentation_dataset
from imaging.volume import load_series
from registry.db import make_engine, session_scope
from registry.deidentify import deidentified, is_deidentified, mapped_uid
from registry.home import Home
from registry.ingest import ingest_directory
from registry.instance_files import instance_file_paths
from registry.models import Base, Series
from registry.patient_table import patient_table
from registry.phi_text import cleaned_text, looks_identifying
from registry.pseudonym import pseudo_id

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

PLANTED = {
    "PatientName": "Rossi^Mario",
    "PatientBirthDate": "19610312",
    "PatientAddress": "Via Roma 12 Monza",
    "OtherPatientIDs": "MRN998877",
    "ReferringPhysicianName": "Bianchi^Luca",
    "AccessionNumber": "ACC556677",
    "InstitutionName": "Ospedale San Gerardo",
    "StudyID": "STUDY4455",
    "StudyDescription": "CT HEAD Rossi Mario 12.03.1961",
    "SeriesDescription": "Head 5mm Verdi",
    "ImageComments": "patient Esposito allergic",
}
# What must appear nowhere (pieces of the planted values, the original PatientID, the folder name).
NEEDLES = ("Rossi", "Mario", "19610312", "12.03.1961", "Via Roma", "MRN998877", "Bianchi", "ACC556677",
           "Gerardo", "STUDY4455", "Verdi", "Esposito", "IT064-0001")


def plant(root: Path) -> list[Path]:
    """A head series full of identifiers under IT064/Rossi_Mario_19610312/, plus a rejected file there."""
    folder = root / "IT064" / "Rossi_Mario_19610312" / "CT_Rossi"
    files = write_series(folder, "phi", patient_id="IT064-0001", phi={**PLANTED, "FrameOfReferenceUID": uid("for")})
    ds = pydicom.dcmread(files[0])
    ds.add_new(0x00290010, "LO", "SIEMENS CSA HEADER")
    ds.add_new(0x00291010, "LO", "Rossi Mario private")
    ds.save_as(files[0], enforce_file_format=True)
    write_truncated(files[1], folder / "Rossi_Mario_cut.dcm", drop_bytes=400)
    return files


def found_in(text: str | bytes) -> list[str]:
    data = text if isinstance(text, bytes) else text.encode("utf-8", "replace")
    return [n for n in NEEDLES if n.encode() in data]


def database_text(engine) -> str:
    with session_scope(engine) as s:
        return "\n".join(str(row) for table in Base.metadata.sorted_tables for row in s.execute(select(table)).all())


def seg_bytes(paths: list[Path], key: bytes, pseudonym: str) -> bytes:
    vol = load_series(paths)
    labels = np.zeros(vol.hu.shape, dtype=np.uint8)
    labels[len(paths) // 2, 2:5, 2:5] = 1
    seg = segmentation_dataset(paths, labels, vol.sop_instance_uids, "phantom", "0" * 64, identity=(key, pseudonym))
    buffer = io.BytesIO()
    seg.save_as(buffer)
    return buffer.getvalue()


def test_planted_identifiers_are_found_nowhere(any_home: Home, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from ctstudy.cli import app

    plant(tmp_path / "in")
    args = ["--home", str(any_home.root), "--db-url", any_home.db_url, "registry", "ingest", str(tmp_path / "in")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "truncated" in result.output
    assert found_in(result.output) == [], result.output

    engine = make_engine(any_home.db_url)
    assert found_in(database_text(engine)) == []
    archived = sorted(any_home.archive_dir.rglob("*"))
    assert any(p.suffix == ".dcm" for p in archived)
    for path in archived:
        assert found_in(str(path.relative_to(any_home.archive_dir))) == []
        if path.is_file():
            assert found_in(path.read_bytes()) == [], path

    key = any_home.secret()
    pseudo = pseudo_id(key, "IT064", "IT064-0001")
    with session_scope(engine) as s:
        series = s.scalars(select(Series).where(Series.series_instance_uid == series_uid_of("phi"))).one()
        # The PHI scan names the tags (never the values), free text included.
        assert {"PatientName", "PatientBirthDate", "PatientAddress", "OtherPatientIDs", "StudyDescription",
                "SeriesDescription", "ImageComments"} <= set(series.phi_tags)
        assert series.description == "Head 5mm"
        paths = instance_file_paths(s, series.id)
        table = patient_table(s)
    export = tmp_path / "patients.csv"
    table.to_csv(export, index=False)
    assert found_in(export.read_text()) == []

    copy = pydicom.dcmread(paths[0])
    assert is_deidentified(copy) and copy.PatientID == pseudo and copy.StudyDate == "20240306"
    assert copy.SeriesInstanceUID == mapped_uid(key, series_uid_of("phi"))
    assert not any(elem.tag.is_private for elem in copy)
    assert found_in(seg_bytes(paths, key, pseudo)) == []
    engine.dispose()


def test_in_place_keeps_relative_paths_and_seg_is_pseudonymous(home: Home, tmp_path: Path) -> None:
    files = plant(tmp_path / "src")
    engine = make_engine(home.db_url)
    ingest_directory(engine, home, tmp_path / "src", in_place=True)
    text = database_text(engine)
    assert str(tmp_path / "src" / "IT064") not in text  # no absolute path below the declared root
    key = home.secret()
    pseudo = pseudo_id(key, "IT064", "IT064-0001")
    # The originals stay identifiable where they are (documented); exports from them are not.
    assert b"Rossi" in files[0].read_bytes()
    assert found_in(seg_bytes(files, key, pseudo)) == []
    engine.dispose()


def test_deidentification_keeps_dates_and_is_idempotent(tmp_path: Path) -> None:
    files = write_series(tmp_path / "s", "d", n_slices=1, phi=PLANTED)
    ds = pydicom.dcmread(files[0])
    once = deidentified(ds, b"key", "P1")
    assert once.StudyDate == ds.StudyDate and once.AcquisitionDateTime == ds.AcquisitionDateTime
    assert once.PatientName == "P1" and once.PatientBirthDate == "" and "InstitutionName" not in once
    assert deidentified(once, b"key", "P1") is once  # a second pass would map UIDs twice
    assert mapped_uid(b"key", ds.SOPInstanceUID) == once.SOPInstanceUID != mapped_uid(b"other", ds.SOPInstanceUID)
    assert len(once.SOPInstanceUID) <= 64 and once.file_meta.MediaStorageSOPInstanceUID == once.SOPInstanceUID


@pytest.mark.parametrize(("text", "kept", "flagged"), [
    ("Head 5mm H30s", "Head 5mm H30s", False),
    ("Topogram 0.6 T20f", "Topogram 0.6 T20f", False),
    ("CT HEAD Rossi Mario 12.03.1961", "CT HEAD", True),
    ("HEAD 19610312", "HEAD", True),
    ("Brain Bianchi^Luca", "Brain", True),
])
def test_free_text_is_cleaned_to_the_technical_vocabulary(text: str, kept: str, flagged: bool) -> None:
    assert cleaned_text(text) == (kept, flagged) and looks_identifying(text) is flagged
