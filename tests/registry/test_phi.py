"""Identifiers planted in headers, folder names, forged headers and CSV cells are found nowhere after ingest.

Planted in: the headers (private tags included); the names of the ingested folder itself, of the folders
below it, of a folder indexed in place and of a folder a symbolic link leads to; a series whose header
claims to be de-identified already; the rejected cells of a clinical CSV. Looked for in: every text of
every table of the registry (SQLite and PostgreSQL), every byte of every file of the data home but the
originals it links to (archive copies, private tags included; the registry file), the commands' output
(except the folder the operator typed, shown in the ingest's title), the exported patient table, the
progress and missing reports, and DICOM SEGs made from the archive and from files indexed in place.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pydicom
import pytest
from registry_dicom_factory import series_uid_of, uid, write_non_dicom, write_series, write_truncated
from sqlalchemy import select
from typer.testing import CliRunner

from ctstudy.cli import app
from imaging.dicom_seg import segmentation_dataset
from imaging.volume import load_series
from registry.db.engine import make_engine, session_scope
from registry.db.models import Base, Series
from registry.deid.phi_text import cleaned_text, looks_identifying
from registry.deid.profile import deidentified, deidentified_bytes, is_mapped_uid, mapped_uid
from registry.deid.pseudonym import pseudo_id
from registry.home import Home
from registry.ingest.directory import ingest_directory
from registry.instance_files import instance_file_paths

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
# A series a PACS re-imported: it claims our de-identification, yet carries a name and the original UIDs.
FORGED = {
    "PatientName": "Bruno^Carla",
    "PatientBirthDate": "19550101",
    "PatientAddress": "Corso Como 5 Milano",
    "OtherPatientIDs": "MRN112233",
    "InstitutionName": "Ospedale Niguarda",
    "PatientIdentityRemoved": "YES",
    "DeidentificationMethod": "ctstudy",
}
# What must appear nowhere: pieces of the planted values, the original PatientIDs, the folder names,
# the rejected CSV cell (a name, a birth date and a phone number).
NEEDLES = ("Rossi", "Mario", "19610312", "12.03.1961", "Via Roma", "MRN998877", "Bianchi", "ACC556677",
           "Gerardo", "STUDY4455", "Verdi", "Esposito", "ESPOSITO", "IT064-0001", "IT064-0002", "Bruno", "Carla",
           "19550101", "Corso Como", "MRN112233", "Niguarda", "Gallo", "Anna", "1234567", "1961-03-12")
INGESTED = "Rossi_Mario_19610312"  # the ingested folder itself is named after the patient
IN_PLACE = "Gallo_Anna_19700101"


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


def plant_forged(root: Path) -> list[Path]:
    """A series under IT064/Bruno_Carla/ whose headers claim ctstudy's de-identification."""
    return write_series(root / "IT064" / "Bruno_Carla", "forged", patient_id="IT064-0002", n_slices=3, phi=FORGED)


def plant_symlinked(root: Path, outside: Path) -> None:
    """Links below the ingested folder to files in a patient-named folder outside it: one CT slice, one text file."""
    target = outside / "ESPOSITO"
    slices = write_series(target, "linked", patient_id="IT064-0001", n_slices=1)
    write_non_dicom(target / "Esposito_notes.dcm")
    (root / "IT064" / "linked").mkdir(parents=True)
    os.symlink(slices[0], root / "IT064" / "linked" / "slice.dcm")
    os.symlink(target / "Esposito_notes.dcm", root / "IT064" / "linked" / "notes.dcm")


def found_in(text: str | bytes, needles: tuple[str, ...] = NEEDLES) -> list[str]:
    data = text if isinstance(text, bytes) else text.encode("utf-8", "replace")
    return [n for n in needles if n.encode() in data]


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


def home_files(home: Home) -> list[Path]:
    """Every file of the data home, the links to originals indexed in place excepted (they lead outside)."""
    return [p for p in sorted(home.root.rglob("*")) if not p.is_symlink() and p.is_file()]


