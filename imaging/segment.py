"""Segment registered series with one model: masks as NIfTI, one SegmentationRun per series.

Each series is its own transaction: a failure is recorded (status failed, the error) and the run
goes on; a series already done by the same model version is skipped (idempotent).

Where the work runs is the caller's `executor` (`cluster.executor`): in this process by default,
or one Dask task per series (`--scheduler`). A task reads the series' DICOM files and writes its
mask under the data home (shared storage on a cluster) and returns what happened; the registry is
written here, by the client, one transaction per series. Two runs at once on the same series keep
one result: the unique (series, model version) row is written under `run_in_transaction`, and a
finished run is never replaced by another attempt's failure.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from cluster.executor import GPU, Executor
from imaging import store
from imaging.regrid import labels_to_slices, regular_grid, regular_volume, slice_step_for_resampling
from imaging.segmenters import LesionSegmenter
from imaging.volume import Volume, load_series, write_mask
from registry.db.engine import run_in_transaction, session_scope


@dataclass
class SegmentReport:
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)  # what was done to a series (resampled, ...)
    # The model's time per series (segmenting the loaded volume, an irregular one's regridding included; no file
    # reading or writing) and the device it ran on, measured wherever the series ran: how `imaging distill` times
    # its teacher, in this process or on a cluster's workers.
    model_seconds: dict[str, float] = field(default_factory=dict)
    devices: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SeriesJob:
    """One series to segment: what a worker needs, and nothing from the database."""

    series_instance_uid: str
    paths: tuple[Path, ...]
    mask_file: Path
    allow_irregular: bool = False  # --resample


@dataclass(frozen=True)
class SeriesSegmentation:
    """What segmenting one series gave (computed on a worker, recorded by the client)."""

    mask_path: Path | None
    timings: dict[str, float] | None
    error: str | None
    seconds: float
    device: str
    started_at: dt.datetime
    notes: tuple[str, ...] = ()  # what was done to the series (resampled, ...)
    model_seconds: float | None = None  # segmenting the loaded volume (None when it did not get that far)


def series_uids_to_segment(engine: Engine, uids: list[str] | None, include_pending: bool,
                           centers: list[str] | None = None) -> list[str]:
    with session_scope(engine) as session:
        return [s.series_instance_uid for s in store.series_to_segment(session, uids, include_pending, centers)]


def segment_volume_as_received(segmenter: LesionSegmenter, volume: Volume) -> tuple:
    """Labels on the received slices, and notes on what was done to get them.

    An irregularly spaced series (loaded with `allow_irregular`) goes to a segmenter that samples
    its own grid from each slice's position (`resamples_slices`, e.g. BLAST-CT at 1 mm) as it is;
    other models get it resampled to a regular grid at its smallest step, and their labels come
    back onto the received slices (`imaging.regrid`).
    """
    notes = list(volume.notes)
    if volume.irregular_spacing and not getattr(segmenter, "resamples_slices", False):
        grid = regular_grid(volume, (slice_step_for_resampling(volume), volume.spacing[1], volume.spacing[2]))
        labels, timings = segmenter.segment(regular_volume(volume, grid))
        labels = labels_to_slices(labels, grid, volume)
        notes.append(f"resampled to a regular {grid.spacing[0]:.2f} mm grid ({grid.shape[0]} slices) for the model; "
                     f"labels mapped back onto the {volume.shape[0]} received instances")
    else:
        labels, timings = segmenter.segment(volume)
        if volume.irregular_spacing:
            notes.append(f"the model resampled the received slices to its own grid; labels mapped back onto the "
                         f"{volume.shape[0]} received instances")
    return labels, timings, notes


def segment_registered_series(
    engine: Engine,
    masks_dir: Path,
    segmenter: LesionSegmenter,
    uids: list[str],
    on_series: Callable[[str, str], None] | None = None,
    *,
    executor: Executor | None = None,
    worker_device: str | None = None,
    gpu: bool | None = None,
    resample: bool = False,
) -> SegmentReport:
    """Segment `uids` (already chosen by QC status) with `segmenter`; `on_series(uid, outcome)` after each.

    `executor` runs the series (default: in this process). On a cluster, `worker_device` ("auto",
    "cpu", "cuda") is the device each worker picks for itself (default: the segmenter's own), and
    `gpu` sends the series only to workers started with `--resources GPU=1` (default: when the
    cluster has any). `resample`: series with irregular slice spacing are resampled to a regular
    grid (and their masks mapped back onto the received instances) instead of failing; the run's
    notes say so.
    """
    executor = executor or Executor()
    report = SegmentReport()
    jobs: list[SeriesJob] = []
    with session_scope(engine) as session:
        for uid in uids:
            series = store.series_by_uid(session, uid)
            if _finished(store.run_for(session, series, segmenter.version)):
                report.skipped.append(uid)
                if on_series:
                    on_series(uid, "skipped")
                continue
            jobs.append(SeriesJob(uid, tuple(store.instance_paths(session, series)),
                                  store.segmentation_mask_path(masks_dir, segmenter.version, uid), resample))
    if not jobs:
        return report

    if gpu is None:
        gpu = executor.workers_with(GPU) > 0
    resources = {GPU: 1} if gpu and executor.distributed else None
    model = executor.share(segmenter)
    for result in executor.map_per_series(segment_series_files, jobs, args=(model, worker_device), label="segment",
                                          key_of=lambda job: job.series_instance_uid, resources=resources):
        job: SeriesJob = result.item
        outcome: SeriesSegmentation = result.value or SeriesSegmentation(
            None, None, result.error, 0.0, "unknown", dt.datetime.now(dt.UTC).replace(tzinfo=None), ())
        uid = job.series_instance_uid
        if outcome.model_seconds is not None:
            report.model_seconds[uid] = outcome.model_seconds
            report.devices[uid] = outcome.device
        kept = run_in_transaction(engine, lambda session, uid=uid, outcome=outcome: _record(
            session, uid, segmenter, outcome))
        if not kept:
            report.skipped.append(uid)
        elif outcome.error:
            report.failed[uid] = outcome.error
        elif outcome.notes:
            report.notes[uid] = "; ".join(outcome.notes)
        else:
            report.done.append(uid)
            report.seconds[uid] = outcome.seconds
        if on_series:
            on_series(uid, "skipped" if not kept else "failed" if outcome.error else "done")
    return report


def segment_series_files(job: SeriesJob, segmenter: LesionSegmenter, device: str | None = None) -> SeriesSegmentation:
    """Load one series, segment it and write its mask; runs wherever the executor sends it.

    Errors of this series (unreadable files, a model failure) come back in the result: they are
    the series' outcome, recorded like a success, not a reason to stop the run.
    """
    started = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    t0 = time.perf_counter()
    mask_path, timings, error, notes, model_s = None, None, None, [], None
    used = str(getattr(segmenter, "device", "unknown"))
    try:
        segmenter = _for_this_worker(segmenter, device)
        used = str(segmenter.device)
        tl = time.perf_counter()
        volume = load_series(list(job.paths), allow_irregular=job.allow_irregular)
        load_s = time.perf_counter() - tl
        tm = time.perf_counter()
        labels, timings, notes = segment_volume_as_received(segmenter, volume)
        model_s = time.perf_counter() - tm
        timings = {"load_s": load_s, **timings}
        mask_path = write_mask(job.mask_file, labels, volume.affine)
    except Exception as exc:  # noqa: BLE001 - one bad series is recorded and the run goes on
        error = f"{type(exc).__name__}: {exc}"
    return SeriesSegmentation(mask_path, timings, error, time.perf_counter() - t0, used, started, tuple(notes),
                              model_s)


def _finished(run: object) -> bool:
    return (run is not None and run.status == store.RUN_DONE and bool(run.mask_path)
            and Path(run.mask_path).exists())


def _record(session: Session, uid: str, segmenter: LesionSegmenter, outcome: SeriesSegmentation) -> bool:
    """Store one series' outcome; False when another run finished this series first (its result is kept)."""
    series = store.series_by_uid(session, uid)
    if _finished(store.run_for(session, series, segmenter.version)):
        return False
    store.record_run(session, series, model_name=segmenter.name, model_version=segmenter.version,
                     device=outcome.device, status=store.RUN_FAILED if outcome.error else store.RUN_DONE,
                     mask_path=outcome.mask_path, seconds=outcome.seconds, timings=outcome.timings,
                     error=outcome.error, started_at=outcome.started_at, members=list(segmenter.members),
                     notes="; ".join(outcome.notes) or None)
    return True


_ON_DEVICE: dict[tuple[int, str], LesionSegmenter] = {}


def _for_this_worker(segmenter: LesionSegmenter, device: str | None) -> LesionSegmenter:
    """The segmenter on the device this worker should use (a GPU node's CUDA for "auto"), prepared once.

    The client opens the model where it runs (often a CPU-only login node) and ships it; each worker
    re-targets it. Segmenters are dataclasses with a `device` field, so a copy with another device is
    a `dataclasses.replace`; anything else runs where it was opened.
    """
    if device is None or not dataclasses.is_dataclass(segmenter):
        return segmenter
    from imaging.devices import select_device

    target = select_device(device)
    if target == segmenter.device:
        return segmenter
    key = (id(segmenter), str(target))
    if key not in _ON_DEVICE:
        _ON_DEVICE[key] = dataclasses.replace(segmenter, device=target)
    return _ON_DEVICE[key]
