"""`registry ingest`: a folder of DICOM files from centers -> patients, studies, series, instances.

Every file's header is read and hashed (`registry.dicom_headers`); bad files are set aside with their
reason, one bad file never stopping the run. Each series is stored in its own transaction: files are
copied into the archive first (idempotently: same bytes at the same place), then instances, series
geometry and automatic QC are committed together. A series never spans two centers, so the series of a
center whose files have all been read are stored while the next centers' files are read
(`registry.centers_read`), in the order, and with the rows, of storing everything after reading. An
ingest killed at any point and run again therefore ends with exactly the records of one clean run:
committed series are found "already present", the interrupted one is redone from scratch.

A known SOPInstanceUID with different bytes is a conflict: reported and recorded, never overwritten.

Archived copies are de-identified on the way in (`registry.deidentify`: DICOM PS3.15 Annex E basic
profile, full dates retained), every file, whatever its header says of itself. Each file is read once:
the copy is made from the bytes and header that reading took (`registry.deidentified_copy`), staged
beside the archive, and moved to its archive name when its series is stored. Files indexed
`--in-place` stay as they are (identifiable where they lie); the data home links to each under the
archive's pseudonymous layout (`Home.in_place_dir`) and the registry keeps only that link. A failure
while storing one series (a database error included) rejects that series' files with the reason and the
run goes on.

No name from the operator's folders reaches the registry (`registry.stored_names`): the ingested folder
is kept as a keyed token, a rejected file as its center code and a keyed token; the full path is shown
to whoever runs the ingest. A symbolic link is judged where it lies (the name it was reached by), never
by its target's folder.
"""

from __future__ import annotations

import errno
import functools
import os
import shutil
import tempfile
from collections import Counter, defaultdict
from collections.abc import Callable, Collection, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import ExitStack, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import pydicom
from sqlalchemy import Engine, bindparam, insert, select, update
from sqlalchemy.orm import Session

from registry.archive_copy import (
    CHANGED,
    FAILED,
    WRITTEN,
    ArchiveJob,
    ArchiveResult,
    StagedCopy,
    flush_filesystem,
    fsync_files,
    place_staged_copy,
    stage_archive_copy,
    write_archive_copy,
)
from registry.centers_read import CentersRead
from registry.db import run_in_transaction, session_scope
from registry.deidentified_header import remembered_mapped_uid
from registry.dicom_headers import (
    UNREADABLE,
    ZIP_ARCHIVE,
    InstanceHeader,
    RejectedFile,
    parse_instance,
    read_instance_header,
    values_unchecked_by_pydicom,
)
from registry.header_validation import valid_center_code
from registry.home import Home
from registry.identifiers import normalized_center
from registry.ingest_runs import (
    die_with_parent,
    mark_interrupted_runs,
    process_alive,
    remove_archive_debris,
    this_host,
)
from registry.instance_files import instance_file_paths
from registry.models import (
    INGEST_DONE,
    INGEST_RUNNING,
    QC_FAILED,
    QC_PASSED,
    Center,
    ClinicalRecord,
    IngestRun,
    Instance,
    Patient,
    QCDecision,
    Rejection,
    Series,
    Study,
    utcnow,
)
from registry.pseudonym import pseudo_id
from registry.series_facts import series_facts
from registry.series_qc import QCThresholds, own_reasons, summarize_series
from registry.store import (
    AUTO_QC_ACTOR,
    audit,
    center_id_by_code,
    days_between,
    insert_audit,
    patient_id_by_pseudo_id,
)
from registry.stored_names import folder_token, path_token
from registry.zip_members import UnpackedZip, ZipUnreadable, unpack_zip

if TYPE_CHECKING:
    from cluster.executor import Executor

# Rejection codes decided here rather than from one file's header.
NO_CENTER = "no_center"
DICOMDIR = "dicomdir"
CONFLICT = "conflict"
SERIES_CONFLICT = "series_conflict"
SERIES_INCONSISTENT = "series_inconsistent"
CHANGED_DURING_INGEST = "changed_during_ingest"
ARCHIVE_UNREADABLE = "archive_unreadable"
INVALID_CENTER = "invalid_center"
UNREADABLE_FOLDER = "unreadable_folder"
STORE_FAILED = "store_failed"
DEFECTIVE_INSTANCE = "defective_instance"
ARCHIVE_FAILED = "archive_failed"
SYMLINK_LOOP = "symlink_loop"
ZIP_MEMBER_UNREADABLE = "zip_member_unreadable"
CENTER_NAMES_PATIENT = "center_names_patient"
REGISTRY_COPY = "registry_copy"

