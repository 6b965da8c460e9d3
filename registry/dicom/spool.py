"""The spool: where every route into the registry (C-STORE, pull, upload) puts files before ingest.

Layout under `<home>/spool/`: `incoming/<CENTER>/<batch>/` while a batch is being received,
`ready/<CENTER>/<batch>/` once it is complete and waits for `registry.ingest.directory.ingest_directory`.
A file is written durably (temporary hidden name, fsync, rename, fsync of the folder) before
anyone is told it is stored, so a receiver killed at any moment keeps every acknowledged file;
at the next start the batches it left are sealed and ingested. Ingest is idempotent (same
SOPInstanceUID, same bytes: "already present"), so a batch ingested twice, or a re-send of what was
already stored, ends with the records of one clean send. A batch folder is removed only after its
ingest has committed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine

from registry.home import Home
from registry.identifiers import normalized_center

INCOMING = "incoming"
READY = "ready"
_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")
_OWNER = re.compile(r"^[0-9T]+-[0-9a-f]+-p([0-9]+)-(.*)$")


@dataclass(frozen=True)
class Batch:
    center: str
    path: Path


def spool_root(home: Home) -> Path:
    return home.root / "spool"


def new_batch(home: Home, center: str, source: str) -> Batch:
    """An empty batch folder for files of `center` arriving from `source` (an AE title, "upload", "pull")."""
    code = normalized_center(center)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    tag = re.sub(r"[^A-Za-z0-9_-]", "_", source.strip())[:16] or "unknown"
    path = spool_root(home) / INCOMING / code / f"{stamp}-{uuid.uuid4().hex[:8]}-p{os.getpid()}-{tag}"
    path.mkdir(parents=True)
    _fsync_dir(path.parent)
    return Batch(code, path)


def instance_file_name(sop_instance_uid: str) -> str:
    """Spool file name of an instance: its SOPInstanceUID (a re-send overwrites, never doubles), or a hash of it."""
    value = sop_instance_uid.strip().rstrip("\0")
    if _UID.match(value) and len(value) <= 64:
        return f"{value}.dcm"
    return f"sop-{hashlib.sha256(value.encode()).hexdigest()[:32]}.dcm"


def write_durably(folder: Path, name: str, data: bytes) -> Path:
    """Write `data` to `folder/name` so that it survives a crash once this returns (fsync file and folder)."""
    target = folder / name
    tmp = folder / f".{name}.{os.getpid()}.part"  # hidden: ingest skips hidden files; swept at the next start
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, target)
    _fsync_dir(folder)
    return target


def seal(home: Home, batch: Batch) -> Batch:
    """Move a complete batch from incoming/ to ready/ (one rename); returns it at its new place."""
    target = spool_root(home) / READY / batch.center / batch.path.name
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(batch.path, target)
    _fsync_dir(target.parent)
    _fsync_dir(batch.path.parent)
    return Batch(batch.center, target)


def recover(home: Home) -> list[Batch]:
    """Batches whose writing process is gone (a killed receiver, pull or dashboard), oldest first.

    Their incoming ones are sealed (empty ones removed). Batches of a live process (a dashboard
    upload being ingested, a pull under way) are left to it. One receiver per data home.
    """
    from registry.ingest.runs import process_alive

    def orphan(batch_dir: Path) -> bool:
        owner = batch_owner(batch_dir)
        return owner is None or owner == os.getpid() or not process_alive(owner)

    root = spool_root(home)
    for center_dir in _folders(root / INCOMING):
        for batch_dir in filter(orphan, _folders(center_dir)):
            batch = Batch(center_dir.name, batch_dir)
            for leftover in batch_dir.glob(".*.part"):
                leftover.unlink(missing_ok=True)
            if file_count(batch):
                seal(home, batch)
            else:
                shutil.rmtree(batch_dir, ignore_errors=True)
    batches = [Batch(center_dir.name, batch_dir)
               for center_dir in _folders(root / READY) for batch_dir in filter(orphan, _folders(center_dir))]
    return sorted(batches, key=lambda b: b.path.name)


def batch_owner(path: Path) -> int | None:
    """The id of the process that made a batch folder (`<time>-<id>-p<PID>-<source>`), or None if unnamed."""
    match = _OWNER.match(path.name)
    return int(match.group(1)) if match else None


def batch_source(path: Path) -> str:
    """The `source` a batch was made for (an AE title, "upload", "pull")."""
    match = _OWNER.match(path.name)
    return match.group(2) if match else "unknown"


def file_count(batch: Batch) -> int:
    return sum(1 for p in batch.path.iterdir() if not p.name.startswith("."))


def ingest_batch(engine: Engine, home: Home, batch: Batch, *, actor: str,
                 progress: Callable[[str, int, int], None] | None = None):  # -> registry.ingest.report.IngestReport
    """Ingest one ready batch through `registry.ingest.directory.ingest_directory` (center given), then remove it.

    Half-written hidden files of a killed writer are removed first. `workers=1`: the receiver is
    multi-threaded, and forking header-reading processes from a threaded process can deadlock.
    """
    from registry.ingest.directory import ingest_directory

    for leftover in batch.path.glob(".*.part"):
        leftover.unlink(missing_ok=True)
    report = ingest_directory(engine, home, batch.path, center=batch.center, actor=actor, workers=1,
                              progress=progress)
    shutil.rmtree(batch.path, ignore_errors=True)
    return report


def _folders(path: Path) -> list[Path]:
    if not path.is_dir():
        return []
    return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
