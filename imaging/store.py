"""The registry side of imaging: which series to segment or train on, their files, and run records.

Every function takes a SQLAlchemy `Session` and leaves committing to the caller.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from imaging.volume import Volume, load_series
from registry.db.models import (
    QC_PASSED,
    QC_PENDING,
    RUN_DONE,
    Center,
    CorrectionAgreement,
    ManualAnnotation,
    Patient,
    SegmentationRun,
    Series,
    Study,
    StudyModel,
)
from registry.db.models import RUN_FAILED as RUN_FAILED  # re-exported: segment.py records failures as store.RUN_FAILED
from registry.instance_files import instance_file_paths


def series_by_uid(session: Session, uid: str) -> Series:
    series = session.scalars(select(Series).where(Series.series_instance_uid == uid)).one_or_none()
    if series is None:
        raise LookupError(f"no series with SeriesInstanceUID {uid} in the registry")
    return series


def series_to_segment(session: Session, uids: list[str] | None = None, include_pending: bool = False,
                      centers: list[str] | None = None) -> list[Series]:
    """QC-passed series (and pending ones when asked), all or those named, of the given centers (default all);
    naming a series of another status is an error, and so is an unknown center code."""
    statuses = [QC_PASSED, QC_PENDING] if include_pending else [QC_PASSED]
    if uids:
        chosen = [series_by_uid(session, uid) for uid in uids]
        refused = [f"{s.series_instance_uid} ({s.qc_status})" for s in chosen if s.qc_status not in statuses]
        if refused:
            raise ValueError(f"not QC-passed{' or pending' if include_pending else ''}: {', '.join(refused)}")
        return chosen
    query = select(Series).where(Series.qc_status.in_(statuses))
    if centers:
        known = set(session.scalars(select(Center.code).where(Center.code.in_(centers))))
        if unknown := sorted(set(centers) - known):
            raise ValueError(f"no center {', '.join(unknown)} in the registry (`ctstudy registry progress` lists them)")
        query = (query.join(Study, Series.study_id == Study.id).join(Patient, Study.patient_id == Patient.id)
                 .join(Center, Patient.center_id == Center.id).where(Center.code.in_(centers)))
    return list(session.scalars(query.order_by(Series.id)))


def instance_paths(session: Session, series: Series) -> list[Path]:
    paths = instance_file_paths(session, series.id)  # archive copies, or in-place files under their source root
    if not paths:
        raise LookupError(f"series {series.series_instance_uid} has no stored instances")
    return paths


def load_series_volume(session: Session, series: Series) -> Volume:
    return load_series(instance_paths(session, series))


def patient_pseudo_id(session: Session, series: Series) -> str:
    """The pseudonym of the series' patient (what exports carry instead of any identifier)."""
    return session.scalars(select(Patient.pseudo_id).join(Study, Study.patient_id == Patient.id)
                           .where(Study.id == series.study_id)).one()


def patient_key(session: Session, series: Series) -> str:
    """The training split unit: the registry's patient row (pseudonymous)."""
    study = session.get(Study, series.study_id)
    return f"patient-{study.patient_id}" if study else f"series-{series.id}"


def latest_annotations(session: Session) -> list[tuple[Series, ManualAnnotation]]:
    """Each annotated series with its most recently imported manual annotation."""
    rows = session.execute(
        select(Series, ManualAnnotation).join(ManualAnnotation, ManualAnnotation.series_id == Series.id)
        .order_by(Series.id, ManualAnnotation.imported_at.desc(), ManualAnnotation.id.desc())
    ).all()
    seen: dict[int, tuple[Series, ManualAnnotation]] = {}
    for series, ann in rows:
        seen.setdefault(series.id, (series, ann))
    return list(seen.values())


def run_for(session: Session, series: Series, model_version: str) -> SegmentationRun | None:
    return session.scalars(select(SegmentationRun).where(
        SegmentationRun.series_id == series.id, SegmentationRun.model_version == model_version)).one_or_none()


def latest_done_run(session: Session, series: Series, model_version: str | None = None) -> SegmentationRun | None:
    """The most recent successful segmentation of a series (by a given model version when named)."""
    q = select(SegmentationRun).where(SegmentationRun.series_id == series.id, SegmentationRun.status == RUN_DONE)
    if model_version:
        q = q.where(SegmentationRun.model_version == model_version)
    return session.scalars(q.order_by(SegmentationRun.finished_at.desc(), SegmentationRun.id.desc())).first()


