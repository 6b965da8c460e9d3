"""A malformed-DICOM corpus, generated here, ingested on SQLite and PostgreSQL.

For every case: no traceback, a reason naming the file or the tag, everything good in the same run
stored, nothing stored before changed (a coordinator's verdict included).
"""

from __future__ import annotations

import math
import os
import struct
from collections.abc import Callable
from pathlib import Path

import pydicom
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.dataset import Dataset
from pydicom.uid import JPEG2000Lossless, JPEGLSLossless, RLELossless
from registry_dicom_factory import ct_slice, series_uid_of, uid
from sqlalchemy import select

import registry.ingest.directory as ingest_module
import registry.ingest.series_storing as series_storing
from registry.db.engine import make_engine, session_scope
from registry.db.models import IngestRun, Instance, QCDecision, Rejection, Series
from registry.db.store import record_qc_decision
from registry.dicom_headers import RejectedFile, read_instance_header
from registry.home import Home
from registry.ingest.directory import ingest_directory
from registry.ingest.runs import remove_archive_debris, this_host
from registry.qc.header_validation import VR_MAX_LENGTH

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom warns on the deliberately broken files

Mutation = Callable[[Dataset], None]


def write_case(folder: Path, name: str, mutate: Mutation | None = None, *, which: tuple[int, ...] = (3,),
               n_slices: int = 24, compress: str | None = None, matrix: int = 8, patient: str = "IT064-0001",
               first: int = 0) -> list[Path]:
    """A 24-slice head series named `name`; `mutate` edits the slices at `which` before they are written."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(first, first + n_slices):
        ds = ct_slice(patient_id=patient, study_uid=uid(f"study-{name}"), series_uid=series_uid_of(name),
                      sop_uid=uid(f"{name}-{i}"), index=i, z=5.0 * i, rows=matrix, columns=matrix)
        if compress:
            ds.compress(compress)
        if mutate is not None and i in which:
            mutate(ds)
        path = folder / f"{i:03d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def _set(**values: object) -> Mutation:
    def mutate(ds: Dataset) -> None:
        for keyword, value in values.items():
            if value is None:
                delattr(ds, keyword)
            else:
                setattr(ds, keyword, value)
    return mutate


def _raw_value(keyword: str, text: str) -> Mutation:
    """Set an element's raw bytes (values pydicom itself would refuse to write, such as 'nan')."""
    def mutate(ds: Dataset) -> None:
        elem = ds[keyword]
        raw = text.encode()
        ds[keyword] = pydicom.DataElement(elem.tag, elem.VR, raw + (b" " if len(raw) % 2 else b""))
    return mutate


def _corrupt_fragments(ds: Dataset) -> None:
    """Keep the encapsulation intact but replace the compressed stream with noise: undecodable."""
    data = bytearray(ds.PixelData)
    # Basic offset table item (8 bytes + its length), then the first fragment's item header (8 bytes).
    (bot_len,) = struct.unpack("<I", data[4:8])
    start = 8 + bot_len + 8
    (frag_len,) = struct.unpack("<I", data[start - 4 : start])
    data[start : start + frag_len] = bytes((i * 37 + 11) % 251 for i in range(frag_len))
    ds.PixelData = bytes(data)


