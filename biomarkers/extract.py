"""Turn registered masks into stored features: one series at a time, skipping what is current.

Each series is read (DICOM through imaging.volume, mask through imaging.volume with its grid
checked), computed and committed on its own, so a bad file costs only its own series: it is
reported with its SeriesInstanceUID and the reason, and the features already stored stay.

The CT classifications take the components a reviewer or the clinical record set for the series
(`biomarkers.review_components`) when the features are stored.

The computation runs where the `executor` sends it (`cluster.executor`: this process by default,
one Dask task per series with `--scheduler`); the features are stored here, by the client, one
transaction per series.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import Engine

from biomarkers import review_components, store
from biomarkers.series import DEFINITIONS_VERSION, FeatureSettings, series_features
from cluster.executor import Executor
from imaging import store as imaging_store
from imaging.volume import load_series, read_mask_for
from registry.db.engine import run_in_transaction, session_scope
from registry.db.models import Series
from registry.db.store import audit

ProgressCallback = Callable[[int, int, str], None]


@dataclass
class ExtractReport:
    computed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (SeriesInstanceUID, reason)
    seconds: float = 0.0


@dataclass(frozen=True)
class FeatureTask:
    """One mask and its series' DICOM files: what a worker needs, nothing from the database."""

    job: store.MaskJob
    paths: tuple[Path, ...]


def extract_features(engine: Engine, jobs: list[store.MaskJob], actor: str = "cli",
                     settings: FeatureSettings = FeatureSettings(), force: bool = False,
                     progress: ProgressCallback | None = None, executor: Executor | None = None) -> ExtractReport:
    """Compute and store the features of every job whose stored features are not current (all with `force`)."""
    executor = executor or Executor()
    report = ExtractReport()
    start = time.perf_counter()
    done = 0

    def advance(uid: str) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, len(jobs), uid)

    tasks: list[FeatureTask] = []
    with session_scope(engine) as session:
        current = []
        for job in jobs:
            uid = job.series_instance_uid
            try:
                sha = store.file_sha256(job.mask_path)
                stored = store.stored_features(session, job.series_id, job.source)
                if not force and store.is_current(stored, job, sha):
                    current.append(stored)
                    report.skipped.append(uid)
                    advance(uid)
                    continue
                paths = imaging_store.instance_paths(session, session.get(Series, job.series_id))
            except (ValueError, LookupError, OSError) as exc:
                report.failed.append((uid, f"{type(exc).__name__}: {exc}"))
                advance(uid)
                continue
            tasks.append(FeatureTask(job, tuple(paths)))
        # Masks unchanged, but a component set since (a clinical record's tSAH or surgery field imported after
        # extraction, a reviewer's setting) may change the scores: those are recomputed in place.
        review_components.rescore_if_changed(session, current, settings.min_lesion_ml)

    for result in executor.map_per_series(features_from_files, tasks, args=(settings,), label="features",
                                          key_of=lambda task: task.job.series_instance_uid):
        job = result.item.job
        if result.error is None:
            sha, values, lesions = result.value
            run_in_transaction(engine, lambda session, job=job, sha=sha, values=values, lesions=lesions:
                               store.save_features(session, job, sha, with_set_components(session, job, values,
                                                                                          settings),
                                                   lesions))
            report.computed.append(job.series_instance_uid)
        else:
            report.failed.append((job.series_instance_uid, result.error))
        advance(job.series_instance_uid)
    report.seconds = time.perf_counter() - start
    with session_scope(engine) as session:
        audit(session, actor=actor, action="biomarkers.extract", entity_type="series_features",
              after={"definitions_version": DEFINITIONS_VERSION, "computed": len(report.computed),
                     "skipped": len(report.skipped), "failed": len(report.failed)})
    return report


def with_set_components(session, job: store.MaskJob, values: dict[str, Any],
                        settings: FeatureSettings) -> dict[str, Any]:
    """The features with the CT-classification components a reviewer or the clinical record set for the series
    (`biomarkers.review_components`) in place of the measured ones."""
    overrides = review_components.component_overrides(session, job.series_id)
    return review_components.apply_components(values, overrides, settings.min_lesion_ml) if overrides else values


def features_from_files(task: FeatureTask, settings: FeatureSettings) -> tuple[str, dict[str, Any], pd.DataFrame]:
    """(mask SHA-256, scalar features, per-lesion table) of one series; runs wherever the executor sends it."""
    sha = store.file_sha256(task.job.mask_path)
    volume = load_series(list(task.paths))
    labels = read_mask_for(task.job.mask_path, volume)
    values, lesions = series_features(volume.hu, labels, volume.spacing, volume.affine, settings,
                                      model_name=task.job.model_name, model_version=task.job.model_version)
    return sha, values, lesions