def record_run(session: Session, series: Series, *, model_name: str, model_version: str, device: str, status: str,
               mask_path: Path | None, seconds: float, timings: dict | None, error: str | None,
               started_at: dt.datetime, members: list[str] | None = None,
               notes: str | None = None) -> SegmentationRun:
    """Insert, or overwrite a failed earlier attempt of, the run of this model version on this series."""
    run = run_for(session, series, model_version) or SegmentationRun(series_id=series.id, model_version=model_version)
    run.model_name = model_name
    run.device = device
    run.status = status
    run.error = error
    run.mask_path = str(mask_path) if mask_path else None
    run.seconds = seconds
    run.timings = timings
    run.started_at = started_at
    run.model_members = members
    run.notes = notes
    run.finished_at = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    session.add(run)
    session.flush()
    return run


def segmentation_mask_path(masks_dir: Path, model_version: str, series_uid: str) -> Path:
    """Masks of one model version in their own folder, so that two models never overwrite each other."""
    return masks_dir / "segmentations" / model_version[:16] / f"{series_uid}.nii.gz"


def distillation_candidates(session: Session, teacher_version: str) -> list[dict]:
    """Every QC-passed series with what sampling needs: patient, center, scanner, and what is already labelled.

    One record per series: `series_instance_uid`, `patient_key`, `center`, `scanner` (manufacturer and
    model, as the headers give them), `annotated` (has a manual annotation), `teacher_done` (the teacher
    version has a finished mask of it).
    """
    rows = session.execute(
        select(Series.id, Series.series_instance_uid, Series.manufacturer, Series.manufacturer_model,
               Study.patient_id, Center.code)
        .join(Study, Study.id == Series.study_id).join(Patient, Patient.id == Study.patient_id)
        .join(Center, Center.id == Patient.center_id)
        .where(Series.qc_status == QC_PASSED).order_by(Series.id)
    ).all()
    annotated = set(session.scalars(select(ManualAnnotation.series_id).distinct()))
    done = {sid: path for sid, path in session.execute(
        select(SegmentationRun.series_id, SegmentationRun.mask_path).where(
            SegmentationRun.model_version == teacher_version, SegmentationRun.status == RUN_DONE))}
    return [{
        "series_instance_uid": uid,
        "patient_key": f"patient-{patient_id}",
        "center": center,
        "scanner": " ".join(v for v in (manufacturer, model) if v) or "unknown scanner",
        "annotated": sid in annotated,
        "teacher_done": bool(done.get(sid)) and Path(done[sid]).exists(),
    } for sid, uid, manufacturer, model, patient_id, center in rows]


def latest_annotation_for(session: Session, series: Series) -> ManualAnnotation | None:
    """The most recently imported manual annotation of a series, if any."""
    return session.scalars(select(ManualAnnotation).where(ManualAnnotation.series_id == series.id)
                           .order_by(ManualAnnotation.imported_at.desc(), ManualAnnotation.id.desc())).first()


def record_correction(session: Session, annotation: ManualAnnotation, run: SegmentationRun,
                      changes: list[dict]) -> None:
    """Store (or replace) the per-class changes of `annotation` against the run's mask it corrects."""
    for row in changes:
        existing = session.scalars(select(CorrectionAgreement).where(
            CorrectionAgreement.annotation_id == annotation.id, CorrectionAgreement.segmentation_run_id == run.id,
            CorrectionAgreement.lesion_class == row["class"])).one_or_none()
        dice = None if row["dice"] is None or row["dice"] != row["dice"] else float(row["dice"])  # NaN -> NULL
        values = {"dice": dice, "model_ml": float(row["model_ml"]), "corrected_ml": float(row["corrected_ml"]),
                  "overlap_ml": float(row["overlap_ml"]),
                  "annotated_fraction": float(row.get("annotated_fraction", 1.0)),
                  "computed_at": dt.datetime.now(dt.UTC).replace(tzinfo=None)}
        if existing is None:
            session.add(CorrectionAgreement(annotation_id=annotation.id, segmentation_run_id=run.id,
                                            lesion_class=row["class"], **values))
        else:
            for key, value in values.items():
                setattr(existing, key, value)
    session.flush()


