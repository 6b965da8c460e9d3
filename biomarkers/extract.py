"""Turn registered masks into stored features: one series at a time, skipping what is current.

Each series is read (DICOM through imaging.store, mask through imaging.volume with its grid
checked), computed and committed on its own, so a bad file costs only its own series: it is
reported with its SeriesInstanceUID and the reason, and the features already stored stay.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Engine

from biomarkers import store
from biomarkers.series import DEFINITIONS_VERSION, FeatureSettings, series_features
from imaging import store as imaging_store
from imaging.volume import read_mask_for
from registry.db import session_scope
from registry.models import Series
from registry.store import audit

ProgressCallback = Callable[[int, int, str], None]


@dataclass
class ExtractReport:
    computed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (SeriesInstanceUID, reason)
    seconds: float = 0.0


def extract_features(engine: Engine, jobs: list[store.MaskJob], actor: str = "cli",
                     settings: FeatureSettings = FeatureSettings(), force: bool = False,
                     progress: ProgressCallback | None = None) -> ExtractReport:
    """Compute and store the features of every job whose stored features are not current (all with `force`)."""
    report = ExtractReport()
    start = time.perf_counter()
    for i, job in enumerate(jobs):
        uid = job.series_instance_uid
        try:
            sha = store.file_sha256(job.mask_path)
            with session_scope(engine) as session:
                row = store.stored_features(session, job.series_id, job.source)
                if not force and store.is_current(row, job, sha):
                    report.skipped.append(uid)
                else:
                    volume = imaging_store.load_series_volume(session, session.get(Series, job.series_id))
                    labels = read_mask_for(job.mask_path, volume)
                    values, lesions = series_features(volume.hu, labels, volume.spacing, volume.affine, settings)
                    store.save_features(session, job, sha, values, lesions)
                    report.computed.append(uid)
        except (ValueError, LookupError, OSError) as exc:
            report.failed.append((uid, f"{type(exc).__name__}: {exc}"))
        if progress is not None:
            progress(i + 1, len(jobs), uid)
    report.seconds = time.perf_counter() - start
    with session_scope(engine) as session:
        audit(session, actor=actor, action="biomarkers.extract", entity_type="series_features",
              after={"definitions_version": DEFINITIONS_VERSION, "computed": len(report.computed),
                     "skipped": len(report.skipped), "failed": len(report.failed)})
    return report
