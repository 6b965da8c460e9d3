"""The registry side of biomarkers: which mask feeds which series, and SeriesFeatures rows with provenance.

Every function takes a SQLAlchemy `Session` and leaves committing to the caller. Feature values
are stored as JSON: NaN (a missing value, e.g. the side of a lesion-free scan) is stored as null,
because PostgreSQL's JSON type has no NaN.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Text, cast, select
from sqlalchemy.orm import Session

from biomarkers.series import DEFINITIONS_VERSION
from biomarkers.timecourse import ADMISSION_CT_FEATURES, PATIENT_FEATURES, admission_ct_classes, patient_level_features
from imaging import store as imaging_store
from registry.db.engine import bulk_read
from registry.db.models import Center, Patient, SegmentationRun, Series, SeriesFeatures, Study
from registry.summary import revisions

SOURCE_SEGMENTATION = "segmentation"
SOURCE_MANUAL = "manual"
SOURCE_TRUTH = "truth"
SOURCES = (SOURCE_SEGMENTATION, SOURCE_MANUAL, SOURCE_TRUTH)
# When a series has features from several sources, exports use the first available in this order:
# the pipeline's own segmentation, then a human's, then the synthetic truth.
SOURCE_PREFERENCE = SOURCES


@dataclass(frozen=True)
class MaskJob:
    """One mask to turn into features: its series, where it comes from, and its provenance ids."""

    series_id: int
    series_instance_uid: str
    source: str
    mask_path: Path
    segmentation_run_id: int | None = None
    annotation_id: int | None = None
    model_name: str | None = None  # the segmentation model that made the mask (None: annotation or truth)
    model_version: str | None = None


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def truth_mask_folder(truth_dir: Path) -> Path:
    """`DIR/truth/masks`, `DIR/masks` or `DIR` itself, whichever holds the masks."""
    for folder in (truth_dir / "truth" / "masks", truth_dir / "masks", truth_dir):
        if folder.is_dir() and any(folder.glob("*.nii.gz")):
            return folder
    raise FileNotFoundError(f"{truth_dir}: no <SeriesInstanceUID>.nii.gz masks in truth/masks/, masks/ or the folder")


def mask_jobs(session: Session, source: str = "auto", truth_dir: Path | None = None) -> list[MaskJob]:
    """The masks to extract from: `auto` (latest done segmentation of a series, else its latest manual
    annotation), `manual` (latest manual annotations) or `truth` (masks under `truth_dir` of registered series)."""
    if source == SOURCE_TRUTH:
        if truth_dir is None:
            raise ValueError("source 'truth' needs the study folder (--source truth-dir DIR)")
        uids = {p.name[: -len(".nii.gz")]: p for p in sorted(truth_mask_folder(truth_dir).glob("*.nii.gz"))}
        rows = session.execute(select(Series.id, Series.series_instance_uid)
                               .where(Series.series_instance_uid.in_(list(uids)))).all()
        return sorted((MaskJob(sid, uid, SOURCE_TRUTH, uids[uid]) for sid, uid in rows), key=lambda j: j.series_id)
    if source not in ("auto", SOURCE_MANUAL):
        raise ValueError(f"unknown source {source!r}: expected auto, manual or truth-dir")
    jobs: dict[int, MaskJob] = {}
    for series, ann in imaging_store.latest_annotations(session):
        jobs[series.id] = MaskJob(series.id, series.series_instance_uid, SOURCE_MANUAL, Path(ann.mask_path),
                                  annotation_id=ann.id)
    if source == "auto":
        runs = session.scalars(select(SegmentationRun).where(SegmentationRun.status == imaging_store.RUN_DONE,
                                                             SegmentationRun.mask_path.is_not(None))
                               .order_by(SegmentationRun.series_id, SegmentationRun.finished_at.desc(),
                                         SegmentationRun.id.desc())).all()
        latest: dict[int, SegmentationRun] = {}
        for run in runs:
            latest.setdefault(run.series_id, run)
        uid_of = dict(session.execute(select(Series.id, Series.series_instance_uid)
                                      .where(Series.id.in_(list(latest)))).all())
        for sid, run in latest.items():
            jobs[sid] = MaskJob(sid, uid_of[sid], SOURCE_SEGMENTATION, Path(run.mask_path),
                                segmentation_run_id=run.id, model_name=run.model_name,
                                model_version=run.model_version)
    return [jobs[k] for k in sorted(jobs)]


def stored_features(session: Session, series_id: int, source: str,
                    version: str = DEFINITIONS_VERSION) -> SeriesFeatures | None:
    return session.scalars(select(SeriesFeatures).where(
        SeriesFeatures.series_id == series_id, SeriesFeatures.source == source,
        SeriesFeatures.definitions_version == version)).one_or_none()


def is_current(row: SeriesFeatures | None, job: MaskJob, mask_sha256: str) -> bool:
    """Stored features are current when made from the same mask bytes by the same run/annotation."""
    return (row is not None and row.mask_sha256 == mask_sha256
            and row.segmentation_run_id == job.segmentation_run_id and row.annotation_id == job.annotation_id)


def jsonable(value: Any) -> Any:
    """Python scalars for JSON, NaN and infinities as None."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def save_features(session: Session, job: MaskJob, mask_sha256: str, values: dict[str, Any],
                  lesions: pd.DataFrame, version: str = DEFINITIONS_VERSION) -> SeriesFeatures:
    """Insert, or replace in place, the features of (series, source, version) with their provenance."""
    row = stored_features(session, job.series_id, job.source, version) or SeriesFeatures(
        series_id=job.series_id, source=job.source, definitions_version=version)
    row.segmentation_run_id = job.segmentation_run_id
    row.annotation_id = job.annotation_id
    row.mask_sha256 = mask_sha256
    row.values = jsonable(values)
    row.lesions = jsonable(lesions.to_dict(orient="records"))
    row.computed_at = pd.Timestamp.now("UTC").tz_localize(None).to_pydatetime()
    session.add(row)
    session.flush()
    return row


