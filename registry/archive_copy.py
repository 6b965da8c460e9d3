"""One archive copy: a source DICOM file's de-identified bytes written under the archive, and the flush to disk.

`write_archive_copy` is a pure job over paths (picklable in and out) so that ingest can run it in worker
processes. The copy is checked against the source hash taken when the header was read, idempotent (an
identical copy already at the target is kept: de-identification is deterministic under the home key)
and atomic (temporary name `*.tmp<PID>`, then rename: an interrupted ingest leaves nothing half-written
under a final name, and `registry.ingest_runs.remove_archive_debris` removes the temporary files of
processes that are gone).

`fsync_files` flushes a batch of written copies and their folder: ingest calls it once per series,
before that series' registry rows are committed, so that a committed row never names a copy still only
in the page cache.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from registry.deidentify import deidentified_bytes

WRITTEN = "written"  # a new copy was written
KEPT = "kept"  # an identical copy was already there
CHANGED = "changed"  # the source's bytes no longer match the hash taken when its header was read
FAILED = "failed"  # pydicom could index the source but not write its de-identified copy


@dataclass(frozen=True)
class ArchiveJob:
    source: str
    sha256: str  # of the source, when its header was read
    target: str
    key: bytes
    pseudonym: str


@dataclass(frozen=True)
class ArchiveResult:
    outcome: str  # WRITTEN | KEPT | CHANGED | FAILED
    detail: str = ""  # for FAILED: the exception's type (its text may quote header values)


def write_archive_copy(job: ArchiveJob) -> ArchiveResult:
    """Write the de-identified copy of `job.source` at `job.target` (see the module's description)."""
    data = Path(job.source).read_bytes()
    if hashlib.sha256(data).hexdigest() != job.sha256:
        return ArchiveResult(CHANGED)
    try:
        copy = deidentified_bytes(data, job.key, job.pseudonym)
    except Exception as exc:  # noqa: BLE001 - a file pydicom can index but not rewrite is rejected alone
        return ArchiveResult(FAILED, type(exc).__name__)
    target = Path(job.target)
    try:
        if target.stat().st_size == len(copy) and target.read_bytes() == copy:
            return ArchiveResult(KEPT)
    except FileNotFoundError:
        pass
    tmp = target.with_suffix(f".tmp{os.getpid()}")
    tmp.write_bytes(copy)
    os.replace(tmp, target)
    return ArchiveResult(WRITTEN)


def fsync_files(paths: Iterable[str], folder: Path) -> None:
    """Flush `paths` (files already written and closed) and then `folder`, which holds their names, to disk."""
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