def test_planted_identifiers_are_found_nowhere(any_home: Home, tmp_path: Path) -> None:
    runner = CliRunner()
    base = ["--home", str(any_home.root), "--db-url", any_home.db_url]
    ingested = tmp_path / INGESTED
    plant(ingested)
    plant_forged(ingested)
    plant_symlinked(ingested, tmp_path / "elsewhere")
    result = runner.invoke(app, [*base, "registry", "ingest", str(ingested)])
    assert result.exit_code == 0, result.output
    assert "truncated" in result.output and "not_dicom" in result.output
    # The operator's terminal shows the folder they typed (the table's title); nothing else names anyone.
    assert found_in(result.output.replace(str(ingested), "<DIR>")) == [], result.output

    in_place = tmp_path / IN_PLACE
    originals = write_series(in_place / "IT064" / "Gallo_Anna", "inplace", patient_id="IT064-0003", n_slices=3,
                             phi={"PatientName": "Gallo^Anna", "FrameOfReferenceUID": uid("for-inplace")})
    result = runner.invoke(app, [*base, "registry", "ingest", "--in-place", str(in_place)])
    assert result.exit_code == 0, result.output

    clinical = tmp_path / "clinical_Rossi.csv"
    clinical.write_text(
        "center,patient_id,injury_datetime,age,sex,gcs_total,gcs_motor,pupils_unreactive,hypoxia,hypotension,"
        "glucose_mmol_l,hemoglobin_g_dl,marshall_ct,tsah,edh,major_extracranial_injury\n"
        "IT064,Rossi Mario 1961-03-12 +39 333 1234567,2024-03-05T20:00,63,M,9,5,0,0,0,7.1,13.2,2,1,0,0\n")
    result = runner.invoke(app, [*base, "registry", "import-clinical", "--skip-invalid", str(clinical)])
    assert result.exit_code == 0, result.output

    reports = [runner.invoke(app, [*base, "registry", *args]) for args in (["progress"], ["missing", "--detail"])]
    for report in reports:
        assert report.exit_code == 0, report.output
        assert found_in(report.output) == [], report.output

    engine = make_engine(any_home.db_url)
    text = database_text(engine)
    assert found_in(text) == [], [line for line in text.splitlines() if found_in(line)]
    # No path the operator typed, nor its parent folders (the data home's own paths aside).
    assert str(tmp_path) not in text.replace(str(any_home.root), "<HOME>")
    assert "symlink_loop" not in text and "not_dicom" in text  # the linked text file: rejected, named by token
    files = home_files(any_home)
    assert any(p.suffix == ".dcm" for p in files)
    assert any(p.name.endswith(".sqlite") for p in files) == any_home.is_sqlite
    for path in files:
        assert found_in(str(path.relative_to(any_home.root))) == [], path
        assert found_in(path.read_bytes()) == [], path
    archived = [p for p in files if p.is_relative_to(any_home.archive_dir) and p.suffix == ".dcm"]
    original_uids = (series_uid_of("forged"), uid("forged-0"), uid("study-IT064-0002-20240306093000"))
    for path in archived:
        assert found_in(path.read_bytes(), original_uids) == [], path
    links = [p for p in any_home.in_place_dir.rglob("*.dcm")]
    assert sorted(p.resolve() for p in links) == sorted(p.resolve() for p in originals)

    key = any_home.secret()
    pseudo = pseudo_id(key, "IT064", "IT064-0001")
    with session_scope(engine) as s:
        series = s.scalars(select(Series).where(Series.series_instance_uid == series_uid_of("phi"))).one()
        # The PHI scan names the tags (never the values), free text included.
        assert {"PatientName", "PatientBirthDate", "PatientAddress", "OtherPatientIDs", "StudyDescription",
                "SeriesDescription", "ImageComments"} <= set(series.phi_tags)
        assert series.description == "Head 5mm"
        paths = instance_file_paths(s, series.id)
        forged = s.scalars(select(Series).where(Series.series_instance_uid == series_uid_of("forged"))).one()
        forged_paths = instance_file_paths(s, forged.id)
        placed = s.scalars(select(Series).where(Series.series_instance_uid == series_uid_of("inplace"))).one()
        placed_paths = instance_file_paths(s, placed.id)
    export = tmp_path / "patients.csv"
    result = runner.invoke(app, [*base, "registry", "export", str(export)])
    assert result.exit_code == 0, result.output
    assert found_in(export.read_text()) == []

    copy = pydicom.dcmread(paths[0])
    assert copy.PatientID == pseudo and copy.StudyDate == "20240306"
    assert copy.SeriesInstanceUID == mapped_uid(key, series_uid_of("phi"))
    assert not any(elem.tag.is_private for elem in copy)
    assert found_in(seg_bytes(paths, key, pseudo)) == []
    forged_copy = pydicom.dcmread(forged_paths[0])
    assert forged_copy.PatientID == pseudo_id(key, "IT064", "IT064-0002") == forged_copy.PatientName
    assert is_mapped_uid(key, forged_copy.SeriesInstanceUID) and "PatientAddress" not in forged_copy
    placed_seg = seg_bytes(placed_paths, key, pseudo_id(key, "IT064", "IT064-0003"))
    assert found_in(placed_seg) == [] and series_uid_of("inplace").encode() not in placed_seg
    engine.dispose()