PARALLEL_MIN_FILES = 500
ARCHIVE_PARALLEL_MIN_FILES = 32  # one archive copy costs ~1 ms or more of pydicom work; a pool starts in ~50 ms
# Staged copies between two flushes of their filesystem while reading goes on (128 CT slices of 512 x 512
# are 64 MB): the flush that must precede the first commit then finds little left to write.
FLUSH_WHILE_READING_COPIES = 128
CLUSTER_BATCH_FILES = 64  # files per Dask task: one header is ~1 ms of work, a task ~1 ms of overhead
ProgressCallback = Callable[[str, int, int], None]  # (phase "files" | "series", done, total)
T = TypeVar("T")


@dataclass(frozen=True)
class RejectedItem:
    path: str
    reason: str
    detail: str


@dataclass
class IngestReport:
    """What one ingest did; `counts()` is what IngestRun.counts stores."""

    run_id: int
    files_seen: int = 0
    new_instances: int = 0
    already_present: int = 0
    series_new: int = 0
    series_updated: int = 0
    patients_new: int = 0
    qc: Counter[str] = field(default_factory=Counter)
    rejected: list[RejectedItem] = field(default_factory=list)
    conflicts: list[RejectedItem] = field(default_factory=list)
    normalized: list[RejectedItem] = field(default_factory=list)  # values cut or cleaned to fit their VR
    debris_removed: int = 0
    interrupted_runs: list[int] = field(default_factory=list)
    # New center codes refused as the name or ID of a patient of theirs: rejected files below them are named
    # without their center folder (`stored_rejection_path`). Never stored.
    centers_naming_patients: set[str] = field(default_factory=set)

    @property
    def rejected_by_reason(self) -> dict[str, int]:
        return dict(sorted(Counter(r.reason for r in self.rejected).items()))

    @property
    def nothing_new(self) -> bool:
        return self.new_instances == 0

    def merge(self, other: IngestReport) -> None:
        """Add what one series' transaction did (counted apart, so that a retried attempt counts once)."""
        self.new_instances += other.new_instances
        self.already_present += other.already_present
        self.series_new += other.series_new
        self.series_updated += other.series_updated
        self.patients_new += other.patients_new
        self.qc.update(other.qc)
        self.rejected.extend(other.rejected)
        self.conflicts.extend(other.conflicts)
        self.normalized.extend(other.normalized)
        self.centers_naming_patients |= other.centers_naming_patients

    def counts(self) -> dict[str, object]:
        return {
            "files": self.files_seen, "new_instances": self.new_instances, "already_present": self.already_present,
            "conflicts": len(self.conflicts), "rejected": len(self.rejected),
            "rejected_by_reason": self.rejected_by_reason, "series_new": self.series_new,
            "series_updated": self.series_updated, "patients_new": self.patients_new,
            "qc": dict(sorted(self.qc.items())), "normalized": len(self.normalized),
        }


def dicom_candidate_files(root: Path, unreadable: list[RejectedItem] | None = None) -> Iterator[Path]:
    """Every regular file under `root` in a stable order, hidden files and folders skipped.

    Folders that cannot be listed are appended to `unreadable` (a permission problem must not look
    like an empty folder).
    """
    def _report(exc: OSError) -> None:
        if unreadable is not None:
            unreadable.append(RejectedItem(str(exc.filename), UNREADABLE_FOLDER,
                                           f"folder cannot be read ({exc.strerror}): its files were not ingested; "
                                           "fix its permissions and ingest again"))

    for dirpath, dirnames, filenames in os.walk(root, onerror=_report):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith("."):
                yield Path(dirpath) / name


def ingest_directory(
    engine: Engine,
    home: Home,
    root: Path | str,
    *,
    center: str | None = None,
    in_place: bool = False,
    actor: str = "cli",
    progress: ProgressCallback | None = None,
    thresholds: QCThresholds | None = None,
    workers: int = min(2, os.cpu_count() or 1),
    executor: Executor | None = None,
) -> IngestReport:
    """Ingest every DICOM file under `root`; the center is `center` or each file's first folder below root.

    With `in_place`, the files stay under `root`; the registry stores the data home's links to them.
    With a distributed `executor` (`--scheduler`) the headers are read and hashed on the Dask workers,
    which must see `root` at the same path (shared storage); storing stays here, one transaction per
    series, retried when a concurrent ingest of the same files wins a race (`registry.db.run_in_transaction`).
    """
    root = Path(root).resolve()
    if not root.is_dir():
        raise NotADirectoryError(f"{root} is not a folder")
    key = home.secret()
    source = folder_token(key, str(root))
    # Tidy what killed runs left, record this run's process.
    with session_scope(engine) as session:
        interrupted = mark_interrupted_runs(session)
        run = IngestRun(kind="dicom", source=source, actor=actor, counts={}, status=INGEST_RUNNING,
                        pid=os.getpid(), host=this_host())
        session.add(run)
        session.flush()
        report = IngestReport(run_id=run.id, interrupted_runs=interrupted)
        known_centers = frozenset(session.scalars(select(Center.code)))
    if interrupted:
        # Half-written `*.tmp<PID>` files are what a run killed while writing leaves, and every run is recorded
        # before it writes: the archive (every archived file) is searched only when such a run was just found.
        report.debris_removed = sum(len(remove_archive_debris(folder))
                                    for folder in (home.archive_dir, home.in_place_dir))
    _remove_dead_ingests_folders(home.unpack_dir)
    _remove_dead_ingests_folders(home.staging_dir)
    with ExitStack() as cleanup:
        _ingest_files(engine, home, key, root, report, cleanup, center=center, in_place=in_place, actor=actor,
                      progress=progress, thresholds=thresholds, workers=workers, executor=executor,
                      known_centers=known_centers)

    with session_scope(engine) as session:
        run = session.get(IngestRun, report.run_id)
        run.finished_at = utcnow()
        run.status = INGEST_DONE
        run.counts = report.counts()
        items = [*report.rejected, *report.conflicts]
        if items:
            session.execute(insert(Rejection), [
                {"ingest_run_id": run.id, "path": stored_rejection_path(key, root, r.path,
                                                                        report.centers_naming_patients, center),
                 "reason": r.reason, "detail": r.detail} for r in items
            ])
        audit(session, actor=actor, action="ingest_dicom", entity_type="ingest_run", entity_id=str(run.id),
              after={"source": source, "in_place": in_place, **report.counts()})
    return report