def _feature_rows(session: Session, columns: dict[str, Any], source: str, version: str,
                  patients: list[int] | None = None) -> pd.DataFrame:
    """One row per series with features of `version` (per series the first source of SOURCE_PREFERENCE, or only
    `source`): `columns` (name -> column expression) and every scalar feature of `values`; `_series_id` too.

    Plain rows through the session's connection, not ORM objects, and the JSON of `values` (not `lesions`) read as
    text and decoded in one json.loads of all rows: at 100,000 series, building ORM objects and decoding JSON row
    by row took seconds. The source is chosen on the integer series id (sorting on UIDs cost more).
    """
    if source != "auto" and source not in SOURCES:
        raise ValueError(f"unknown source {source!r}: expected auto, {', '.join(SOURCES)}")
    q = (select(*(c.label(name) for name, c in columns.items()), SeriesFeatures.source.label("_source"),
                SeriesFeatures.series_id.label("_series_id"), cast(SeriesFeatures.values, Text).label("_values"))
         .join(Series, Series.id == SeriesFeatures.series_id).join(Study, Study.id == Series.study_id)
         .join(Patient, Patient.id == Study.patient_id).join(Center, Center.id == Patient.center_id)
         .where(SeriesFeatures.definitions_version == version))
    if source != "auto":
        q = q.where(SeriesFeatures.source == source)
    if patients is not None:
        q = revisions.restricted(q, Patient.id, patients)
    with bulk_read():
        result = session.connection().execute(q)
        base = pd.DataFrame.from_records(result.all(), columns=list(result.keys()))
        if base.empty:
            return base
        values = decode_json_objects(base["_values"])
    # Missing values (JSON null) as NaN, as a column of numbers has them.
    values = values.where(values.notna(), np.nan).infer_objects()
    base = base.drop(columns="_values")
    table = pd.concat([base, values.drop(columns=[c for c in values.columns if c in base.columns])], axis=1)
    if source == "auto" and table["_series_id"].duplicated().any():
        rank = table["_source"].map({s: i for i, s in enumerate(SOURCE_PREFERENCE)})
        table = (table.assign(_rank=rank).sort_values(["_series_id", "_rank"], kind="stable")
                 .drop_duplicates("_series_id").drop(columns="_rank").reset_index(drop=True))
    return table


