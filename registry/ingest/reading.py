"""Reading an ingest's files: every header read and hashed (`registry.dicom_headers`), in reader processes
when there are enough files to pay for them (or on the Dask workers of a distributed executor), grouped by
(center, SeriesInstanceUID); a file that cannot be read is rejected with its reason, never stopping the run.

Each file is read once: its de-identified copy is made from the bytes and header that reading took
(`registry.deid.deidentified_copy`) and staged beside the archive, to be moved to its archive name when its series
is stored; the staged copies' filesystem is flushed while reading goes on. A series never spans two centers,
so the series of a center whose files have all been read are handed to the store while the next centers'
files are read (`registry.ingest.centers_read`), in the order of storing everything after reading.
"""

from __future__ import annotations

import errno
import functools
import os
import tempfile
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeVar

from registry.deid.pseudonym import pseudo_id
from registry.dicom_headers import (
    UNREADABLE,
    ZIP_ARCHIVE,
    InstanceHeader,
    RejectedFile,
    parse_instance,
    read_instance_header,
    values_unchecked_by_pydicom,
)
from registry.ingest.archive_copy import StagedCopy, flush_filesystem, stage_archive_copy
from registry.ingest.centers_read import CentersRead
from registry.ingest.report import DICOMDIR, INVALID_CENTER, NO_CENTER, SYMLINK_LOOP, IngestReport, RejectedItem
from registry.ingest.runs import die_with_parent
from registry.ingest.series_archive import instance_name, series_folder_name
from registry.qc.header_validation import valid_center_code

if TYPE_CHECKING:
    from cluster.executor import Executor

PARALLEL_MIN_FILES = 500  # files from which headers alone are read by processes
# Files from which reading that also stages their copies goes to processes, as does writing the copies not
# staged (`registry.ingest.directory`): one archive copy costs ~1 ms or more of pydicom work; a pool starts in ~50 ms.
ARCHIVE_PARALLEL_MIN_FILES = 32
# Staged copies between two flushes of their filesystem while reading goes on (128 CT slices of 512 x 512
# are 64 MB): the flush that must precede the first commit then finds little left to write.
FLUSH_WHILE_READING_COPIES = 128
CLUSTER_BATCH_FILES = 64  # files per Dask task: one header is ~1 ms of work, a task ~1 ms of overhead
ProgressCallback = Callable[[str, int, int], None]  # (phase "files" | "series", done, total)
T = TypeVar("T")


@dataclass(frozen=True)
class Stager:
    """Where and under which key the files' de-identified copies are made while they are read."""

    key: bytes
    folder: str
    archive: str  # the archive folder: a file whose copy is already there is not staged again


class FlushesWhileReading:
    """Flushes of the staged copies' filesystem (`flush_filesystem`) in the flusher thread while the files are
    still read, one at a time, each once `FLUSH_WHILE_READING_COPIES` more copies are staged. Only a head
    start: the flush after reading (awaited before the first commit) is what makes every copy durable."""

    def __init__(self, flusher: ThreadPoolExecutor, folder: str) -> None:
        self.flusher, self.folder = flusher, folder
        self.pending: Future[None] | None = None
        self.staged = 0  # copies staged so far (those of zip members included)
        self.flushed_at = 0

    def copy_staged(self) -> None:
        self.staged += 1
        if (self.staged - self.flushed_at >= FLUSH_WHILE_READING_COPIES
                and (self.pending is None or self.pending.done())):
            self.pending = self.flusher.submit(flush_filesystem, self.folder)
            self.flushed_at = self.staged


class SeriesStore(Protocol):
    """What stores the series of the centers read while reading goes on (the ingest's storer)."""

    def ready(self, headers: list[InstanceHeader]) -> bool:
        """Whether these files' series can be stored while reading goes on."""

    def store(self, groups: list[tuple[tuple[str, str], list[InstanceHeader]]], total: int) -> None:
        """Store `groups` ((center code, SeriesInstanceUID), headers) in this order; `total`: the series known."""