def _ingest_files(
    engine: Engine, home: Home, key: bytes, root: Path, report: IngestReport, cleanup: ExitStack, *,
    center: str | None, in_place: bool, actor: str, progress: ProgressCallback | None,
    thresholds: QCThresholds | None, workers: int, executor: Executor | None, known_centers: frozenset[str],
) -> None:
    """Read, group and store every file under `root` and the members of the zip archives among them.

    `known_centers`: the codes of the centers registered when the run began (a new code that names a
    patient of its files is refused: `_SeriesStorer`)."""
    unreadable: list[RejectedItem] = []
    files = list(dicom_candidate_files(root, unreadable))
    report.rejected.extend(unreadable)
    report.files_seen = len(files)
    # The de-identified copies are made while the files are read, except on a cluster (whose workers
    # read the files but do not hold the home key).
    stager: Stager | None = None
    if not in_place and not (executor is not None and executor.distributed):
        stager = Stager(key, cleanup.enter_context(tempfile.TemporaryDirectory(
            prefix=f"{os.getpid()}-", dir=_made(home.staging_dir))), str(home.archive_dir))
    staged: dict[str, StagedCopy] = {}
    # A series' copies are flushed to disk in this thread (fsync waits on the disk, not the CPU), and the
    # staged copies already while the files are read; every flush is awaited before the rows commit.
    flusher = cleanup.enter_context(ThreadPoolExecutor(max_workers=1)) if not in_place else None
    early = _FlushesWhileReading(flusher, stager.folder) if stager is not None and flusher is not None else None
    storer = _SeriesStorer(engine, home, key, report, in_place=in_place, actor=actor, thresholds=thresholds,
                           flusher=flusher, stager=stager, staged=staged, progress=progress,
                           known_centers=known_centers, center_option=center is not None)
    groups = _read_and_group(files, root, center, report, progress, workers, executor, stager, staged, early,
                             storer=storer)
    origins: dict[str, tuple[str, int]] = {}
    if not in_place and any(r.reason == ZIP_ARCHIVE for r in report.rejected):
        unpack_root = Path(cleanup.enter_context(tempfile.TemporaryDirectory(
            prefix=f"{os.getpid()}-", dir=_made(home.unpack_dir))))
        members = _unpack_zips(report, root, center, unpack_root, origins)
        before = report.files_seen
        report.files_seen += len(members)

        def member_progress(phase: str, done: int, total: int) -> None:
            if progress:
                progress(phase, before + done, before + total)
        # Members are read here, not on a cluster: they lie in this machine's data home.
        for group, headers in _read_and_group(members, unpack_root, None, report, member_progress, workers,
                                              stager=stager, staged=staged, early=early).items():
            groups[group].extend(headers)

    rest = {group: headers for group, headers in groups.items() if group not in storer.stored}
    # Copies not staged while reading are written by worker processes (`_copy_into_archive`) when there
    # are enough of them to pay for starting the pool.
    unstaged = sum(h.path not in staged for headers in rest.values() for h in headers)
    if not in_place and workers > 1 and unstaged >= ARCHIVE_PARALLEL_MIN_FILES:
        storer.writers = cleanup.enter_context(ProcessPoolExecutor(max_workers=workers,
                                                                   initializer=die_with_parent))
    storer.store(sorted(rest.items()), total=len(groups))
    storer.merge_into(report)
    if origins:
        for items in (report.rejected, report.conflicts, report.normalized):
            items[:] = [_named_by_archive(item, origins) for item in items]


