"""Archive copies are byte for byte the copies pydicom's own writer makes of `deidentified`'s dataset.

The reference is `registry.deid.profile.deidentified_bytes_reencoded`: one pydicom read, `deidentified`, one
`dcmwrite`. Ingest makes its copies in its reader processes, from the read that indexed each file
(`registry.deid.deidentified_copy`, element encodings remembered across files by `registry.deid.dicom_encoding`).
Sources cover what centers send: plain files, RLE-compressed (encapsulated) pixel data, files with no
preamble and no file meta (implicit VR), explicit VR big endian, a value of odd length, elements after
Pixel Data (a private tag and data set trailing padding FFFC,FFFC), and the identifiers `test_phi` plants.
The registry rows of a parallel ingest equal those of a one-process ingest under the same key.
"""

from __future__ import annotations

import hashlib
import shutil
import struct
from pathlib import Path

import pydicom
import pytest
from pydicom.filewriter import dcmwrite
from pydicom.uid import RLELossless
from registry_dicom_factory import write_series
from sqlalchemy import select
from test_phi import plant, plant_forged

import registry.ingest.directory as ingest_module
import registry.ingest.reading as ingest_reading
from registry.db.engine import make_engine, session_scope, upgrade
from registry.db.models import Instance, Patient, Series, Study
from registry.deid.profile import deidentified_bytes, deidentified_bytes_reencoded
from registry.home import Home
from registry.ingest.directory import ingest_directory


def _explicit_le(group: int, element: int, vr: bytes, value: bytes) -> bytes:
    if vr in (b"OB", b"OW", b"UN", b"SQ", b"UT"):
        return struct.pack("<HH2sHI", group, element, vr, 0, len(value)) + value
    return struct.pack("<HH2sH", group, element, vr, len(value)) + value


def _source_folder(root: Path) -> dict[str, list[Path]]:
    """Five small series under root/IT064/, one per kind of source file; {kind: files}."""
    center = root / "IT064"
    kinds: dict[str, list[Path]] = {}
    kinds["plain"] = write_series(center / "plain", "plain", patient_id="IT064-0001", n_slices=4)

    kinds["rle"] = write_series(center / "rle", "rle", patient_id="IT064-0002", n_slices=4, fill=300)
    for path in kinds["rle"]:
        ds = pydicom.dcmread(path)
        ds.compress(RLELossless)
        ds.save_as(path, enforce_file_format=True)

    kinds["no_preamble"] = write_series(center / "nopre", "nopre", patient_id="IT064-0003", n_slices=4)
    for path in kinds["no_preamble"]:
        ds = pydicom.dcmread(path)
        del ds.file_meta
        ds.preamble = None
        dcmwrite(path, ds, implicit_vr=True, little_endian=True, enforce_file_format=False)

    kinds["odd_length"] = write_series(center / "odd", "odd", patient_id="IT064-0004", n_slices=4)
    for path in kinds["odd_length"]:
        ds = pydicom.dcmread(path)
        ds.Manufacturer = "ACME"
        ds.ConvolutionKernel = "H30"
        ds.save_as(path, enforce_file_format=True)
        data = path.read_bytes()
        # pydicom pads "H30" to "H30 ": write it back at its odd length, as some scanners do.
        padded = _explicit_le(0x0018, 0x1210, b"SH", b"H30 ")
        assert data.count(padded) == 1
        path.write_bytes(data.replace(padded, _explicit_le(0x0018, 0x1210, b"SH", b"H30")))

    kinds["trailing"] = write_series(center / "trail", "trail", patient_id="IT064-0005", n_slices=4)
    for path in kinds["trailing"]:
        trailing = (_explicit_le(0x7FE1, 0x0010, b"LO", b"VENDOR X ")
                    + _explicit_le(0x7FE1, 0x1001, b"UN", b"\x01\x02\x03\x04")
                    + _explicit_le(0xFFFC, 0xFFFC, b"OB", b"\0" * 16))
        path.write_bytes(path.read_bytes() + trailing)
    return kinds


