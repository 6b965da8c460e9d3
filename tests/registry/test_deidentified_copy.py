"""Archive copies made from ingest's one read of a file are the bytes of the whole-file way, and change no row.

`registry.deid.deidentified_copy` writes the de-identified header parsed up to Pixel Data and appends the source's
Pixel Data element as it is. Its output must equal `profile.deidentified_bytes` (and pydicom's own
`dcmwrite` of the profile's dataset) for every file ingest accepts: the synthetic study's files, the kinds
`test_archive_copy_bytes` makes (RLE, no preamble, odd header value, trailing elements), the planted
identifiers, an encapsulated value holding the delimiter's tag bytes inside a fragment (ended where pydicom
ends it, item by item), and the Pixel Data elements whose bytes pydicom would not write as they are (odd
length, UN VR, big endian, a delimiter of non-zero length), which must go the whole-file way. An ingest
staging its copies and one writing every copy from the source file alone leave the same archive files and
the same registry rows; zip members, staged after the folder's files, keep copies of their own.
"""

from __future__ import annotations

import hashlib
import shutil
import struct
import zipfile
from pathlib import Path

import pydicom
import pytest
from pydicom.encaps import encapsulate
from pydicom.filewriter import dcmwrite
from pydicom.uid import ExplicitVRBigEndian, RLELossless
from registry_dicom_factory import write_series
from sqlalchemy import select
from test_archive_copy_bytes import _source_folder
from test_phi import plant, plant_forged

import registry.ingest.archive_copy as archive_copy
import registry.ingest.reading as ingest_reading
import registry.ingest.series_archive as series_archive
from registry.db.engine import make_engine, session_scope, upgrade
from registry.db.models import Instance, Patient, QCDecision, Rejection, Series, Study
from registry.deid.deidentified_copy import deidentified_copy, pixel_element_span
from registry.deid.profile import deidentified_bytes, deidentified_bytes_reencoded
from registry.deid.pseudonym import pseudo_id
from registry.dicom_headers import RejectedFile, parse_instance
from registry.home import Home
from registry.ingest.directory import ingest_directory
from synthetic.study import generate_study

KEY = b"k" * 32


def _pixel_oddities(root: Path) -> dict[str, list[Path]]:
    """Files with unusual Pixel Data elements, most of which pydicom would not write with the source's bytes."""
    kinds: dict[str, list[Path]] = {}
    kinds["odd_pixel_length"] = write_series(root / "odd", "oddpix", patient_id="IT064-0007", n_slices=2)
    for path in kinds["odd_pixel_length"]:
        data = path.read_bytes()
        at = data.rindex(b"\xe0\x7f\x10\x00OW\0\0")
        (length,) = struct.unpack_from("<I", data, at + 8)
        # One byte fewer, declared as such: a complete element of odd length (pydicom pads it when writing).
        path.write_bytes(data[: at + 8] + struct.pack("<I", length - 1) + data[at + 12 : -1])

    kinds["un_vr"] = write_series(root / "un", "unvr", patient_id="IT064-0008", n_slices=2)
    for path in kinds["un_vr"]:
        data = path.read_bytes()
        path.write_bytes(data.replace(b"\xe0\x7f\x10\x00OW\0\0", b"\xe0\x7f\x10\x00UN\0\0"))

    kinds["big_endian"] = write_series(root / "be", "bepix", patient_id="IT064-0009", n_slices=2)
    for path in kinds["big_endian"]:
        ds = pydicom.dcmread(path)
        ds.file_meta.TransferSyntaxUID = ExplicitVRBigEndian
        dcmwrite(path, ds, implicit_vr=False, little_endian=False, enforce_file_format=True)

    kinds["stray_delimiter"] = write_series(root / "stray", "stray", patient_id="IT064-0010", n_slices=2)
    for path in kinds["stray_delimiter"]:
        ds = pydicom.dcmread(path)
        # A fragment holding the delimiter's tag bytes: found by a byte search, skipped by item-wise reading.
        ds.PixelData = encapsulate([b"\xfe\xff\xdd\xe0\0\0\0\0" + b"\x01" * 120])
        ds["PixelData"].VR = "OB"
        ds.file_meta.TransferSyntaxUID = RLELossless
        ds.save_as(path, enforce_file_format=True)

    kinds["delimiter_length"] = write_series(root / "delim", "delim", patient_id="IT064-0011", n_slices=2, fill=300)
    for path in kinds["delimiter_length"]:
        ds = pydicom.dcmread(path)
        ds.compress(RLELossless)
        ds.save_as(path, enforce_file_format=True)
        data = path.read_bytes()
        assert data.endswith(b"\xfe\xff\xdd\xe0\0\0\0\0")
        path.write_bytes(data[:-4] + b"\x04\0\0\0")  # the delimiter's length is not 0 (pydicom writes 0)
    return kinds