def _made(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _unpack_zips(report: IngestReport, root: Path, center: str | None, unpack_root: Path,
                 origins: dict[str, tuple[str, int]]) -> list[Path]:
    """Unpack the zip archives `report` rejected into `<unpack_root>/<CENTER>/<n>/`; their members' paths.

    Each zip leaves the rejections (it is read, not refused); `origins` maps a member's path to (the
    zip's path, the member's position), so that what is said of a member names the zip and the position.
    """
    zips = [r for r in report.rejected if r.reason == ZIP_ARCHIVE]
    report.rejected[:] = [r for r in report.rejected if r.reason != ZIP_ARCHIVE]
    members: list[Path] = []
    for number, item in enumerate(zips, start=1):
        # Only files with a valid center reach header reading, so the zip's center is known.
        code = center or Path(os.path.relpath(item.path, root)).parts[0]
        try:
            unpacked: UnpackedZip = unpack_zip(Path(item.path), unpack_root / code / str(number))
        except ZipUnreadable as exc:
            report.rejected.append(RejectedItem(item.path, ZIP_ARCHIVE, str(exc)))
            continue
        for position in unpacked.dicomdirs:
            report.rejected.append(RejectedItem(item.path, DICOMDIR,
                                                f"zip member {position}: media directory index, not an image"))
        for position, why in unpacked.failed:
            report.rejected.append(RejectedItem(item.path, ZIP_MEMBER_UNREADABLE, f"zip member {position}: {why}"))
        for path, position in unpacked.files.items():
            origins[str(path)] = (item.path, position)
            members.append(path)
    return members


def _named_by_archive(item: RejectedItem, origins: dict[str, tuple[str, int]]) -> RejectedItem:
    """A rejection of a zip member, named by its zip and its position there (never the member's name)."""
    origin = origins.get(item.path)
    if origin is None:
        return item
    return RejectedItem(origin[0], item.reason, f"zip member {origin[1]}: {item.detail}")


def _remove_dead_ingests_folders(parent: Path) -> None:
    """Remove the unpacking or staging folders (`<PID>-*`) of ingests whose process is gone (killed before
    cleaning up)."""
    if not parent.is_dir():
        return
    for folder in parent.iterdir():
        pid = folder.name.split("-", 1)[0]
        if pid.isdigit() and not process_alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def stored_rejection_path(key: bytes, root: Path, path: str, hidden_centers: Collection[str] = (),
                          center: str | None = None) -> str:
    """What the registry keeps of a rejected file's path: its center code and a keyed token of the rest.

    The center code is the first folder below `root`, or `center` (`--center`) when given: the first folder
    is then any folder, often the patient's. The path is taken as the file was reached below `root`, never
    resolved: a symbolic link (to a file elsewhere, or in a loop) is named by where it lies, not by its
    target's folders. Folder and file names below a center may name the patient; the token is the same for
    the same file in every run, so repeated rejections can be matched without the name. A path outside
    `root` keeps no folder at all, nor does one whose center code is among `hidden_centers` (normalized
    codes found to name a patient).
    """
    relative = os.path.relpath(path, root)
    parts = Path(relative).parts
    if not parts or parts[0] == os.pardir or Path(relative).is_absolute():
        return path_token(key, "file", os.path.abspath(path))
    code = parts[0] if center is None else center
    head = code if len(parts) > 1 and valid_center_code(code) is None else ""
    if head and normalized_center(head) in hidden_centers:
        head = ""
    token = path_token(key, "file", "/".join(parts))
    return f"{head}/{token}" if head else token


class _FlushesWhileReading:
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


class _SeriesStorer:
    """Stores groups of series, each in its own transaction (`_store_series`), and keeps what each did for
    `merge_into`, which adds it to the run's report in the order of storing once reading has ended (so that
    the report, and the rejections it records, come out as if every series were stored after reading).

    Series are stored while the files are still read when their center's files have all been read
    (`registry.centers_read`) and all their copies were staged; the rest after reading. Either way every
    series of a center is in one `store` call.

    A center code not among `known_centers` that names a patient of its files (`InstanceHeader.
    center_names_patient`) is refused: every file under it is rejected, those of the other patients too (the
    center would be created by their series and show the name just the same). A registered center keeps
    its code whatever its patients are called.
    """

    def __init__(self, engine: Engine, home: Home, key: bytes, report: IngestReport, *, in_place: bool, actor: str,
                 thresholds: QCThresholds | None, flusher: ThreadPoolExecutor | None, stager: Stager | None,
                 staged: dict[str, StagedCopy], progress: ProgressCallback | None,
                 known_centers: frozenset[str] = frozenset(), center_option: bool = False) -> None:
        self.engine, self.home, self.key, self.run_id = engine, home, key, report.run_id
        self.in_place, self.actor, self.thresholds = in_place, actor, thresholds
        self.flusher, self.stager, self.staged, self.progress = flusher, stager, staged, progress
        self.known_centers, self.center_option = known_centers, center_option
        self.writers: ProcessPoolExecutor | None = None
        self.stored: set[tuple[str, str]] = set()
        self.outcomes: list[IngestReport] = []

    def ready(self, headers: list[InstanceHeader]) -> bool:
        """Whether these files' series can be stored while reading goes on: linked in place, or every copy
        staged (a copy to make from the source file waits for the writer processes, started after reading)."""
        return self.in_place or all(h.path in self.staged for h in headers)

    def store(self, groups: list[tuple[tuple[str, str], list[InstanceHeader]]], total: int) -> None:
        """Store `groups` ((center code, SeriesInstanceUID), headers) in this order; `total`: the series known."""
        staged_flush: Future[None] | None = None
        if self.flusher is not None and self.stager is not None and any(
                h.path in self.staged for _group, headers in groups for h in headers):
            # The staged copies are made durable together (those flushed while reading already were), before
            # the first series' flush (the flusher runs its work in order), so that each series only flushes
            # the folder its copies were moved into.
            staged_flush = self.flusher.submit(flush_filesystem, self.stager.folder)
        refused = {code for (code, _uid), headers in groups
                   if normalized_center(code) not in self.known_centers and any(h.center_names_patient
                                                                                for h in headers)}
        for group, headers in groups:
            if group[0] in refused:
                self.outcomes.append(self._refuse(group[0], headers))
            else:
                self.outcomes.append(self._store_one(group[0], headers, staged_flush))
            self.stored.add(group)
            if self.progress:
                self.progress("series", len(self.stored), max(total, len(self.stored)))

    def _store_one(self, center_code: str, headers: list[InstanceHeader],
                   staged_flush: Future[None] | None) -> IngestReport:
        def store_one(session: Session) -> IngestReport:
            attempt = IngestReport(run_id=self.run_id)
            flushes: list[Future[None]] = []
            try:
                _store_series(session, self.home, self.key, center_code, headers, in_place=self.in_place,
                              actor=self.actor, report=attempt, thresholds=self.thresholds, writers=self.writers,
                              flusher=self.flusher, flushes=flushes, staged=self.staged)
            finally:
                for flush in [staged_flush, *flushes] if staged_flush is not None else flushes:
                    flush.result()  # the copies are on disk before their rows commit
            return attempt

        try:
            return run_in_transaction(self.engine, store_one)
        except Exception as exc:  # noqa: BLE001 - one series' failure (a database error too) must not end the run
            # Our own ValueError/LookupError messages name no identifier; a database error's text holds the
            # statement's values, so only its type is kept.
            why = str(exc) if isinstance(exc, ValueError | LookupError) else type(exc).__name__
            failed = IngestReport(run_id=self.run_id)
            _reject_all(headers, failed, STORE_FAILED, f"series could not be stored ({why}); nothing of it was "
                                                       "kept: ingest again, and report this if it persists")
            return failed

    def _refuse(self, center_code: str, headers: list[InstanceHeader]) -> IngestReport:
        """The rejections of a series under a new center code that names a patient (never the code or the name)."""
        refused = IngestReport(run_id=self.run_id, centers_naming_patients={normalized_center(center_code)})
        where = "the --center code" if self.center_option else "the center folder's name"
        todo = ("give the center's study code to --center (letters, digits, '-', '_', e.g. IT064)"
                if self.center_option else "rename the folder to the center's study code (letters, digits, '-', "
                "'_', e.g. IT064) or give --center CODE")
        for h in headers:
            whose = ("the patient's name/ID in the file's header" if h.center_names_patient
                     else "the name/ID of another patient whose files are under it")
            refused.rejected.append(RejectedItem(
                h.path, CENTER_NAMES_PATIENT,
                f"{where} matches {whose}: as a new center code it would show an identifier on every screen and "
                f"export; {todo}, and ingest again (a center already registered under a code keeps it)"))
        return refused

    def merge_into(self, report: IngestReport) -> None:
        for outcome in self.outcomes:
            report.merge(outcome)
        self.outcomes = []


@dataclass(frozen=True)
class Stager:
    """Where and under which key the files' de-identified copies are made while they are read."""

    key: bytes
    folder: str
    archive: str  # the archive folder: a file whose copy is already there is not staged again


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


def _read_and_group(
    files: list[Path], root: Path, center: str | None, report: IngestReport,
    progress: ProgressCallback | None, workers: int, executor: Executor | None = None,
    stager: Stager | None = None, staged: dict[str, StagedCopy] | None = None,
    early: _FlushesWhileReading | None = None, storer: _SeriesStorer | None = None,
) -> dict[tuple[str, str], list[InstanceHeader]]:
    """Headers of the readable CT files grouped by (center, SeriesInstanceUID); the rest rejected.

    With a `stager`, each file's de-identified copy is made from the same read (`_read_and_stage`) and
    recorded in `staged` under the file's path; `early` flushes them to disk while reading goes on. With a
    `storer`, the series of each center whose files have all been read are stored while the others are
    read (`registry.centers_read`), as long as every center before it in sorted order was.
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


def _store_centers_read(storer: _SeriesStorer, groups: dict[tuple[str, str], list[InstanceHeader]],
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


def _store_series(
    session: Session, home: Home, key: bytes, center_code: str, headers: list[InstanceHeader], *,
    in_place: bool, actor: str, report: IngestReport, thresholds: QCThresholds | None,
    writers: ProcessPoolExecutor | None = None, flusher: ThreadPoolExecutor | None = None,
    flushes: list[Future[None]] | None = None, staged: dict[str, StagedCopy] | None = None,
) -> None:
    """Store one series' new instances, geometry and automatic QC (the caller commits).

    The flush of the archive copies written is handed to `flusher` and appended to `flushes`, for the
    caller to await before committing (without a flusher, the copies are flushed here).
    """
    headers = _consistent_members(headers, report)
    first = headers[0]
    uid = first.series_instance_uid
    if _registry_copy(session, key, headers, report):
        return

    new = _new_instances(session, headers, report)
    if not new:
        return

    connection = session.connection()
    center_id = center_id_by_code(session, center_code)
    pseudonym = pseudo_id(key, center_code, first.patient_id)
    patient_id, patient_created = patient_id_by_pseudo_id(session, center_id, pseudonym)
    study = connection.execute(select(Study.id, Study.patient_id)
                               .where(Study.study_instance_uid == first.study_instance_uid)).one_or_none()
    if study is not None and study.patient_id != patient_id:
        _reject_all(new, report, SERIES_CONFLICT,
                    f"StudyInstanceUID {first.study_instance_uid} already belongs to another patient")
        session.rollback()
        return
    known = connection.execute(select(Series.id, Series.study_id, Series.qc_status)
                               .where(Series.series_instance_uid == uid)).one_or_none()
    if known is not None and study is not None and known.study_id != study.id:
        _reject_all(new, report, SERIES_CONFLICT, f"SeriesInstanceUID {uid} already belongs to another study")
        session.rollback()
        return

    # Core statements with their values as parameters (one cached compiled form each, not a statement built for
    # each row): the ORM's unit of work, and values built into each statement, cost more than these few rows.
    study_id = study.id if study is not None else connection.execute(insert(Study), {
        "study_instance_uid": first.study_instance_uid, "patient_id": patient_id,
        "study_datetime": first.study_datetime, "description": first.study_description}).inserted_primary_key[0]
    if known is not None and known.study_id != study_id:
        _reject_all(new, report, SERIES_CONFLICT, f"SeriesInstanceUID {uid} already belongs to another study")
        session.rollback()
        return

    if known is not None and known.qc_status in (QC_PASSED, QC_FAILED):
        # A coordinator decided on this series: files that are broken on their own (bad spacing, pixel
        # data, no position, burned-in annotation...) are rejected one by one instead of resetting the decision.
        broken = {h.sop_instance_uid: own_reasons(h) for h in new if own_reasons(h)}
        for h in new:
            if h.sop_instance_uid in broken:
                report.rejected.append(RejectedItem(
                    h.path, DEFECTIVE_INSTANCE, f"not added to series {uid}, already {known.qc_status} by a "
                    f"coordinator: {', '.join(broken[h.sop_instance_uid])}"))
        new = [h for h in new if h.sop_instance_uid not in broken]
        if not new:
            session.rollback()
            return

    layout = series_folder(key, center_code, pseudonym, first.study_instance_uid, uid)
    series_dir = (home.in_place_dir if in_place else home.archive_dir) / layout
    if in_place:
        stored = _link_in_place(new, series_dir, key)
    else:
        stored, written, moved = _copy_into_archive(new, series_dir, report, key, pseudonym, writers, staged)
        if (written or moved) and flusher is not None and flushes is not None:
            flushes.append(flusher.submit(fsync_files, written, series_dir))
        elif written or moved:
            fsync_files(written, series_dir)
        new = [h for h in new if h.sop_instance_uid in stored]
        if not new:
            session.rollback()
            return

    previous: list[InstanceHeader] = []
    if known is not None:
        try:
            previous = _stored_headers(session, known.id)
        except RejectedFile as exc:
            _reject_all(new, report, ARCHIVE_UNREADABLE,
                        f"series {uid} cannot be extended: a stored file is unreadable ({exc.reason}); "
                        "run `ctstudy registry ingest` on the original files again")
            session.rollback()
            return
    summary = summarize_series(previous + new, thresholds, extra_reasons=_undecodable(new))
    everyone = previous + new
    facts = series_facts(first, everyone, summary, series_dir)
    phi = set().union(*(h.phi_tags for h in everyone))
    auto = (summary.qc_status, summary.qc_reasons)
    injury = select(ClinicalRecord.injury_datetime).where(ClinicalRecord.patient_id == patient_id)
    if known is None:
        # The row is written with its facts, then given its automatic verdict and days from injury: two writes,
        # as the ORM's flushes of an extended series make them. The patient summaries' revision triggers
        # (`registry.summary.revisions`) count each, so the registry's revisions are those of the ORM's writes
        # (`bench/ingest_digest.py` compares every row).
        series_id = connection.execute(insert(Series), {
            "series_instance_uid": uid, "study_id": study_id, "modality": "CT", "qc_reasons": [],
            "phi_tags": sorted(phi), **facts}).inserted_primary_key[0]
        days = days_between(connection.execute(injury).scalar_one_or_none(), facts["acquisition_datetime"])
        connection.execute(_SERIES_VERDICT, {"id_": series_id, "days_from_injury": days, "qc_status": auto[0],
                                             "qc_reasons": auto[1]})
        old_qc: tuple[str | None, list[str]] = (None, [])
        qc_status, phi_tags = auto[0], sorted(phi)
    else:
        series = session.get(Series, known.id)
        old_qc = (series.qc_status, list(series.qc_reasons or []))
        for column, value in facts.items():
            setattr(series, column, value)
        series.phi_tags = sorted(phi.union(series.phi_tags or []))
        session.flush()
        series.days_from_injury = days_between(connection.execute(injury).scalar_one_or_none(),
                                               series.acquisition_datetime)
        # New slices change what a coordinator reviewed: their verdict gives way to the automatic one.
        if old_qc != auto:
            series.qc_status, series.qc_reasons = auto
        session.flush()
        series_id, qc_status, phi_tags = series.id, series.qc_status, series.phi_tags
    created = known is None
    if created or old_qc != auto:
        connection.execute(insert(QCDecision), {"series_id": series_id, "status": auto[0], "reasons": auto[1],
                                                "actor": AUTO_QC_ACTOR, "automatic": True,
                                                "note": "automatic checks at ingest"})

    # Core's executemany on the session's connection: the ORM's bulk insert adds per-row work and no value here.
    connection.execute(insert(Instance.__table__), [
        {"sop_instance_uid": h.sop_instance_uid, "series_id": series_id, "instance_number": h.instance_number,
         "position_z": summary.positions.get(h.sop_instance_uid), "file_path": stored[h.sop_instance_uid],
         "sha256": h.sha256, "file_size": h.file_size, "source_root_id": None}
        for h in new
    ])
    before = None if created else {"instance_count": len(previous), "qc_status": old_qc[0], "qc_reasons": old_qc[1]}
    insert_audit(connection, actor=actor, action="series_ingested" if created else "series_extended",
                 entity_type="series", entity_id=uid, before=before,
                 after={"instance_count": summary.instance_count, "instances_added": len(new), "qc_status": auto[0],
                        "qc_reasons": auto[1], "phi_tags": phi_tags, "ingest_run": report.run_id})

    report.new_instances += len(new)
    report.patients_new += int(patient_created)
    report.series_new += int(created)
    report.series_updated += int(not created)
    report.qc[qc_status] += 1
    if old_qc[0] in (QC_PASSED, QC_FAILED) and not created:
        report.qc["manual_decision_reset"] += 1


# A new series row given its automatic verdict and days from injury (`_store_series`).
_SERIES_VERDICT = update(Series).where(Series.id == bindparam("id_"))


def _registry_copy(session: Session, key: bytes, headers: list[InstanceHeader], report: IngestReport) -> bool:
    """Reject the series and return True when it is this registry's own de-identified copy of a series.

    Such a copy (read from the archive or an export) has keyed UIDs and the patient's pseudonym as PatientID:
    ingested, it would become a new patient, `pseudo_id(center, pseudonym)`, the same person twice. It is
    recognised by its header's marks (`InstanceHeader.ctstudy_copy`, on any of the series' files, which
    share their PatientID) and a PatientID that is a pseudonym of this registry's; the series it copies is the
    patient's whose keyed SeriesInstanceUID it carries. A file that only claims the marks (another registry's
    copy, a forged header) has no pseudonym of ours for PatientID, and is ingested like any other.
    """
    if not any(h.ctstudy_copy for h in headers):
        return False
    first = headers[0]
    patient = session.scalars(select(Patient).where(Patient.pseudo_id == first.patient_id.strip().lower())
                              ).one_or_none()
    if patient is None:
        return False
    registered = session.scalars(select(Series.series_instance_uid).join(Study, Series.study_id == Study.id)
                                 .where(Study.patient_id == patient.id)).all()
    copied = next((uid for uid in registered if remembered_mapped_uid(key, uid) == first.series_instance_uid), None)
    where = (f"as series {copied} of patient {patient.pseudo_id}" if copied else
             f"as patient {patient.pseudo_id} (the series it copies is no longer registered)")
    _reject_all(headers, report, REGISTRY_COPY,
                f"this is a de-identified copy already in this registry {where}: ingested again it would make "
                "the same person a second patient; ingest the center's original files, not the archive or an export")
    return True


def _consistent_members(headers: list[InstanceHeader], report: IngestReport) -> list[InstanceHeader]:
    """Keep the instances agreeing with the series' majority (StudyInstanceUID, PatientID); reject the rest."""
    votes = Counter((h.study_instance_uid, h.patient_id) for h in headers)
    if len(votes) == 1:
        return headers
    (study, patient), _ = votes.most_common(1)[0]
    keep = []
    for h in headers:
        if (h.study_instance_uid, h.patient_id) == (study, patient):
            keep.append(h)
        else:
            report.rejected.append(RejectedItem(
                h.path, SERIES_INCONSISTENT,
                f"SeriesInstanceUID {h.series_instance_uid} is shared with files of another "
                f"StudyInstanceUID/PatientID; this file disagrees with the majority of its series"))
    return keep