# name -> (mutation, QC reasons the series must get; None: pending). Every series is otherwise a clean head CT.
QC_CASES: dict[str, tuple[Mutation | None, set[str] | None, dict]] = {
    "spacing-nan": (_raw_value("PixelSpacing", "nan\\nan"), {"invalid_pixel_spacing"}, {}),
    "spacing-inf": (_raw_value("PixelSpacing", "inf\\inf"), {"invalid_pixel_spacing"}, {}),
    "spacing-1e300": (_raw_value("PixelSpacing", "1e300\\1e300"), {"invalid_pixel_spacing"}, {}),
    "spacing-zero": (_set(PixelSpacing=[0, 0]), {"invalid_pixel_spacing"}, {}),
    "spacing-negative": (_set(PixelSpacing=[-0.5, 0.5]), {"invalid_pixel_spacing"}, {}),
    "spacing-missing": (_set(PixelSpacing=None), {"invalid_pixel_spacing"}, {}),
    "thickness-nan": (_raw_value("SliceThickness", "nan"), {"invalid_slice_thickness"}, {}),
    "rows-zero": (_set(Rows=0), {"invalid_matrix"}, {}),
    "matrix-vs-pixeldata": (_set(Rows=16), {"pixel_data_mismatch"}, {}),
    "bits-12": (_set(BitsAllocated=12), {"unsupported_bits_allocated"}, {}),
    "orientation-zero": (_set(ImageOrientationPatient=[0, 0, 0, 0, 0, 0]), {"invalid_orientation"}, {}),
    "position-nan": (_raw_value("ImagePositionPatient", "nan\\0\\15"), {"invalid_position"}, {}),
    "date-impossible": (_set(StudyDate="20241345"), {"implausible_date"}, {}),
    "date-1800": (_set(AcquisitionDateTime="18000101120000"), {"implausible_date"}, {}),
    "j2k-undecodable": (_corrupt_fragments, {"undecodable_pixel_data"}, {"compress": JPEG2000Lossless, "matrix": 32,
                                                                           "which": (0,)}),
    # Compressed series that the installed decoders read: accepted as any other.
    "rle-ok": (None, None, {"compress": RLELossless}),
    "j2k-ok": (None, None, {"compress": JPEG2000Lossless, "matrix": 32}),
    "jpegls-ok": (None, None, {"compress": JPEGLSLossless}),
    # Over-long and NUL-carrying descriptive text: normalized, stored, not failed.
    "long-description": (_set(SeriesDescription="HEAD " * 40, Manufacturer="X" * 90), None,
                         {"which": tuple(range(24))}),
    "nul-in-text": (_set(SeriesDescription="HEAD\x00 5mm", ManufacturerModelName="Phantom\x0064"), None,
                    {"which": tuple(range(24))}),
}


def build_corpus(root: Path, good: Path) -> dict[str, Path]:
    """The malformed files and series under root/IT064/... ; returns the single bad files by expected reason."""
    center = root / "IT064"
    for name, (mutate, _reasons, kwargs) in QC_CASES.items():
        write_case(center / name, name, mutate, **kwargs)

    bad = center / "bad"
    bad.mkdir(parents=True)
    files: dict[str, Path] = {}
    data = good.read_bytes()
    ts = b"1.2.840.10008.1.2.1\0"
    assert ts in data
    files["unknown_transfer_syntax"] = bad / "bogus-ts.dcm"
    files["unknown_transfer_syntax"].write_bytes(data.replace(ts, b"1.2.3.4.5.6.7.8.9.10", 1))
    for size in (132, 300, 600):
        files[f"truncated-{size}"] = bad / f"cut{size}.dcm"
        files[f"truncated-{size}"].write_bytes(data[:size])
    for name, mutate in (("uid-too-long", _set(SOPInstanceUID="1." + "2" * 70)),
                         ("uid-not-a-uid", _set(SeriesInstanceUID="1.2.abc")),
                         ("patient-id-nul", _set(PatientID="IT064\x000099"))):
        ds = pydicom.dcmread(good)
        mutate(ds)
        files[name] = bad / f"{name}.dcm"
        ds.save_as(files[name], enforce_file_format=True)
    # A 40-character center folder: its files are rejected, not a new 40-character center.
    long_center = root / ("C" * 40)
    write_case(long_center / "p", "long-center", n_slices=2)
    files["invalid_center"] = long_center / "p" / "000.dcm"
    # Valid files without the 128-byte preamble (with and without file meta): a whole accepted series.
    for i, path in enumerate(write_case(root / "IT064" / "no-preamble-src", "no-preamble")):
        raw = path.read_bytes()
        (meta_len,) = struct.unpack("<I", raw[140:144])
        target = center / "no-preamble" / path.name
        target.parent.mkdir(exist_ok=True)
        target.write_bytes(raw[132:] if i % 2 else raw[144 + meta_len :])
        path.unlink()
    (root / "IT064" / "no-preamble-src").rmdir()
    return files