def _synthetic_study(root: Path) -> list[Path]:
    """A small synthetic study with its defects (the files centers send, broken ones included)."""
    generate_study(root, centers=2, patients=3, seed=3, matrix=128, defects=True)
    return sorted(p for p in (root / "dicom").rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Path]]:
    root = tmp_path_factory.mktemp("sources")
    kinds = _source_folder(root / "kinds")
    kinds["phi"] = plant(root / "phi") + plant_forged(root / "forged")
    kinds["synthetic"] = _synthetic_study(root / "study")
    return {**kinds, **_pixel_oddities(root / "misfits")}


COPIED_AS_THEY_ARE = ("plain", "rle", "no_preamble", "odd_length", "trailing", "phi", "synthetic", "stray_delimiter")
WRITTEN_BY_PYDICOM = ("odd_pixel_length", "un_vr", "big_endian", "delimiter_length")


def test_copies_from_one_read_are_the_whole_file_bytes(sources: dict[str, list[Path]]) -> None:
    for kind, files in sources.items():
        spans = []
        for path in files:
            try:
                parsed = parse_instance(path)
            except RejectedFile:
                continue  # no copy is made of a rejected file
            spans.append(pixel_element_span(parsed.dataset, parsed.data, parsed.pixel_offset))
            for pseudonym in ("PSEUDO-1", "PSEUDO-2"):
                copy = deidentified_copy(parsed, KEY, pseudonym)
                assert copy == deidentified_bytes(parsed.data, KEY, pseudonym), (kind, path.name)
                assert copy == deidentified_bytes_reencoded(parsed.data, KEY, pseudonym), (kind, path.name)
        assert spans, kind
        if kind in COPIED_AS_THEY_ARE:
            # Every file of these kinds takes the one-read way (the equality above is not the fallback's).
            assert all(span is not None for span in spans), kind
        else:
            assert kind in WRITTEN_BY_PYDICOM
            assert all(span is None for span in spans), kind


def _varied_series(root: Path) -> list[Path]:
    """One series whose files differ from each other in what the profile reads, one thing at a time."""
    files = write_series(root, "varied", patient_id="IT064-0012", n_slices=12)
    changes: list[dict[str, object]] = [
        {},
        {"SeriesDescription": "HEAD Rossi Mario"},  # cleaned to the technical words
        {"SeriesDescription": "Rossi Mario"},  # cleaned to nothing: the element leaves the copy
        {"SmallestImagePixelValue": 3, "LargestImagePixelValue": 900},  # US or SS, after PixelRepresentation
        {"SmallestImagePixelValue": 5, "LargestImagePixelValue": 901},
        {"SpecificCharacterSet": "ISO_IR 100", "StudyDescription": "Kopf Müller"},
        {"PatientName": "Verdi^Anna", "InstitutionName": "Niguarda"},  # dropped by the profile
        {"WindowCenter": "45", "WindowWidth": "90"},
        {"FrameOfReferenceUID": "1.2.826.0.1.3680043.10.1289.77"},
        {"StudyInstanceUID": "1.2.826.0.1.3680043.10.1289.78"},
        {"ImageType": "DERIVED\\SECONDARY\\AXIAL"},
        {},
    ]
    for path, change in zip(files, changes, strict=True):
        ds = pydicom.dcmread(path)
        change = {"SmallestImagePixelValue": 0, "LargestImagePixelValue": 1000, **change}
        for keyword, value in change.items():
            if keyword.endswith("ImagePixelValue"):
                ds.add_new(keyword, "SS", value)  # signed pixels (PixelRepresentation 1)
            else:
                setattr(ds, keyword, value)
        ds.save_as(path, enforce_file_format=True)
    return files