def _new_instances(session: Session, headers: list[InstanceHeader], report: IngestReport) -> list[InstanceHeader]:
    """Headers whose SOPInstanceUID the registry does not know yet; duplicates and conflicts counted."""
    known: dict[str, tuple[str, str]] = {}
    sops = [h.sop_instance_uid for h in headers]
    connection = session.connection()  # a Core query: no ORM entities to build
    for start in range(0, len(sops), 900):
        for sop, sha, path in connection.execute(
            select(Instance.sop_instance_uid, Instance.sha256, Instance.file_path)
            .where(Instance.sop_instance_uid.in_(sops[start : start + 900]))
        ):
            known[sop] = (sha, path)
    new: list[InstanceHeader] = []
    seen: dict[str, InstanceHeader] = {}
    for h in headers:
        if h.sop_instance_uid in known:
            sha, path = known[h.sop_instance_uid]
            if sha == h.sha256:
                report.already_present += 1
            else:
                report.conflicts.append(RejectedItem(
                    h.path, CONFLICT, f"SOPInstanceUID {h.sop_instance_uid} is already registered with other "
                    f"bytes (sha256 {sha[:12]}...); the stored instance is kept"))
        elif h.sop_instance_uid in seen:
            twin = seen[h.sop_instance_uid]
            if twin.sha256 == h.sha256:
                report.already_present += 1
            else:
                report.conflicts.append(RejectedItem(
                    h.path, CONFLICT, f"SOPInstanceUID {h.sop_instance_uid} also in another file of this run with "
                    "other bytes; the first file is kept"))
        else:
            seen[h.sop_instance_uid] = h
            new.append(h)
    return new