def test_in_place_files_are_reached_through_pseudonymous_links(home: Home, tmp_path: Path) -> None:
    files = plant(tmp_path / IN_PLACE)
    engine = make_engine(home.db_url)
    ingest_directory(engine, home, tmp_path / IN_PLACE, in_place=True)
    text = database_text(engine)
    assert found_in(text) == [] and str(tmp_path) not in text.replace(str(home.root), "<HOME>")
    with session_scope(engine) as s:
        series = s.scalars(select(Series).where(Series.series_instance_uid == series_uid_of("phi"))).one()
        paths = instance_file_paths(s, series.id)
        assert Path(series.archive_path).is_relative_to(home.in_place_dir)
    assert all(p.is_symlink() and p.is_relative_to(home.in_place_dir) for p in paths)
    assert sorted(p.resolve() for p in paths) == sorted(f.resolve() for f in files)
    # The originals stay identifiable where they are (documented); exports from them are not.
    assert b"Rossi" in files[0].read_bytes()
    key = home.secret()
    assert found_in(seg_bytes(paths, key, pseudo_id(key, "IT064", "IT064-0001"))) == []
    # Indexing the same folder again links nothing new and changes no link.
    before = {p: os.readlink(p) for p in paths}
    report = ingest_directory(engine, home, tmp_path / IN_PLACE, in_place=True)
    assert report.new_instances == 0 and {p: os.readlink(p) for p in paths} == before
    engine.dispose()


def test_profile_ignores_what_a_header_claims_and_is_idempotent(tmp_path: Path) -> None:
    files = write_series(tmp_path / "s", "d", n_slices=1, phi={**PLANTED, **FORGED})
    data = files[0].read_bytes()
    ds = pydicom.dcmread(files[0])
    once = deidentified(ds, b"key", "P1")
    assert once.PatientName == "P1" and once.PatientBirthDate == "" and "InstitutionName" not in once
    assert "PatientAddress" not in once and "OtherPatientIDs" not in once
    assert once.SOPInstanceUID == mapped_uid(b"key", ds.SOPInstanceUID) != ds.SOPInstanceUID
    assert once.StudyDate == ds.StudyDate and once.AcquisitionDateTime == ds.AcquisitionDateTime
    assert len(once.SOPInstanceUID) <= 64 and once.file_meta.MediaStorageSOPInstanceUID == once.SOPInstanceUID
    # Applied again (an archive copy re-imported), the profile changes nothing, to the byte.
    copy = deidentified_bytes(data, b"key", "P1")
    assert deidentified_bytes(copy, b"key", "P1") == copy
    assert pydicom.dcmread(io.BytesIO(copy)).SOPInstanceUID == once.SOPInstanceUID


def test_mapped_uids_are_recognised_only_under_their_key() -> None:
    original = uid("anything")
    mapped = mapped_uid(b"key", original)
    assert is_mapped_uid(b"key", mapped) and mapped_uid(b"key", mapped) == mapped
    assert not is_mapped_uid(b"other", mapped) and mapped_uid(b"other", mapped) != mapped
    assert not is_mapped_uid(b"key", original) and not is_mapped_uid(b"key", "2.25.12345")
    assert mapped.startswith("2.25.") and len(mapped) <= 64


@pytest.mark.parametrize(("text", "kept", "flagged"), [
    ("Head 5mm H30s", "Head 5mm H30s", False),
    ("Topogram 0.6 T20f", "Topogram 0.6 T20f", False),
    ("CT HEAD Rossi Mario 12.03.1961", "CT HEAD", True),
    ("HEAD 19610312", "HEAD", True),
    ("Brain Bianchi^Luca", "Brain", True),
])
def test_free_text_is_cleaned_to_the_technical_vocabulary(text: str, kept: str, flagged: bool) -> None:
    assert cleaned_text(text) == (kept, flagged) and looks_identifying(text) is flagged