def test_a_series_whose_files_differ_copies_each_as_the_whole_file_way(tmp_path: Path) -> None:
    files = _varied_series(tmp_path / "varied")
    # Twice through, the second time backwards: each file follows another that differs from it.
    for path in files + files[::-1]:
        parsed = parse_instance(path)
        assert pixel_element_span(parsed.dataset, parsed.data, parsed.pixel_offset) is not None
        assert deidentified_copy(parsed, KEY, "PSEUDO-3") == deidentified_bytes_reencoded(
            parsed.data, KEY, "PSEUDO-3"), path.name


def test_one_remembered_header_serves_every_patient_with_the_whole_file_bytes(tmp_path: Path) -> None:
    files = _varied_series(tmp_path / "varied")
    # Each file under another pseudonym than the one before: of odd and even length, the registry's own kind.
    pseudonyms = ["PSEUDO-3", "P", "Pseudo-Odd", "abc", pseudo_id(KEY, "IT064", "IT064-0012")]
    for n, path in enumerate(files + files[::-1]):
        parsed = parse_instance(path)
        pseudonym = pseudonyms[n % len(pseudonyms)]
        assert deidentified_copy(parsed, KEY, pseudonym) == deidentified_bytes_reencoded(
            parsed.data, KEY, pseudonym), (path.name, pseudonym)


def _rows(engine, home: Home) -> dict[str, list[tuple]]:
    """Every row ingest writes, ids and times left out, archive paths relative to the archive."""
    def relative(path: str | None) -> str | None:
        return None if path is None else str(Path(path).relative_to(home.archive_dir))

    with session_scope(engine) as s:
        return {
            "patients": sorted((p.pseudo_id,) for p in s.scalars(select(Patient))),
            "studies": sorted((st.study_instance_uid, st.description, str(st.study_datetime))
                              for st in s.scalars(select(Study))),
            "series": sorted((se.series_instance_uid, se.qc_status, tuple(se.qc_reasons), tuple(se.phi_tags),
                              se.instance_count, tuple(se.z_positions or ()), se.rows, se.columns,
                              se.slice_thickness, relative(se.archive_path), se.description)
                             for se in s.scalars(select(Series))),
            "instances": sorted((i.sop_instance_uid, i.sha256, i.file_size, relative(i.file_path), i.position_z,
                                 i.instance_number) for i in s.scalars(select(Instance))),
            "qc": sorted((d.status, tuple(d.reasons), d.automatic) for d in s.scalars(select(QCDecision))),
            "rejections": sorted((r.reason, r.detail) for r in s.scalars(select(Rejection))),
        }


def _home_with_key(root: Path, key_from: Home) -> Home:
    other = Home.resolve(root)
    other.root.mkdir(parents=True)
    shutil.copyfile(key_from.secret_path, other.secret_path)
    other.ensure()
    upgrade(other.db_url)
    return other


