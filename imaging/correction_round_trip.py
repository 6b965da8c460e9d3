"""The registry side of the correction round trip (`imaging.correction`): export a package, import its corrections.

Export writes, per series, the latest (or a named model's) finished mask, the CT in HU on its grid and the
DICOM SEG, and lists in the package's manifest the run each mask came from. Import takes the corrected
masks in as manual annotations (`registry.annotations.import_annotations`: grid checks, audit, every
version kept) and stores, per annotation and lesion class, how much it differs from the run's mask it
corrects. Every function takes a SQLAlchemy `Session` and leaves committing to the caller.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sqlalchemy import select

from imaging import store
from imaging.correction import (
    correction_changes,
    masks_folder,
    package_paths,
    read_manifest,
    write_manifest,
)
from imaging.volume import load_series, read_mask, read_mask_for, write_hu, write_mask
from registry.annotations import AnnotationImportReport, import_annotations
from registry.db.models import SegmentationRun, Series
from registry.home import Home


@dataclass
class ExportedSeries:
    series_instance_uid: str
    model_name: str
    model_version: str
    slices_with_findings: int


@dataclass
class CorrectionImport:
    annotations: AnnotationImportReport
    changes: list[dict] = field(default_factory=list)  # per corrected series and class
    not_compared: list[tuple[str, str]] = field(default_factory=list)  # (series UID, why no comparison)


def export_corrections(session, home: Home, series: list[Series], out: Path,  # noqa: ANN001 - Session
                       model_version: str | None = None) -> list[ExportedSeries]:
    """Write the correction package of `series` under `out`; a series without a finished mask is an error."""
    from imaging.dicom_seg import segmentation_dataset  # highdicom: imported only when a package is written

    jobs = []
    for s in series:
        run = store.latest_done_run(session, s, model_version)
        if run is None or not run.mask_path:
            raise LookupError(f"series {s.series_instance_uid} has no finished segmentation"
                              + (" by that model" if model_version else "")
                              + ": run `ctstudy imaging segment` first")
        jobs.append((s, run))
    exported, manifest = [], {}
    for s, run in jobs:
        paths = store.instance_paths(session, s)
        volume = load_series(paths)
        labels = read_mask_for(run.mask_path, volume)
        where = package_paths(out, s.series_instance_uid)
        write_mask(where["mask"], labels, volume.affine)
        write_hu(where["ct"], volume.hu, volume.affine)
        seg = segmentation_dataset(paths, labels, volume.sop_instance_uids, run.model_name, run.model_version,
                                   identity=(home.secret(), store.patient_pseudo_id(session, s)))
        where["seg"].parent.mkdir(parents=True, exist_ok=True)
        seg.save_as(where["seg"])
        manifest[s.series_instance_uid] = {"segmentation_run_id": run.id, "model_name": run.model_name,
                                           "model_version": run.model_version}
        exported.append(ExportedSeries(s.series_instance_uid, run.model_name, run.model_version,
                                       int((labels > 0).any(axis=(1, 2)).sum())))
    write_manifest(out, manifest)
    return exported


def _run_corrected(session, series: Series, listed: dict | None) -> SegmentationRun | None:  # noqa: ANN001
    """The run whose mask the annotator corrected: the one the manifest names, else the series' latest."""
    if listed is not None:
        run = session.get(SegmentationRun, listed.get("segmentation_run_id"))
        if run is not None and run.series_id == series.id and run.model_version == listed.get("model_version"):
            return run
    return store.latest_done_run(session, series)


def import_corrections(session, home: Home, folder: Path, actor: str,  # noqa: ANN001 - Session
                       annotator: str | None) -> CorrectionImport:
    """Import a package's corrected masks as manual annotations and measure what each one changed."""
    manifest = read_manifest(folder)
    report = CorrectionImport(import_annotations(session, masks_folder(folder), home.masks_dir, actor, annotator,
                                                 key=home.secret()))
    for uid in report.annotations.imported:
        series = session.scalars(select(Series).where(Series.series_instance_uid == uid)).one()
        annotation = store.latest_annotation_for(session, series)
        run = _run_corrected(session, series, manifest.get(uid))
        if run is None or not run.mask_path or not Path(run.mask_path).exists():
            report.not_compared.append((uid, "no model mask to compare with: the series was never segmented"))
            continue
        corrected, affine = read_mask(annotation.mask_path)
        model_labels, _ = read_mask(run.mask_path)
        if model_labels.shape != corrected.shape:
            report.not_compared.append((uid, f"the model's mask {model_labels.shape} and the correction "
                                             f"{corrected.shape} are on different grids"))
            continue
        voxel_ml = float(abs(np.linalg.det(affine[:3, :3]))) / 1000.0
        changes = correction_changes(model_labels, corrected, voxel_ml)
        store.record_correction(session, annotation, run, changes)
        report.changes.extend({"series_instance_uid": uid, "model_name": run.model_name, **c} for c in changes)
    return report