def decode_json_objects(texts: pd.Series) -> pd.DataFrame:
    """One column per key of the JSON objects in `texts` (None as an empty object), indexed like `texts`: what
    `pd.DataFrame([json.loads(t) for t in texts])` gives.

    Arrow's JSON reader (pyarrow is a dependency) does it in a third of the time of json.loads at 100,000 series;
    where it refuses the input (a key whose values mix types, or text that is not one object per line) or would
    give something else (arrays for lists), json.loads does it, so the result never depends on which one ran.
    """
    import pyarrow as pa
    import pyarrow.json as pa_json

    lines = [t or "{}" for t in texts]
    try:
        table = pa_json.read_json(io.BytesIO("\n".join(lines).encode()))
        scalar = all(not pa.types.is_nested(f.type) for f in table.schema)  # lists would come back as arrays
        if table.num_rows == len(lines) and table.num_columns and scalar:
            return table.to_pandas().set_axis(texts.index)
    except pa.ArrowInvalid:
        pass
    return pd.DataFrame(json.loads("[" + ",".join(lines) + "]"), index=texts.index)


_SCAN_ORDER = ["days_from_injury", "acquisition_datetime", "series_instance_uid"]  # each patient's scans in time


def series_feature_table(session: Session, source: str = "auto", version: str = DEFINITIONS_VERSION) -> pd.DataFrame:
    """One row per series: keys, provenance and every scalar feature (wide). `auto` picks, per series,
    the first source present in SOURCE_PREFERENCE; a named source keeps only that one.

    `timepoint` numbers each patient's scans 0, 1, ... by day from injury, then acquisition time.
    """
    table = _feature_rows(session, {
        "center": Center.code, "patient_id": Patient.pseudo_id, "study_instance_uid": Study.study_instance_uid,
        "series_instance_uid": Series.series_instance_uid, "days_from_injury": Series.days_from_injury,
        "acquisition_datetime": Series.acquisition_datetime, "source": SeriesFeatures.source,
        "definitions_version": SeriesFeatures.definitions_version, "mask_sha256": SeriesFeatures.mask_sha256,
        "segmentation_run_id": SeriesFeatures.segmentation_run_id, "annotation_id": SeriesFeatures.annotation_id,
        "computed_at": SeriesFeatures.computed_at}, source, version)
    if table.empty:
        return pd.DataFrame()
    table = table.drop(columns=["_source", "_series_id"])
    table = table.sort_values(["center", "patient_id", *_SCAN_ORDER], na_position="last",
                              kind="stable").reset_index(drop=True)
    table.insert(4, "timepoint", table.groupby(["center", "patient_id"]).cumcount())
    return table


def patient_feature_table(session: Session, source: str = "auto", version: str = DEFINITIONS_VERSION,
                          with_ct_classes: bool = False) -> pd.DataFrame:
    """The patient-level features (columns `center`, `patient_id` + biomarkers.timecourse.PATIENT_FEATURES; every
    feature a float, `n_scans` an integer), and with `with_ct_classes` the admission scan's CT classifications
    (timecourse.ADMISSION_CT_FEATURES) after them; sorted by center and pseudonym.

    What `patient_level_features(series_feature_table(...))` gives. The default (`auto`, the current definitions)
    is read from the per-patient summaries (`biomarkers.patient_summary`), recomputed first for the patients whose
    rows changed; any other source or version is computed from every series (`patient_features_by_id`).
    """
    if source == "auto" and version == DEFINITIONS_VERSION:
        from biomarkers import patient_summary  # it reads through this module's full query

        features = patient_summary.read(session, with_ct_classes=with_ct_classes)
    else:
        features = patient_features_by_id(session, source, version, with_ct_classes=with_ct_classes)
    return named_patient_features(session, features, with_ct_classes)


