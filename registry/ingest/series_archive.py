"""Where a series' files lie in the data home, and how they get there.

The archive's layout is pseudonymous: `<center>/<pseudonym>/<keyed StudyInstanceUID>/<keyed SeriesInstanceUID>/
<keyed SOPInstanceUID>.dcm`. Archived copies are de-identified on the way in (`registry.deid.profile`: DICOM
PS3.15 Annex E basic profile, full dates retained), every file, whatever its header says of itself. A copy
staged while its file was read (`registry.deid.deidentified_copy`) is moved to its archive name; the others are
written from the source file (`registry.ingest.archive_copy`), idempotently: same bytes at the same place. Files
indexed `--in-place` stay as they are (identifiable where they lie); the data home links to each under the
same layout below `Home.in_place_dir`, and the registry keeps only that link.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from registry.deid.deidentified_header import remembered_mapped_uid
from registry.dicom_headers import InstanceHeader
from registry.ingest.archive_copy import (
    CHANGED,
    FAILED,
    WRITTEN,
    ArchiveJob,
    ArchiveResult,
    StagedCopy,
    place_staged_copy,
    write_archive_copy,
)
from registry.ingest.report import ARCHIVE_FAILED, CHANGED_DURING_INGEST, IngestReport, RejectedItem


def series_folder(key: bytes, center_code: str, pseudonym: str, study_uid: str, series_uid: str) -> Path:
    """Where a series' copies lie below the archive (its links below the in-place folder): pseudonymous."""
    return Path(series_folder_name(key, center_code, pseudonym, study_uid, series_uid))


def series_folder_name(key: bytes, center_code: str, pseudonym: str, study_uid: str, series_uid: str) -> str:
    """`series_folder` as a string (what the reader processes check once a file, without path objects)."""
    study, series = remembered_mapped_uid(key, study_uid), remembered_mapped_uid(key, series_uid)
    return f"{center_code}/{pseudonym}/{study}/{series}"


def instance_name(key: bytes, sop_uid: str) -> str:
    """An instance's file name in its series folder."""
    return f"{remembered_mapped_uid(key, sop_uid)}.dcm"


def copy_into_archive(headers: list[InstanceHeader], series_dir: Path, report: IngestReport, key: bytes,
                      pseudonym: str, writers: ProcessPoolExecutor | None = None,
                      staged: dict[str, StagedCopy] | None = None,
                      ) -> tuple[dict[str, str], list[str], list[str]]:
    """Put each file's de-identified copy at `<series_dir>/<mapped SOPInstanceUID>.dcm`.

    Returns {sop: archived path}, the paths written anew and the paths of staged copies moved there (an
    identical copy already there is kept, in neither list): the caller flushes the written copies and the
    folder to disk (`registry.ingest.archive_copy.fsync_files`) before committing their rows (the staged copies'
    bytes were flushed after reading, `registry.ingest.archive_copy.flush_filesystem`).

    A copy staged while the file was read under this `pseudonym` is moved into place
    (`registry.ingest.archive_copy.place_staged_copy`). The others are made by
    `registry.ingest.archive_copy.write_archive_copy` (source checked against the hash taken when the header
    was read, idempotent, atomic), in the `writers` process pool when given: re-encoding the header is
    pydicom work that holds the GIL, so processes share it out and threads would not.
    """
    series_dir.mkdir(parents=True, exist_ok=True)
    staged = staged or {}
    folder = str(series_dir)
    # A copy staged under this pseudonym carries its name (an HMAC the reader made): not made again here.
    names = [_staged_name(staged, h.path, pseudonym) or instance_name(key, h.sop_instance_uid) for h in headers]
    jobs = [ArchiveJob(h.path, h.sha256, f"{folder}/{name}", key, pseudonym)
            for h, name in zip(headers, names, strict=True)]
    placed = {job.source: place_staged_copy(staged.pop(job.source), job.target) for job in jobs
              if job.source in staged and staged[job.source].pseudonym == pseudonym}
    rest = [job for job in jobs if job.source not in placed]
    written_by_pool = iter(writers.map(write_archive_copy, rest, chunksize=8) if writers is not None and rest
                           else map(write_archive_copy, rest))
    results: list[ArchiveResult] = [placed[job.source] if job.source in placed else next(written_by_pool)
                                    for job in jobs]
    stored: dict[str, str] = {}
    written: list[str] = []
    moved: list[str] = []
    for h, job, result in zip(headers, jobs, results, strict=True):
        if result.outcome == CHANGED:
            report.rejected.append(RejectedItem(h.path, CHANGED_DURING_INGEST,
                                                "file bytes changed between reading and copying; ingest again"))
        elif result.outcome == FAILED:
            report.rejected.append(RejectedItem(h.path, ARCHIVE_FAILED,
                                                f"the de-identified copy cannot be written ({result.detail})"))
        else:
            stored[h.sop_instance_uid] = job.target
            if result.outcome == WRITTEN:
                (moved if job.source in placed else written).append(job.target)
    return stored, written, moved


def _staged_name(staged: dict[str, StagedCopy], path: str, pseudonym: str) -> str:
    copy = staged.get(path)
    return copy.name if copy is not None and copy.pseudonym == pseudonym else ""


def link_in_place(headers: list[InstanceHeader], series_dir: Path, key: bytes) -> dict[str, str]:
    """Link `<series_dir>/<mapped SOPInstanceUID>.dcm` to each original; {sop: link path}.

    The link's name follows the archive's pseudonymous layout, so the registry, which keeps the link,
    holds no folder name of the originals; the link itself (in the data home, beside the key) is the one
    place their path is kept. Idempotent and atomic like the archive copies: a link already pointing
    at the file is kept, another is replaced through a temporary name.
    """
    series_dir.mkdir(parents=True, exist_ok=True)
    stored: dict[str, str] = {}
    for h in headers:
        link = series_dir / instance_name(key, h.sop_instance_uid)
        target = os.path.abspath(h.path)
        if not (link.is_symlink() and os.readlink(link) == target):
            tmp = link.with_suffix(f".tmp{os.getpid()}")
            tmp.unlink(missing_ok=True)
            os.symlink(target, tmp)
            os.replace(tmp, link)
        stored[h.sop_instance_uid] = str(link)
    return stored

