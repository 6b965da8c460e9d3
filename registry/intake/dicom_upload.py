"""A dashboard upload of DICOM (several files, or zips of a CD export) -> one spool batch -> the one ingest.

Names inside an upload are not kept: each file is spooled as `upload-NNNNNN.dcm`, and the uploader sees
their own file names beside the verdicts on the page, never stored (names may identify patients). A zip
is read member by member against the size limit (counted on the bytes actually read, so a zip that
lies about its sizes is stopped too); folders, hidden files and macOS resource forks are skipped.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine

from registry.dicom.spool import Batch, file_count, ingest_batch, new_batch, seal, write_durably
from registry.home import Home

CHUNK = 1 << 20


class UploadTooLarge(ValueError):
    pass


@dataclass
class FileVerdict:
    name: str  # as uploaded (zip member path for zips)
    verdict: str  # "stored" | a rejection reason code
    detail: str = ""


@dataclass
class UploadResult:
    run_id: int | None
    files: list[FileVerdict] = field(default_factory=list)
    new_instances: int = 0
    already_present: int = 0
    series_new: int = 0


def spool_upload(home: Home, center: str, uploads: Iterable[tuple[str, bytes]], *, limit_bytes: int,
                 source: str = "upload") -> tuple[Batch, dict[str, str]]:
    """Write every DICOM file of `uploads` ((name, bytes); zips unpacked) into a new spool batch.

    Returns the batch (still incoming) and {spool file name: uploaded name}. UploadTooLarge when the
    unpacked total passes `limit_bytes`; the half-written batch is removed then.
    """
    batch = new_batch(home, center, source)
    names: dict[str, str] = {}
    total = 0

    def add(name: str, data: bytes) -> None:
        nonlocal total
        total += len(data)
        if total > limit_bytes:
            raise UploadTooLarge(f"the upload holds more than {limit_bytes // (1 << 20)} MB (unpacked): split it, "
                                 "or raise CTSTUDY_UPLOAD_MAX_MB")
        spooled = f"upload-{len(names) + 1:06d}.dcm"
        write_durably(batch.path, spooled, data)
        names[spooled] = name

    try:
        for name, data in uploads:
            if zipfile.is_zipfile(io.BytesIO(data)):
                for member, content in _zip_members(name, data, limit_bytes - total):
                    add(member, content)
            else:
                add(name, data)
    except BaseException:
        _remove(batch)
        raise
    return batch, names


def ingest_upload(engine: Engine, home: Home, batch: Batch, names: dict[str, str], *, actor: str,
                  progress: Callable[[str, int, int], None] | None = None) -> UploadResult:
    """Seal and ingest a spooled upload; each uploaded file's verdict (stored, or why not)."""
    if not file_count(batch):
        _remove(batch)
        return UploadResult(run_id=None)
    report = ingest_batch(engine, home, seal(home, batch), actor=actor, progress=progress)
    refused = {Path(item.path).name: item for item in [*report.rejected, *report.conflicts]}
    files = []
    for spooled, name in sorted(names.items()):
        item = refused.get(spooled)
        files.append(FileVerdict(name, "stored") if item is None else FileVerdict(name, item.reason, item.detail))
    return UploadResult(report.run_id, files, report.new_instances, report.already_present, report.series_new)


def _zip_members(zip_name: str, data: bytes, budget: int) -> Iterable[tuple[str, bytes]]:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise ValueError(f"{zip_name}: not a readable zip ({exc}); export it again") from None
    with archive:
        for info in archive.infolist():
            parts = Path(info.filename).parts
            if info.is_dir() or not parts or any(p.startswith(".") or p == "__MACOSX" for p in parts):
                continue
            chunks, size = [], 0
            try:
                with archive.open(info) as fh:
                    while chunk := fh.read(CHUNK):
                        size += len(chunk)
                        if size > budget:
                            raise UploadTooLarge(
                                f"{zip_name}: unpacked it holds more than the upload limit of "
                                f"{budget // (1 << 20)} MB left: split it, or raise CTSTUDY_UPLOAD_MAX_MB")
                        chunks.append(chunk)
            except (zipfile.BadZipFile, RuntimeError, NotImplementedError, EOFError) as exc:
                raise ValueError(f"{zip_name}: member {info.filename} cannot be unpacked ({exc}); "
                                 "make the zip without encryption and upload it again") from None
            budget -= size
            yield f"{zip_name}/{info.filename}", b"".join(chunks)


def _remove(batch: Batch) -> None:
    import shutil

    shutil.rmtree(batch.path, ignore_errors=True)