def patient_features_by_id(session: Session, source: str = "auto", version: str = DEFINITIONS_VERSION,
                           patients: list[int] | None = None, with_ct_classes: bool = False) -> pd.DataFrame:
    """The patient-level features of every patient with series features (or at least those of `patients`, by
    patient id), computed from their series' features: indexed by patient id, columns PATIENT_FEATURES (every
    feature a float, `n_scans` an integer), and with `with_ct_classes` ADMISSION_CT_FEATURES after them.

    Computed on the integer patient id (the scans ordered as in `series_feature_table`, ties by series UID): grouping
    and sorting 100,000 rows on two string keys cost most of the time.
    """
    columns = feature_columns(with_ct_classes)
    scans = _feature_rows(session, {
        "_patient": Patient.id, "series_instance_uid": Series.series_instance_uid,
        "days_from_injury": Series.days_from_injury, "acquisition_datetime": Series.acquisition_datetime},
        source, version, patients)
    if scans.empty:
        return with_feature_types(pd.DataFrame(columns=columns, index=pd.Index([], name="_patient")))
    scans = scans.sort_values(["_patient", *_SCAN_ORDER], na_position="last", kind="stable").reset_index(drop=True)
    scans["timepoint"] = scans.groupby("_patient").cumcount()
    features = patient_level_features(scans, keys=["_patient"])
    if with_ct_classes:
        features = features.join(admission_ct_classes(scans, keys=["_patient"]))
    return with_feature_types(features)


def feature_columns(with_ct_classes: bool = False) -> list[str]:
    """PATIENT_FEATURES, and with `with_ct_classes` ADMISSION_CT_FEATURES after them."""
    return [*PATIENT_FEATURES, *(ADMISSION_CT_FEATURES if with_ct_classes else ())]


# The admission CT classifications' text columns (the rest are numbers).
_CT_TEXT = ("adm_marshall_ct_class_missing", "adm_ct_edh_source", "adm_ct_tsah_source")


def with_feature_types(features: pd.DataFrame) -> pd.DataFrame:
    """PATIENT_FEATURES as numbers: floats, `n_scans` an integer (whether a count column comes out as integers
    otherwise depends on which patients are in the table); the admission CT classifications present as floats,
    their sources and missing components as text or None."""
    types = {c: ("int64" if c == "n_scans" else "float64") for c in PATIENT_FEATURES}
    types.update({c: "float64" for c in ADMISSION_CT_FEATURES if c in features.columns and c not in _CT_TEXT})
    out = features.astype(types)
    for c in _CT_TEXT:
        if c in out.columns:
            out[c] = out[c].astype(object).where(out[c].notna(), None)
    return out


def named_patient_features(session: Session, features: pd.DataFrame, with_ct_classes: bool = False) -> pd.DataFrame:
    """Patient features indexed by patient id named by `center` and `patient_id` (pseudonym), sorted by them."""
    columns = feature_columns(with_ct_classes)
    if features.empty:
        return pd.DataFrame(columns=["center", "patient_id", *columns])
    names = pd.DataFrame(session.connection().execute(
        select(Patient.id, Center.code, Patient.pseudo_id).join(Center, Center.id == Patient.center_id)).all(),
        columns=["_patient", "center", "patient_id"]).set_index("_patient")
    features = names.join(features, how="inner")
    return features.sort_values(["center", "patient_id"]).reset_index(drop=True)[["center", "patient_id", *columns]]