def snapshot(engine, series_uid: str) -> tuple:
    with session_scope(engine) as s:
        series = s.scalars(select(Series).where(Series.series_instance_uid == series_uid)).one()
        instances = sorted(s.execute(select(Instance.sop_instance_uid, Instance.sha256, Instance.file_path)
                                     .where(Instance.series_id == series.id)).all())
        decisions = s.scalars(select(QCDecision.status).where(QCDecision.series_id == series.id)
                              .order_by(QCDecision.id)).all()
        return series.qc_status, series.instance_count, instances, decisions


def test_malformed_corpus_each_file_judged_alone(any_home: Home, tmp_path: Path) -> None:
    engine = make_engine(any_home.db_url)
    # Before: one series stored and passed by a coordinator.
    write_case(tmp_path / "first" / "IT064" / "kept", "kept")
    ingest_directory(engine, any_home, tmp_path / "first")
    with session_scope(engine) as s:
        record_qc_decision(s, series_uid_of("kept"), "passed", None, "dr.coordinator")
    before = snapshot(engine, series_uid_of("kept"))

    corpus = tmp_path / "corpus"
    good = write_case(corpus / "IT064" / "good", "good")
    files = build_corpus(corpus, good[0])
    # Three stray broken files of the passed series (NaN spacing, 12-bit, zero orientation).
    for k, mutate in enumerate((_raw_value("PixelSpacing", "nan\\nan"), _set(BitsAllocated=12),
                                _set(ImageOrientationPatient=[0] * 6))):
        write_case(corpus / "IT064" / "kept-stray" / str(k), "kept", mutate, n_slices=1, first=30 + k, which=(30 + k,))

    report = ingest_directory(engine, any_home, corpus)

    rejected = {Path(r.path): r for r in report.rejected}
    for key, path in files.items():
        reason = key.split("-")[0] if key.startswith("truncated") else key
        expected = {"uid-too-long": "invalid_value", "uid-not-a-uid": "invalid_value",
                    "patient-id-nul": "invalid_value"}.get(key, reason)
        assert path in rejected, key
        assert rejected[path].reason == expected, (key, rejected[path])
    assert "(0002,0010)" in rejected[files["unknown_transfer_syntax"]].detail
    assert "SOPInstanceUID (0008,0018)" in rejected[files["uid-too-long"]].detail
    assert "PatientID (0010,0020)" in rejected[files["patient-id-nul"]].detail
    assert "truncated" in rejected[files["truncated-132"]].detail
    strays = [r for r in report.rejected if r.reason == "defective_instance"]
    assert len(strays) == 3 and all("passed" in r.detail for r in strays)

    with session_scope(engine) as s:
        stored = {row.series_instance_uid: row for row in s.scalars(select(Series))}
        for name, (_mutate, reasons, _kwargs) in QC_CASES.items():
            series = stored[series_uid_of(name)]
            if reasons is None:
                assert series.qc_status == "pending", (name, series.qc_reasons)
            else:
                assert series.qc_status == "auto_failed", (name, series.qc_reasons)
                assert reasons <= set(series.qc_reasons), (name, series.qc_reasons)
        for name in ("good", "no-preamble"):
            assert stored[series_uid_of(name)].qc_status == "pending"
            assert stored[series_uid_of(name)].instance_count == 24
        long_text = stored[series_uid_of("long-description")]
        assert len(long_text.description) <= VR_MAX_LENGTH["LO"] and long_text.manufacturer == "X" * 64
        assert "\x00" not in stored[series_uid_of("nul-in-text")].manufacturer_model
        assert series_uid_of("long-center") not in stored
        run = s.get(IngestRun, report.run_id)
        assert run.status == "done" and run.counts["normalized"] >= 3
        assert s.scalars(select(Rejection.reason).where(Rejection.ingest_run_id == run.id)).all()
    # Nothing stored before changed: the passed series kept its verdict, instances and decisions.
    assert snapshot(engine, series_uid_of("kept")) == before
    engine.dispose()