def read_and_group(
    files: list[Path], root: Path, center: str | None, report: IngestReport,
    progress: ProgressCallback | None, workers: int, executor: Executor | None = None,
    stager: Stager | None = None, staged: dict[str, StagedCopy] | None = None,
    early: FlushesWhileReading | None = None, storer: SeriesStore | None = None,
) -> dict[tuple[str, str], list[InstanceHeader]]:
    """Headers of the readable CT files grouped by (center, SeriesInstanceUID); the rest rejected.

    With a `stager`, each file's de-identified copy is made from the same read (`_read_and_stage`) and
    recorded in `staged` under the file's path; `early` flushes them to disk while reading goes on. With a
    `storer`, the series of each center whose files have all been read are stored while the others are
    read (`registry.ingest.centers_read`), as long as every center before it in sorted order was.
    """
    centers: list[str] = []
    todo: list[Path] = []
    for path in files:
        parts = path.relative_to(root).parts
        code = center or (parts[0] if len(parts) > 1 else None)
        if code is None:
            report.rejected.append(RejectedItem(str(path), NO_CENTER,
                                                "file directly under the ingested folder: give --center CODE "
                                                "or put it under <DIR>/<CENTER>/"))
        elif (why := valid_center_code(code)) is not None:
            report.rejected.append(RejectedItem(str(path), INVALID_CENTER,
                                                f"the center code (first folder below the ingested folder, or "
                                                f"--center) {why}: rename the folder or give --center CODE"))
        elif path.name.upper() == "DICOMDIR":
            report.rejected.append(RejectedItem(str(path), DICOMDIR, "media directory index, not an image"))
        else:
            todo.append(path)
            centers.append(code)

    groups: dict[tuple[str, str], list[InstanceHeader]] = defaultdict(list)
    # Header parsing is pure Python (GIL-bound): threads do not help, processes do. Small folders are
    # read in this process, where starting workers would cost more than it saves.
    parallel = workers > 1 and len(todo) >= (ARCHIVE_PARALLEL_MIN_FILES if stager else PARALLEL_MIN_FILES)
    def keep(code: str, result: InstanceHeader | RejectedFile) -> None:
        if isinstance(result, RejectedFile):
            report.rejected.append(RejectedItem(result.path, result.reason, result.detail))
        else:
            groups[(code, result.series_instance_uid)].append(result)
            report.normalized.extend(RejectedItem(result.path, "normalized", note) for note in result.notes)

    if executor is not None and executor.distributed:
        def on_batch(done: int) -> None:
            if progress:
                progress("files", done + len(files) - len(todo), len(files))
        for code, result in zip(centers, _read_on_cluster(executor, todo, centers, on_batch), strict=True):
            keep(code, result)
        return groups
    pool_context = ProcessPoolExecutor(max_workers=workers, initializer=die_with_parent) if parallel else nullcontext()
    with pool_context as pool:
        if stager is None:
            results = pool.map(_read_one, todo, centers, chunksize=64) if parallel else map(_read_one, todo, centers)
        else:
            # A folder of its own for each reading (the folder's files, then the zips' members): names never meet.
            folder = tempfile.mkdtemp(dir=stager.folder)
            jobs = [(str(path), code, f"{folder}/{n}.dcm")
                    for n, (path, code) in enumerate(zip(todo, centers, strict=True))]
            read = functools.partial(_read_and_stage, key=stager.key, archive=stager.archive)
            # Small chunks: each file now costs its copy too, and the two processes should end together.
            pairs = pool.map(read, jobs, chunksize=16) if parallel else map(read, jobs)
            results = (_kept_staged(pair, staged) for pair in pairs)
        centers_read = CentersRead(centers) if storer is not None else None
        try:
            for done, (code, result) in enumerate(zip(centers, results, strict=True), start=1):
                keep(code, result)
                if early is not None and staged is not None and isinstance(result, InstanceHeader) \
                        and result.path in staged:
                    early.copy_staged()
                if progress and (done % 50 == 0 or done == len(todo)):
                    progress("files", done + len(files) - len(todo), len(files))
                if centers_read is not None and storer is not None:
                    if isinstance(result, RejectedFile) and result.reason == ZIP_ARCHIVE:
                        centers_read.hold(code)  # its members are read after the folder: its series may grow
                    _store_centers_read(storer, groups, centers_read.read(code), centers_read)
        except BaseException:
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)  # no reading on behind a failed or killed store
            raise
    return groups