def _copy_into_archive(headers: list[InstanceHeader], series_dir: Path, report: IngestReport, key: bytes,
                       pseudonym: str, writers: ProcessPoolExecutor | None = None,
                       staged: dict[str, StagedCopy] | None = None,
                       ) -> tuple[dict[str, str], list[str], list[str]]:
    """Put each file's de-identified copy at `<series_dir>/<mapped SOPInstanceUID>.dcm`.

    Returns {sop: archived path}, the paths written anew and the paths of staged copies moved there (an
    identical copy already there is kept, in neither list): the caller flushes the written copies and the
    folder to disk (`registry.archive_copy.fsync_files`) before committing their rows (the staged copies'
    bytes were flushed after reading, `registry.archive_copy.flush_filesystem`).

    A copy staged while the file was read under this `pseudonym` is moved into place
    (`registry.archive_copy.place_staged_copy`). The others are made by
    `registry.archive_copy.write_archive_copy` (source checked against the hash taken when the header
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


def _link_in_place(headers: list[InstanceHeader], series_dir: Path, key: bytes) -> dict[str, str]:
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


# Transfer syntaxes whose pixels need a decoder (everything but native little/big endian).
_NATIVE_SYNTAXES = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99"}


def _undecodable(headers: list[InstanceHeader]) -> list[str]:
    """['undecodable_pixel_data'] when the first compressed file of these cannot be decoded here, else [].

    One file per series keeps ingest fast (decoding all would cost as much as the naive way); the
    installed decoders (pylibjpeg with its openjpeg, libjpeg and rle plugins, pyjpegls) cover JPEG,
    JPEG-LS, JPEG 2000 and RLE, so what fails here cannot be read by the pipeline either.
    """
    compressed = next((h for h in headers if h.transfer_syntax and h.transfer_syntax not in _NATIVE_SYNTAXES), None)
    if compressed is None:
        return []
    try:
        pydicom.dcmread(compressed.path).pixel_array  # noqa: B018 - decoding is the check
    except Exception:  # noqa: BLE001 - any decoder failure means the same: no usable pixels
        return ["undecodable_pixel_data"]
    return []


def _stored_headers(session: Session, series_id: int) -> list[InstanceHeader]:
    """Headers of a series' stored instances, re-read from their files (geometry needs all of them)."""
    return [read_instance_header(p, with_hash=False) for p in instance_file_paths(session, series_id)]


def _reject_all(headers: list[InstanceHeader], report: IngestReport, reason: str, detail: str) -> None:
    report.rejected.extend(RejectedItem(h.path, reason, detail) for h in headers)
