"""One archive copy: a source DICOM file's de-identified bytes written under the archive, and the flush to disk.

Ingest makes most copies while it reads the files (`stage_archive_copy`: from the bytes it read and the
header it parsed, `registry.deid.deidentified_copy`), into a staging folder; once the file's series is stored,
`place_staged_copy` moves the copy to its archive name. The copy was made from the very bytes that were
hashed, so it needs no second read of the source.

`write_archive_copy`, the copy made from the source file alone, serves the files without a staged copy
(read on a cluster, or a patient pseudonym other than the one staged with). It is a pure job over paths
(picklable in and out) so that ingest can run it in worker processes. The copy is checked against the
source hash taken when the header was read. Both ways are idempotent (an identical copy already at the
target is kept: de-identification is deterministic under the home key) and atomic (a rename to the final
name, from the staging folder or from a temporary name `*.tmp<PID>`: an interrupted ingest leaves nothing
half-written under a final name; `registry.ingest.runs.remove_archive_debris` removes the temporary files
of processes that are gone, and ingest their staging folders).

`flush_filesystem` makes every staged copy durable at once, after reading and before any series is
stored (one journal commit instead of one per file: an fsync costs milliseconds, a copy's work less);
ingest also calls it while reading goes on, so that the one after reading finds little left to write.
`fsync_files` flushes a batch of copies written one by one and their folder (which also holds the names of
the staged copies moved there): ingest calls it once per series, before that series' registry rows are
committed, so that a committed row never names a copy still only in the page cache.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import hashlib
import os
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from registry.deid.deidentified_copy import deidentified_copy_parts
from registry.deid.profile import deidentified_bytes
from registry.dicom_headers import ParsedInstance

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


@dataclass(frozen=True)
class StagedCopy:
    path: str  # the de-identified copy, in the staging folder
    pseudonym: str  # the patient pseudonym written into it
    name: str = ""  # its file name in its series folder, when the reader that made it named it


def stage_archive_copy(parsed: ParsedInstance, key: bytes, pseudonym: str, path: str, name: str = ""
                       ) -> StagedCopy | None:
    """Write the de-identified copy of the file `parsed` was read from at `path`; None when it cannot be made
    (the file is then copied by `write_archive_copy`, which rejects it with the reason if it fails again).
    `name`: the copy's file name in its series folder, kept with it."""
    try:
        parts = deidentified_copy_parts(parsed, key, pseudonym)
    except Exception:  # noqa: BLE001 - the verdict on such a file is `write_archive_copy`'s
        return None
    try:
        _write_new_file(path, parts)
    except OSError:
        return None
    return StagedCopy(path, pseudonym, name)


def _write_new_file(path: str, parts: tuple[bytes | memoryview, ...]) -> None:
    """Write `parts` one after the other into a file made at `path` (a staging name: none is there before).
    `os.writev` writes the header and the source's Pixel Data from where they lie, with no joined copy."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)  # as `Path.write_bytes`: the umask decides
    try:
        total = sum(len(part) for part in parts)
        done = os.writev(fd, parts)
        if done < total:  # a short write (a signal, a full disk): the rest one by one
            rest = b"".join(parts)[done:]
            while rest:
                rest = rest[os.write(fd, rest):]
    finally:
        os.close(fd)


def place_staged_copy(staged: StagedCopy, target: str) -> ArchiveResult:
    """Move a staged copy to its archive name `target` (atomically: a rename); an identical copy already
    there is kept and the staged one removed."""
    # Plain strings and `os` calls: ingest moves every copy here, path objects would cost more than the move.
    source, destination = staged.path, target
    try:
        if os.stat(destination).st_size == os.stat(source).st_size and _same_bytes(destination, source):
            os.unlink(source)
            return ArchiveResult(KEPT)
    except FileNotFoundError:
        pass
    try:
        os.replace(source, destination)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        # The staging folder lies on another disk than the archive (a linked archive folder).
        tmp = Path(destination).with_suffix(f".tmp{os.getpid()}")
        shutil.copyfile(source, tmp)
        os.replace(tmp, destination)
        os.unlink(source)
    return ArchiveResult(WRITTEN)


def _same_bytes(a: str, b: str) -> bool:
    return Path(a).read_bytes() == Path(b).read_bytes()


def flush_filesystem(folder: str | Path) -> None:
    """Write everything cached for the filesystem holding `folder` to disk and wait for it (Linux `syncfs`;
    `sync` of every filesystem elsewhere). Called through ctypes: Python's `os` has `sync` but not `syncfs`."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        if _libc_syncfs is None or _libc_syncfs(fd) != 0:
            os.sync()
    finally:
        os.close(fd)


def _find_syncfs() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name, use_errno=True).syncfs if name else None
    except (OSError, AttributeError):
        return None


_libc_syncfs = _find_syncfs()


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