def test_ingest_cli_reports_without_traceback(home: Home, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from ctstudy.cli import app

    corpus = tmp_path / "corpus"
    good = write_case(corpus / "IT064" / "good", "good")
    build_corpus(corpus, good[0])
    result = CliRunner().invoke(app, ["--home", str(home.root), "registry", "ingest", str(corpus)])
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output and "force=True" not in result.output
    assert "unknown_transfer_syntax" in result.output and "invalid_center" in result.output
    # Folder and file names are not shown unless asked.
    assert "bogus-ts" not in result.output and "IT064/file-" in result.output
    shown = CliRunner().invoke(app, ["--home", str(home.root), "registry", "ingest", str(corpus), "--show-paths"])
    assert "bogus-ts.dcm" in shown.output


def test_a_series_that_cannot_be_stored_is_rejected_and_the_run_goes_on(home: Home, tmp_path: Path,
                                                                         monkeypatch) -> None:
    write_case(tmp_path / "in" / "IT064" / "a", "a")
    write_case(tmp_path / "in" / "IT064" / "b", "b", patient="IT064-0002")
    original = series_storing.summarize_series

    def fail_for_b(instances, *args, **kwargs):
        if instances[0].series_instance_uid == series_uid_of("b"):
            raise RuntimeError("database refused a value")
        return original(instances, *args, **kwargs)

    monkeypatch.setattr(series_storing, "summarize_series", fail_for_b)
    engine = make_engine(home.db_url)
    report = ingest_directory(engine, home, tmp_path / "in")
    assert report.series_new == 1 and report.rejected_by_reason == {"store_failed": 24}
    assert "RuntimeError" in report.rejected[0].detail
    engine.dispose()


def test_unreadable_folder_is_reported(home: Home, tmp_path: Path, monkeypatch) -> None:
    write_case(tmp_path / "in" / "IT064" / "a", "a")
    locked = tmp_path / "in" / "IT064" / "locked"
    locked.mkdir()
    real_scandir = os.scandir

    def scandir(path="."):  # root ignores permissions: simulate the folder a coordinator cannot read
        if not isinstance(path, int) and Path(path) == locked:  # (an int: a folder opened by rmtree)
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    engine = make_engine(home.db_url)
    report = ingest_directory(engine, home, tmp_path / "in")
    assert report.series_new == 1
    assert [(r.reason, r.path) for r in report.rejected] == [("unreadable_folder", str(locked))]
    engine.dispose()


def test_killed_runs_are_marked_interrupted_and_debris_removed(home: Home, tmp_path: Path) -> None:
    engine = make_engine(home.db_url)
    dead_pid = 2**22 + 12345  # above the default pid_max: no such process
    with session_scope(engine) as s:
        s.add(IngestRun(kind="dicom", source="x", actor="t", counts={}, status="running", pid=dead_pid,
                        host=this_host()))
        s.add(IngestRun(kind="dicom", source="y", actor="t", counts={}, status="running", pid=os.getpid(),
                        host=this_host()))
    debris = home.archive_dir / "IT064" / "p" / f"1.2.3.dcm.tmp{dead_pid}"
    live = home.archive_dir / "IT064" / "p" / f"1.2.4.dcm.tmp{os.getpid()}"
    debris.parent.mkdir(parents=True)
    debris.write_bytes(b"half")
    live.write_bytes(b"being written")
    # Copies a killed ingest staged while reading, and those of a live one.
    dead_staging = home.staging_dir / f"{dead_pid}-abc"
    live_staging = home.staging_dir / f"{os.getpid()}-def"
    for folder in (dead_staging, live_staging):
        folder.mkdir(parents=True)
        (folder / "0.dcm").write_bytes(b"staged")
    write_case(tmp_path / "in" / "IT064" / "a", "a")
    report = ingest_directory(engine, home, tmp_path / "in")
    assert report.debris_removed == 1 and not debris.exists() and live.exists()
    assert not dead_staging.exists() and (live_staging / "0.dcm").exists()
    assert sorted(home.staging_dir.iterdir()) == [live_staging]  # this run's own staging folder is gone too
    with session_scope(engine) as s:
        statuses = s.scalars(select(IngestRun.status).order_by(IngestRun.id)).all()
    assert statuses == ["interrupted", "running", "done"] and report.interrupted_runs == [1]
    assert remove_archive_debris(home.archive_dir) == []
    engine.dispose()


def test_the_archive_is_searched_for_debris_only_after_a_killed_run(
        home: Home, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    searched: list[Path] = []
    monkeypatch.setattr(ingest_module, "remove_archive_debris", lambda folder: searched.append(folder) or [])
    engine = make_engine(home.db_url)
    write_case(tmp_path / "in" / "IT064" / "a", "a")
    for _ in range(2):  # a first run, and one after a run that ended
        assert ingest_directory(engine, home, tmp_path / "in").interrupted_runs == []
    assert searched == []
    with session_scope(engine) as s:
        s.add(IngestRun(kind="dicom", source="x", actor="t", counts={}, status="running", pid=2**22 + 12345,
                        host=this_host()))
    assert ingest_directory(engine, home, tmp_path / "in").interrupted_runs != []
    assert searched == [home.archive_dir, home.in_place_dir]
    engine.dispose()


def test_reader_processes_die_with_their_parent(tmp_path: Path) -> None:
    """A reader started with the pool initializer is killed by the kernel when its parent is killed."""
    import signal
    import subprocess
    import sys
    import time

    script = tmp_path / "parent.py"
    pidfile = tmp_path / "child.pid"
    script.write_text(
        "import os, sys, time\n"
        "from concurrent.futures import ProcessPoolExecutor\n"
        "from registry.ingest.runs import die_with_parent\n"
        "def child(p):\n"
        "    open(p, 'w').write(str(os.getpid())); time.sleep(60)\n"
        "if __name__ == '__main__':\n"
        "    with ProcessPoolExecutor(1, initializer=die_with_parent) as pool:\n"
        f"        pool.submit(child, {str(pidfile)!r}); time.sleep(60)\n"
    )
    parent = subprocess.Popen([sys.executable, str(script)], env={**os.environ, "PYTHONPATH": os.getcwd()})
    try:
        for _ in range(200):
            if pidfile.exists() and pidfile.read_text():
                break
            time.sleep(0.05)
        child = int(pidfile.read_text())
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        for _ in range(100):
            try:
                os.kill(child, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        else:
            os.kill(child, signal.SIGKILL)
            pytest.fail("the reader outlived its killed parent")
    finally:
        if parent.poll() is None:
            parent.kill()


# --- Property: whatever text and numbers a header holds, reading it never raises anything but a
# rejection, and what it returns fits the registry's columns on every database.

_text = st.text(alphabet=st.characters(codec="latin-1"), max_size=120)
_number = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0.0, -1.0, 1e300, 0.5]))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(description=_text, manufacturer=_text, patient_id=_text, spacing=_number, thickness=_number,
       position=_number, sop_suffix=st.text(alphabet="0123456789.a", min_size=1, max_size=80))