def test_staged_ingest_leaves_the_archive_and_rows_of_whole_file_copies(
        home: Home, tmp_path: Path, sources: dict[str, list[Path]], monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "in"
    for kind, files in sources.items():
        for n, path in enumerate(files):
            # Under a center folder each: the synthetic study's own center folders, IT064 for the rest.
            if kind == "synthetic":
                below = path.relative_to(next(p for p in path.parents if p.name == "dicom"))
            else:
                below = Path("IT064") / kind / f"{n:03d}-{path.name}"
            (folder / below).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, folder / below)

    whole_file_copies = []
    real_write = series_archive.write_archive_copy
    real_stage = ingest_reading.stage_archive_copy

    def counted_write(job: archive_copy.ArchiveJob) -> archive_copy.ArchiveResult:
        whole_file_copies.append(job.source)
        return real_write(job)
    monkeypatch.setattr(series_archive, "write_archive_copy", counted_write)

    engine = make_engine(home.db_url)
    staged_report = ingest_directory(engine, home, folder, workers=1)
    assert staged_report.new_instances > 250
    # Every copy was made from the read that indexed its file (those pydicom rewrites whole included).
    assert whole_file_copies == []
    assert not any(home.staging_dir.iterdir()), "staged copies were left behind"

    # The same folder under the same key with nothing staged: every copy made from the source file alone.
    other = _home_with_key(tmp_path / "whole-file", home)
    monkeypatch.setattr(ingest_reading, "stage_archive_copy", lambda *args, **kwargs: None)
    other_engine = make_engine(other.db_url)
    other_report = ingest_directory(other_engine, other, folder, workers=1)
    assert other_report.counts() == staged_report.counts()
    assert _rows(other_engine, other) == _rows(engine, home)
    copies = sorted(p.relative_to(home.archive_dir) for p in home.archive_dir.rglob("*") if p.is_file())
    assert copies == sorted(p.relative_to(other.archive_dir) for p in other.archive_dir.rglob("*") if p.is_file())
    assert len(copies) == staged_report.new_instances
    for rel in copies:
        assert (home.archive_dir / rel).read_bytes() == (other.archive_dir / rel).read_bytes(), rel

    # Ingested again: every copy is already in the archive, so none is made again.
    staged_again = []
    whole_file_copies.clear()

    def counted_stage(*args, **kwargs):
        staged_again.append(args)
        return real_stage(*args, **kwargs)
    monkeypatch.setattr(ingest_reading, "stage_archive_copy", counted_stage)
    again = ingest_directory(engine, home, folder, workers=1)
    assert again.new_instances == 0
    assert again.already_present == staged_report.new_instances + staged_report.already_present
    assert staged_again == [] and whole_file_copies == []
    engine.dispose()
    other_engine.dispose()


def test_zip_members_staged_after_rejected_files_keep_their_own_copies(home: Home, tmp_path: Path) -> None:
    center = tmp_path / "in" / "IT064"
    plain = write_series(center / "plain", "plain-z", patient_id="IT064-0013", n_slices=4)
    zipped = write_series(tmp_path / "export", "zipped-z", patient_id="IT064-0014", n_slices=4)
    # Read before the series folder: a zip (read after the folder, member by member) and a file rejected.
    with zipfile.ZipFile(center / "cd.zip", "w") as zf:
        for n, path in enumerate(zipped):
            zf.write(path, f"IMG{n}")
    (center / "notes.dcm").write_text("not a DICOM file")
    engine = make_engine(home.db_url)
    report = ingest_directory(engine, home, tmp_path / "in", workers=1)
    assert report.rejected_by_reason == {"not_dicom": 1} and report.new_instances == 8
    key = home.secret()
    by_sha = {hashlib.sha256(p.read_bytes()).hexdigest(): p for p in plain + zipped}
    with session_scope(engine) as s:
        rows = s.execute(select(Instance.sha256, Instance.file_path, Patient.pseudo_id)
                         .join(Series, Instance.series_id == Series.id).join(Study, Series.study_id == Study.id)
                         .join(Patient, Study.patient_id == Patient.id)).all()
    assert {sha for sha, _, _ in rows} == set(by_sha)
    for sha, path, pseudonym in rows:
        assert Path(path).read_bytes() == deidentified_bytes_reencoded(by_sha[sha].read_bytes(), key, pseudonym)
    engine.dispose()