def _archive(engine, home: Home) -> tuple[dict[str, tuple[str, str, str, int]], dict[str, str]]:
    """{source sha256: (archive path relative to the archive, series UID, study UID, size)}, {source sha: pseudonym}."""
    rows, pseudonyms = {}, {}
    with session_scope(engine) as s:
        for inst, series, study, patient in s.execute(
            select(Instance, Series, Study, Patient).join(Series, Instance.series_id == Series.id)
            .join(Study, Series.study_id == Study.id).join(Patient, Study.patient_id == Patient.id)
        ):
            rel = str(Path(inst.file_path).relative_to(home.archive_dir))
            rows[inst.sha256] = (rel, series.series_instance_uid, study.study_instance_uid, inst.file_size)
            pseudonyms[inst.sha256] = patient.pseudo_id
    return rows, pseudonyms


def test_parallel_archive_copies_are_the_reference_bytes_and_rows(
        home: Home, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kinds = _source_folder(tmp_path / "in")
    sources = {hashlib.sha256(p.read_bytes()).hexdigest(): p for files in kinds.values() for p in files}
    # The folder is small: let the process pools (readers, writers) start anyway, so that the processes make
    # every copy.
    pools = []
    real_pool = ingest_reading.ProcessPoolExecutor

    def counted_pool(*args, **kwargs):
        pools.append(kwargs.get("max_workers"))
        return real_pool(*args, **kwargs)
    for module in (ingest_reading, ingest_module):
        monkeypatch.setattr(module, "ARCHIVE_PARALLEL_MIN_FILES", 1)
        monkeypatch.setattr(module, "ProcessPoolExecutor", counted_pool)

    engine = make_engine(home.db_url)
    report = ingest_directory(engine, home, tmp_path / "in", workers=2)
    assert report.rejected == [] and report.new_instances == 20
    assert pools == [2], "the archive copies were not made by worker processes"
    rows, pseudonyms = _archive(engine, home)
    assert set(rows) == set(sources)
    key = home.secret()
    for sha, source in sources.items():
        copy = (home.archive_dir / rows[sha][0]).read_bytes()
        assert copy == deidentified_bytes_reencoded(source.read_bytes(), key, pseudonyms[sha]), source.name
        ds = pydicom.dcmread(home.archive_dir / rows[sha][0])
        assert ds.PixelData == pydicom.dcmread(source, force=True).PixelData, source.name
        assert 0x7FE11001 not in ds and 0xFFFCFFFC not in ds and 0x7FE10010 not in ds
    assert all(str(pydicom.dcmread(p).file_meta.TransferSyntaxUID) == RLELossless for p in
               (home.archive_dir / rows[hashlib.sha256(f.read_bytes()).hexdigest()][0] for f in kinds["rle"]))

    # The same sources under the same key, copies made in this process: the same rows, the same bytes.
    other = Home.resolve(tmp_path / "other")
    other.root.mkdir(parents=True)
    shutil.copyfile(home.secret_path, other.secret_path)
    other.ensure()
    upgrade(other.db_url)
    other_engine = make_engine(other.db_url)
    assert ingest_directory(other_engine, other, tmp_path / "in", workers=1).new_instances == 20
    assert pools == [2], "a one-process ingest started worker processes"
    other_rows, other_pseudonyms = _archive(other_engine, other)
    assert other_rows == rows and other_pseudonyms == pseudonyms
    for rel, *_ in rows.values():
        assert (other.archive_dir / rel).read_bytes() == (home.archive_dir / rel).read_bytes()
    engine.dispose()
    other_engine.dispose()


def test_remembered_encodings_write_the_reference_bytes(tmp_path: Path) -> None:
    kinds = _source_folder(tmp_path / "in")
    big_endian = write_series(tmp_path / "be", "be", patient_id="IT064-0006", n_slices=3)
    for path in big_endian:
        ds = pydicom.dcmread(path)
        ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRBigEndian
        ds.SpecificCharacterSet = "ISO_IR 100"
        ds.SeriesDescription = "AXIAL HEAD Müller"
        dcmwrite(path, ds, implicit_vr=False, little_endian=False, enforce_file_format=True)
    sources = [p for files in kinds.values() for p in files] + big_endian
    sources += plant(tmp_path / "phi") + plant_forged(tmp_path / "forged")
    key = b"k" * 32
    # Twice over, in two orders: the second pass writes from remembered encodings only.
    for path in sources + sources[::-1]:
        data = path.read_bytes()
        assert deidentified_bytes(data, key, "PSEUDO-1") == deidentified_bytes_reencoded(data, key, "PSEUDO-1"), path
        assert deidentified_bytes(data, key, "PSEUDO-2") == deidentified_bytes_reencoded(data, key, "PSEUDO-2"), path