def correction_rows(session: Session, center: str | None = None) -> list[dict]:
    """Every stored correction and class, with its center, annotator, model and import time."""
    q = (select(Center.code, Series.series_instance_uid, ManualAnnotation.annotator, ManualAnnotation.imported_at,
                SegmentationRun.model_name, SegmentationRun.model_version, CorrectionAgreement.lesion_class,
                CorrectionAgreement.dice, CorrectionAgreement.model_ml, CorrectionAgreement.corrected_ml,
                CorrectionAgreement.overlap_ml, CorrectionAgreement.annotated_fraction)
         .join(ManualAnnotation, ManualAnnotation.id == CorrectionAgreement.annotation_id)
         .join(SegmentationRun, SegmentationRun.id == CorrectionAgreement.segmentation_run_id)
         .join(Series, Series.id == ManualAnnotation.series_id)
         .join(Study, Study.id == Series.study_id).join(Patient, Patient.id == Study.patient_id)
         .join(Center, Center.id == Patient.center_id))
    if center is not None:
        q = q.where(Center.code == center)
    keys = ("center", "series_instance_uid", "annotator", "imported_at", "model_name", "model_version", "class",
            "dice", "model_ml", "corrected_ml", "overlap_ml", "annotated_fraction")
    return [dict(zip(keys, row, strict=True)) for row in session.execute(q.order_by(CorrectionAgreement.id))]


def uncorrected_segmented_series(session: Session, center: str, limit: int,
                                 model_version: str | None = None) -> list[Series]:
    """Up to `limit` series of `center` with a finished segmentation (by that model) and no manual annotation."""
    annotated = select(ManualAnnotation.series_id)
    done = select(SegmentationRun.series_id).where(SegmentationRun.status == RUN_DONE)
    if model_version:
        done = done.where(SegmentationRun.model_version == model_version)
    q = (select(Series).join(Study, Study.id == Series.study_id).join(Patient, Patient.id == Study.patient_id)
         .join(Center, Center.id == Patient.center_id)
         .where(Center.code == center, Series.id.in_(done), Series.id.not_in(annotated))
         .order_by(Series.id).limit(limit))
    return list(session.scalars(q))


def register_model(session: Session, *, version: str, name: str, path: Path, parent_version: str | None,
                   card: dict, actor: str) -> StudyModel:
    """Record a model the study made (the same version again updates its path and card)."""
    row = session.scalars(select(StudyModel).where(StudyModel.version == version)).one_or_none()
    if row is None:
        row = StudyModel(version=version, created_by=actor)
        session.add(row)
    row.name, row.path, row.parent_version, row.card = name, str(path), parent_version, card
    session.flush()
    return row


def promote_model(session: Session, version: str) -> StudyModel:
    """Make a registered model the study's default for `imaging segment`."""
    row = session.scalars(select(StudyModel).where(StudyModel.version == version)).one_or_none()
    if row is None:
        raise LookupError(f"no study model of version {version[:16]}: `ctstudy imaging adapt` registers them")
    row.promoted_at = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    session.flush()
    return row


def promoted_model(session: Session) -> StudyModel | None:
    """The study's default segmentation model: the last one promoted, if any."""
    return session.scalars(select(StudyModel).where(StudyModel.promoted_at.is_not(None))
                           .order_by(StudyModel.promoted_at.desc(), StudyModel.id.desc())).first()


def adaptation_candidates(session: Session) -> list[dict]:
    """QC-passed series with their patient key, center and latest manual annotation (None when unannotated)."""
    latest = {series.id: ann for series, ann in latest_annotations(session)}
    rows = session.execute(
        select(Series.id, Series.series_instance_uid, Patient.id, Center.code)
        .join(Study, Study.id == Series.study_id).join(Patient, Patient.id == Study.patient_id)
        .join(Center, Center.id == Patient.center_id)
        .where((Series.qc_status == QC_PASSED) | Series.id.in_(latest))
        .order_by(Series.id)).all()
    return [{"series_id": sid, "series_instance_uid": uid, "patient_key": f"{center}:{pid}", "center": center,
             "annotation": latest[sid].mask_path if sid in latest else None} for sid, uid, pid, center in rows]
