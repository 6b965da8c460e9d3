"""Segment registered series with one model: masks as NIfTI, one SegmentationRun per series.

Each series is its own transaction: a failure is recorded (status failed, the error) and the run
goes on; a series already done by the same model version is skipped (idempotent).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine

from imaging import store
from imaging.regrid import labels_to_slices, regular_grid, regular_volume, slice_step_for_resampling
from imaging.segmenters import LesionSegmenter
from imaging.volume import Volume, load_series, write_mask
from registry.db import session_scope


@dataclass
class SegmentReport:
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)  # what was done to a series (resampled, ...)


def series_uids_to_segment(engine: Engine, uids: list[str] | None, include_pending: bool) -> list[str]:
    with session_scope(engine) as session:
        return [s.series_instance_uid for s in store.series_to_segment(session, uids, include_pending)]


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
    resample: bool = False,
) -> SegmentReport:
    """Segment `uids` (already chosen by QC status) with `segmenter`; `on_series(uid, outcome)` after each.

    `resample`: series with irregular slice spacing are resampled to a regular grid (and their
    masks mapped back onto the received instances) instead of failing; the run's notes say so.
    """
    report = SegmentReport()
    for uid in uids:
        with session_scope(engine) as session:
            series = store.series_by_uid(session, uid)
            existing = store.run_for(session, series, segmenter.version)
            if existing is not None and existing.status == store.RUN_DONE and existing.mask_path \
                    and Path(existing.mask_path).exists():
                report.skipped.append(uid)
                if on_series:
                    on_series(uid, "skipped")
                continue
            paths = store.instance_paths(session, series)
        started = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        t0 = time.perf_counter()
        mask_path, timings, error, notes = None, None, None, []
        try:
            tl = time.perf_counter()
            volume = load_series(paths, allow_irregular=resample)
            load_s = time.perf_counter() - tl
            labels, timings, notes = segment_volume_as_received(segmenter, volume)
            timings = {"load_s": load_s, **timings}
            mask_file = store.segmentation_mask_path(masks_dir, segmenter.version, uid)
            mask_path = write_mask(mask_file, labels, volume.affine)
        except Exception as exc:  # noqa: BLE001 - one bad series is recorded and the run goes on
            error = f"{type(exc).__name__}: {exc}"
        seconds = time.perf_counter() - t0
        with session_scope(engine) as session:
            series = store.series_by_uid(session, uid)
            store.record_run(session, series, model_name=segmenter.name, model_version=segmenter.version,
                             device=str(segmenter.device), status=store.RUN_FAILED if error else store.RUN_DONE,
                             mask_path=mask_path, seconds=seconds, timings=timings, error=error, started_at=started,
                             members=list(segmenter.members), notes="; ".join(notes) or None)
        if notes and not error:
            report.notes[uid] = "; ".join(notes)
        if error:
            report.failed[uid] = error
        else:
            report.done.append(uid)
            report.seconds[uid] = seconds
        if on_series:
            on_series(uid, "failed" if error else "done")
    return report
