"""How ingest writes and flushes the de-identified copies it stages while reading.

A staged copy is written as two parts, the de-identified header and a view of the source's Pixel Data bytes
(`registry.ingest.archive_copy._write_new_file`, one `os.writev`): the file holds exactly their concatenation, also
when the system writes only part of it at once. The staged copies are flushed to disk while reading goes on
(`registry.ingest.reading.FLUSH_WHILE_READING_COPIES`), besides the one flush after reading that every commit awaits.
"""

from __future__ import annotations

import os
from pathlib import Path

from registry_dicom_factory import write_series
from sqlalchemy import func, select

import registry.ingest.archive_copy as archive_copy
import registry.ingest.directory as ingest_module
import registry.ingest.reading as ingest_reading
from registry.db.engine import make_engine, session_scope, upgrade
from registry.db.models import Instance
from registry.deid.deidentified_copy import deidentified_copy, deidentified_copy_parts
from registry.dicom_headers import parse_instance
from registry.home import Home
from registry.ingest.directory import ingest_directory

KEY = b"k" * 32


def test_a_staged_copy_is_the_header_then_the_pixel_bytes(tmp_path: Path) -> None:
    source = write_series(tmp_path / "in", "s", n_slices=1)[0]
    parsed = parse_instance(source)
    header, pixels = deidentified_copy_parts(parsed, KEY, "PSEUDO")
    assert isinstance(pixels, memoryview) and len(pixels) > 0  # the pixel bytes are not copied into a new buffer
    target = tmp_path / "copy.dcm"
    archive_copy._write_new_file(str(target), (header, pixels))
    assert target.read_bytes() == header + bytes(pixels) == deidentified_copy(parsed, KEY, "PSEUDO")


def test_a_short_write_is_completed(tmp_path: Path, monkeypatch) -> None:
    parts = (b"header-bytes", memoryview(b"pixel-bytes" * 1000))
    real_writev = os.writev

    def short_writev(fd: int, buffers: list) -> int:  # the system writes only the first 5 bytes
        return real_writev(fd, [bytes(buffers[0][:5])])

    monkeypatch.setattr(archive_copy.os, "writev", short_writev)
    target = tmp_path / "copy.dcm"
    archive_copy._write_new_file(str(target), parts)
    assert target.read_bytes() == parts[0] + bytes(parts[1])


def test_staged_copies_are_flushed_while_reading_goes_on(tmp_path: Path, monkeypatch) -> None:
    """40 files, a flush every 8 staged copies while reading: flushes before the one after reading; the
    copies and rows are those of any ingest."""
    for n in range(2):
        write_series(tmp_path / "in" / "IT064" / f"s{n}", f"s{n}", patient_id=f"IT064-000{n}", n_slices=20)
    home = Home.resolve(tmp_path / "home")
    home.ensure()
    upgrade(home.db_url)
    engine = make_engine(home.db_url)

    flushes: list[str] = []
    real_flush = ingest_reading.flush_filesystem

    def recording_flush(folder) -> None:
        flushes.append(str(folder))
        real_flush(folder)

    monkeypatch.setattr(ingest_reading, "FLUSH_WHILE_READING_COPIES", 8)
    # Flushes while reading (`ingest_reading`) and the one after reading (the storer, `ingest`).
    for module in (ingest_reading, ingest_module):
        monkeypatch.setattr(module, "flush_filesystem", recording_flush)
    # One reader (this process): the files are read one after the other while the flusher thread works.
    report = ingest_directory(engine, home, tmp_path / "in", workers=1)

    assert report.new_instances == 40 and report.rejected == []
    # The first one was issued after 8 staged copies (the next ones once the one before is done), then
    # the one after reading: without flushes while reading there would be that one alone.
    assert len(flushes) >= 2
    with session_scope(engine) as s:
        paths = s.scalars(select(Instance.file_path)).all()
        assert s.scalar(select(func.count()).select_from(Instance)) == 40
    assert all(Path(p).is_file() and str(home.archive_dir) in p for p in paths)