def test_header_values_are_rejected_or_fit_their_vr(tmp_path: Path, description: str, manufacturer: str,
                                                   patient_id: str, spacing: float, thickness: float, position: float,
                                                   sop_suffix: str) -> None:
    ds = ct_slice(patient_id="IT064-1", study_uid=uid("p-study"), series_uid=uid("p-series"), sop_uid=uid("p"),
                  index=0, z=0.0)
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SeriesDescription, ds.Manufacturer, ds.PatientID = description, manufacturer, patient_id
    for keyword, value in (("PixelSpacing", f"{spacing!r}\\{spacing!r}"), ("SliceThickness", repr(thickness)),
                           ("ImagePositionPatient", f"0\\0\\{position!r}")):
        _raw_value(keyword, value)(ds)
    ds.SOPInstanceUID = "1.2." + sop_suffix
    path = tmp_path / "p.dcm"
    ds.save_as(path, enforce_file_format=False)
    try:
        header = read_instance_header(path)
    except RejectedFile as exc:
        assert exc.reason and exc.detail and exc.path == str(path)
        return
    for value, limit in ((header.series_description, 64), (header.manufacturer, 64), (header.patient_id, 64),
                         (header.sop_instance_uid, 64)):
        assert value is None or (len(value) <= limit and "\x00" not in value)
    for value in (*(header.pixel_spacing or ()), header.slice_thickness or 0.0, *(header.image_position or ())):
        assert math.isfinite(value)
    if header.pixel_spacing is None:
        assert "invalid_pixel_spacing" in header.defects