def _store_centers_read(storer: SeriesStore, groups: dict[tuple[str, str], list[InstanceHeader]],
                        codes: list[str], read: CentersRead) -> None:
    """Store the series of the centers `codes` whose files have all been read; a center with a copy still to
    make holds itself and every center after it for the store after reading."""
    for code in codes:
        ready = sorted((group, headers) for group, headers in groups.items() if group[0] == code)
        if not all(storer.ready(headers) for _group, headers in ready):
            read.stop()
            return
        storer.store(ready, total=len(groups))


def _read_on_cluster(executor: Executor, paths: list[Path], centers: list[str],
                     on_batch: Callable[[int], None]) -> list[InstanceHeader | RejectedFile]:
    """Headers of `paths` (under the center codes `centers`) read on the Dask workers in batches, returned in
    the order of `paths`."""
    step = CLUSTER_BATCH_FILES
    batches = [(start, list(zip(paths[start : start + step], centers[start : start + step], strict=True)))
               for start in range(0, len(paths), step)]
    by_start: dict[int, list[InstanceHeader | RejectedFile]] = {}
    done = 0
    for result in executor.map_per_series(_read_batch, batches, label="read-headers", key_of=lambda b: str(b[0])):
        start, batch = result.item
        by_start[start] = result.value if result.error is None else [
            RejectedFile(p, UNREADABLE, f"header reading failed on the cluster ({result.error}); ingest again")
            for p, _code in batch]
        done += len(batch)
        on_batch(done)
    return [header for start, _ in batches for header in by_start[start]]


def _read_batch(batch: tuple[int, list[tuple[Path, str]]]) -> list[InstanceHeader | RejectedFile]:
    return [_read_one(path, code) for path, code in batch[1]]


def _kept_staged(pair: tuple[InstanceHeader | RejectedFile, StagedCopy | None],
                 staged: dict[str, StagedCopy] | None) -> InstanceHeader | RejectedFile:
    result, copy = pair
    if copy is not None and staged is not None and isinstance(result, InstanceHeader):
        staged[result.path] = copy
    return result


def _read_and_stage(job: tuple[str, str, str], *, key: bytes, archive: str
                    ) -> tuple[InstanceHeader | RejectedFile, StagedCopy | None]:
    """`_read_one` of a (path, center code, staging path) job, and the file's de-identified copy staged
    from the same read under the pseudonym of its PatientID at that center, unless a copy is already at
    its archive name (a file ingested before: its copy, if needed at all, is checked the whole-file way)."""
    path, code, target = job
    # In a reader process or ingest's own thread (never a cluster's threads): the setting is process-wide.
    with values_unchecked_by_pydicom():
        parsed = _read_one(path, code, parse_instance)
        if isinstance(parsed, RejectedFile):
            return parsed, None
        header = parsed.header
        try:
            pseudonym = _remembered_pseudo_id(key, code, header.patient_id)
        except ValueError:
            return header, None
        folder = series_folder_name(key, code, pseudonym, header.study_instance_uid, header.series_instance_uid)
        name = instance_name(key, header.sop_instance_uid)
        if os.path.exists(f"{archive}/{folder}/{name}"):
            return header, None
        return header, stage_archive_copy(parsed, key, pseudonym, target, name)


# The files of a series share their patient: each reader process computes the HMAC once per patient.
_remembered_pseudo_id = functools.lru_cache(maxsize=4096)(pseudo_id)


def _read_one(path: Path | str, center_code: str | None = None,
              read: Callable[..., T] = read_instance_header) -> T | RejectedFile:
    """One file's header read under `center_code` (or what `read` makes of the file), or the rejection
    (returned, not raised, so that it crosses process boundaries)."""
    try:
        return read(path, center_code=center_code)
    except RejectedFile as exc:
        return exc
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return RejectedFile(path, SYMLINK_LOOP, "symbolic link in a loop (it leads back to itself through "
                                                    "other links): there is no file to read; remove the link")
        return RejectedFile(path, "unreadable", f"cannot read file: {exc.strerror or type(exc).__name__}")
    except Exception as exc:  # noqa: BLE001 - whatever a malformed file triggers, it is this file's verdict
        return RejectedFile(path, "unreadable", f"file cannot be parsed ({type(exc).__name__})")
