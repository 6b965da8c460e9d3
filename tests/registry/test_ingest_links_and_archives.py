"""Ingest of what coordinators' folders hold besides plain DICOM files: symbolic links, zip archives, packed files.

A link in a loop is one rejected file; a link to a file elsewhere is stored under the name it was reached
by, never its target's folder; a zip archive's members are ingested like files, each named in rejections by
its position in the archive; a gzip or 7-Zip file is rejected with what to do.
"""

from __future__ import annotations

import gzip
import os
import zipfile
from pathlib import Path

from registry_dicom_factory import series_uid_of, write_non_dicom, write_series
from sqlalchemy import select

from registry.db.engine import make_engine, session_scope
from registry.db.models import INGEST_DONE, IngestRun, Instance, Rejection, Series
from registry.home import Home
from registry.ingest.directory import ingest_directory


def rejections(engine) -> list[tuple[str, str, str]]:
    with session_scope(engine) as s:
        return [(r.path, r.reason, r.detail) for r in s.scalars(select(Rejection).order_by(Rejection.id))]


def test_symlink_loop_is_one_rejected_file_and_the_run_completes(home: Home, tmp_path: Path) -> None:
    folder = tmp_path / "in" / "IT064" / "Rossi_Mario"
    write_series(folder, "beside-loop", n_slices=3)
    os.symlink(folder / "b.dcm", folder / "a.dcm")
    os.symlink(folder / "a.dcm", folder / "b.dcm")
    engine = make_engine(home.db_url)
    report = ingest_directory(engine, home, tmp_path / "in")
    assert report.rejected_by_reason == {"symlink_loop": 2} and report.new_instances == 3
    with session_scope(engine) as s:
        run = s.scalars(select(IngestRun)).one()
        assert run.status == INGEST_DONE and run.counts["rejected_by_reason"] == {"symlink_loop": 2}
    stored = rejections(engine)
    assert [reason for _, reason, _ in stored] == ["symlink_loop", "symlink_loop"]
    assert all(path.startswith("IT064/file-") and "Rossi" not in path for path, _, _ in stored)
    engine.dispose()


def test_link_to_a_file_elsewhere_is_named_where_it_lies(home: Home, tmp_path: Path) -> None:
    target = write_non_dicom(tmp_path / "elsewhere" / "ROSSI" / "notes.dcm")
    (tmp_path / "in" / "IT064" / "p").mkdir(parents=True)
    os.symlink(target, tmp_path / "in" / "IT064" / "p" / "scan.dcm")
    engine = make_engine(home.db_url)
    ingest_directory(engine, home, tmp_path / "in")
    [(path, reason, _)] = rejections(engine)
    assert reason == "not_dicom" and path.startswith("IT064/file-") and "ROSSI" not in path
    engine.dispose()


def test_zip_members_are_ingested_and_named_by_position(home: Home, tmp_path: Path) -> None:
    slices = write_series(tmp_path / "export" / "Rossi_Mario" / "CT", "zipped", n_slices=4)
    write_non_dicom(tmp_path / "export" / "Rossi_Mario" / "report_Rossi.txt")
    archive = tmp_path / "in" / "IT064" / "cd_Rossi.zip"
    archive.parent.mkdir(parents=True)
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in slices:
            zf.write(path, f"Rossi_Mario/CT/{path.name}")
        zf.write(tmp_path / "export" / "Rossi_Mario" / "report_Rossi.txt", "Rossi_Mario/report_Rossi.txt")
        zf.writestr("DICOMDIR", b"index")
        zf.writestr("__MACOSX/._x", b"resource fork")
    engine = make_engine(home.db_url)
    report = ingest_directory(engine, home, tmp_path / "in")
    assert report.new_instances == 4 and report.series_new == 1
    assert report.rejected_by_reason == {"dicomdir": 1, "not_dicom": 1}
    by_reason = {r.reason: r for r in report.rejected}
    # The operator sees the zip's path and the member's position, never the member's name.
    assert by_reason["not_dicom"].path == str(archive) and by_reason["not_dicom"].detail.startswith("zip member 5:")
    assert by_reason["dicomdir"].detail.startswith("zip member 6:")
    with session_scope(engine) as s:
        series = s.scalars(select(Series).where(Series.series_instance_uid == series_uid_of("zipped"))).one()
        files = [Path(p) for p in s.scalars(select(Instance.file_path).where(Instance.series_id == series.id))]
    assert all(p.is_relative_to(home.archive_dir) and p.is_file() for p in files)
    stored = rejections(engine)
    assert all(path.startswith("IT064/file-") and "Rossi" not in path + detail for path, _, detail in stored)
    assert not any(home.unpack_dir.iterdir())  # the unpacked members are gone
    # Ingested again, the zip's members are found already present.
    again = ingest_directory(engine, home, tmp_path / "in")
    assert (again.new_instances, again.already_present) == (0, 4)
    engine.dispose()


def test_zip_in_place_and_packed_files_say_to_unpack_first(home: Home, tmp_path: Path) -> None:
    slices = write_series(tmp_path / "export", "packed", n_slices=1)
    (tmp_path / "in" / "IT064").mkdir(parents=True)
    with zipfile.ZipFile(tmp_path / "in" / "IT064" / "cd.zip", "w") as zf:
        zf.write(slices[0], "a.dcm")
    (tmp_path / "in" / "IT064" / "slice.dcm.gz").write_bytes(gzip.compress(slices[0].read_bytes()))
    engine = make_engine(home.db_url)
    report = ingest_directory(engine, home, tmp_path / "in", in_place=True)
    assert report.new_instances == 0
    assert report.rejected_by_reason == {"compressed_file": 1, "zip_archive": 1}
    details = {r.reason: r.detail for r in report.rejected}
    assert "unpack it first" in details["compressed_file"] and "gzip" in details["compressed_file"]
    assert "unzip it and ingest the folder" in details["zip_archive"]
    engine.dispose()


def test_damaged_zip_is_rejected_with_what_to_do(home: Home, tmp_path: Path) -> None:
    slices = write_series(tmp_path / "export", "damaged", n_slices=2)
    archive = tmp_path / "in" / "IT064" / "cd.zip"
    archive.parent.mkdir(parents=True)
    with zipfile.ZipFile(archive, "w") as zf:
        for path in slices:
            zf.write(path, path.name)
    archive.write_bytes(archive.read_bytes()[:-30])  # the central directory's end cut off
    engine = make_engine(home.db_url)
    report = ingest_directory(engine, home, tmp_path / "in")
    [rejected] = report.rejected
    assert rejected.reason == "zip_archive" and "damaged zip archive" in rejected.detail
    engine.dispose()
