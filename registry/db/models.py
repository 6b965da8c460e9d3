"""The study database: SQLAlchemy 2 typed models, the one source of truth.

Every change here is an Alembic migration in `registry/db/migrations/versions` (`ctstudy init`
upgrades to head). Vocabulary follows DICOM (SeriesInstanceUID, SOPInstanceUID) so that
messages and queries read like the standard.

No direct identifiers are stored: `Patient.pseudo_id` is a keyed hash of the center's own
patient ID (see `registry.deid.pseudonym`), and names, birth dates and original IDs never enter.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


# Named constraints, so that later migrations can alter them on SQLite (batch mode) and PostgreSQL alike.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


# QC status of a series. `auto_failed` is set by the automatic checks at ingest; a coordinator's
# decision (`passed` / `failed`) overrides it and is kept, with the automatic one, in QCDecision.
QC_PENDING = "pending"
QC_AUTO_FAILED = "auto_failed"
QC_PASSED = "passed"
QC_FAILED = "failed"
QC_STATUSES = (QC_PENDING, QC_AUTO_FAILED, QC_PASSED, QC_FAILED)

# Status of a SegmentationRun (imaging writes them; the registry's progress counts the finished ones).
RUN_DONE = "done"
RUN_FAILED = "failed"

# Status of an ingest run.
INGEST_RUNNING = "running"
INGEST_DONE = "done"
INGEST_INTERRUPTED = "interrupted"

ROLES = ("coordinator", "statistician", "investigator", "admin")


class Center(Base):
    __tablename__ = "center"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)

    patients: Mapped[list[Patient]] = relationship(back_populates="center")


class Patient(Base):
    __tablename__ = "patient"

    id: Mapped[int] = mapped_column(primary_key=True)
    pseudo_id: Mapped[str] = mapped_column(String(40), unique=True)
    center_id: Mapped[int] = mapped_column(ForeignKey("center.id"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)

    center: Mapped[Center] = relationship(back_populates="patients")
    studies: Mapped[list[Study]] = relationship(back_populates="patient")
    clinical: Mapped[ClinicalRecord | None] = relationship(back_populates="patient")
    outcome: Mapped[Outcome | None] = relationship(back_populates="patient")


class ClinicalRecord(Base):
    """Admission clinical data: the IMPACT predictors and CT findings read by the center."""

    __tablename__ = "clinical_record"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id"), unique=True)
    injury_datetime: Mapped[dt.datetime | None] = mapped_column(DateTime)
    age: Mapped[float | None] = mapped_column(Float)
    sex: Mapped[str | None] = mapped_column(String(1))
    gcs_total: Mapped[int | None] = mapped_column(Integer)
    gcs_motor: Mapped[int | None] = mapped_column(Integer)
    pupils_unreactive: Mapped[int | None] = mapped_column(Integer)  # 0, 1 or 2 pupils unreactive
    hypoxia: Mapped[bool | None] = mapped_column(Boolean)
    hypotension: Mapped[bool | None] = mapped_column(Boolean)
    glucose_mmol_l: Mapped[float | None] = mapped_column(Float)
    hemoglobin_g_dl: Mapped[float | None] = mapped_column(Float)
    marshall_ct: Mapped[int | None] = mapped_column(Integer)  # Marshall CT class I-VI as 1-6
    tsah: Mapped[bool | None] = mapped_column(Boolean)
    edh: Mapped[bool | None] = mapped_column(Boolean)
    major_extracranial_injury: Mapped[bool | None] = mapped_column(Boolean)
    evacuated_mass_lesion: Mapped[bool | None] = mapped_column(Boolean)  # surgery: Marshall class V
    imported_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)

    patient: Mapped[Patient] = relationship(back_populates="clinical")


class Outcome(Base):
    __tablename__ = "outcome"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id"), unique=True)
    gos_6m: Mapped[int | None] = mapped_column(Integer)  # Glasgow Outcome Scale 1 (dead) - 5
    died: Mapped[bool | None] = mapped_column(Boolean)
    days_to_death_or_censor: Mapped[float | None] = mapped_column(Float)
    imported_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)

    patient: Mapped[Patient] = relationship(back_populates="outcome")


class Study(Base):
    __tablename__ = "study"

    id: Mapped[int] = mapped_column(primary_key=True)
    study_instance_uid: Mapped[str] = mapped_column(String(64), unique=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id"), index=True)
    study_datetime: Mapped[dt.datetime | None] = mapped_column(DateTime)
    description: Mapped[str | None] = mapped_column(String(200))

    patient: Mapped[Patient] = relationship(back_populates="studies")
    series: Mapped[list[Series]] = relationship(back_populates="study")


class Series(Base):
    __tablename__ = "series"

    id: Mapped[int] = mapped_column(primary_key=True)
    series_instance_uid: Mapped[str] = mapped_column(String(64), unique=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("study.id"), index=True)
    modality: Mapped[str | None] = mapped_column(String(16))
    series_number: Mapped[int | None] = mapped_column(Integer)
    description: Mapped[str | None] = mapped_column(String(200))
    image_type: Mapped[str | None] = mapped_column(String(200))
    acquisition_datetime: Mapped[dt.datetime | None] = mapped_column(DateTime)
    days_from_injury: Mapped[float | None] = mapped_column(Float)
    manufacturer: Mapped[str | None] = mapped_column(String(100))
    manufacturer_model: Mapped[str | None] = mapped_column(String(100))
    # Never written since migration 0006 (an identifier of the place of care, PS3.15 Annex E: remove);
    # kept as a column because dropping it would rebuild the table on SQLite.
    institution: Mapped[str | None] = mapped_column(String(200))
    convolution_kernel: Mapped[str | None] = mapped_column(String(100))
    rows: Mapped[int | None] = mapped_column(Integer)
    columns: Mapped[int | None] = mapped_column(Integer)
    pixel_spacing_row: Mapped[float | None] = mapped_column(Float)
    pixel_spacing_col: Mapped[float | None] = mapped_column(Float)
    slice_thickness: Mapped[float | None] = mapped_column(Float)
    slice_spacing: Mapped[float | None] = mapped_column(Float)  # median step between positions
    image_orientation: Mapped[list[Any] | None] = mapped_column(JSON)
    gantry_tilt: Mapped[float | None] = mapped_column(Float)
    instance_count: Mapped[int] = mapped_column(Integer, default=0)
    z_positions: Mapped[list[Any] | None] = mapped_column(JSON)
    coverage_mm: Mapped[float | None] = mapped_column(Float)
    archive_path: Mapped[str | None] = mapped_column(Text)
    qc_status: Mapped[str] = mapped_column(String(16), default=QC_PENDING, index=True)
    qc_reasons: Mapped[list[Any]] = mapped_column(JSON, default=list)
    phi_tags: Mapped[list[Any]] = mapped_column(JSON, default=list)
    ingested_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, index=True)

    study: Mapped[Study] = relationship(back_populates="series")
    instances: Mapped[list[Instance]] = relationship(back_populates="series", cascade="all, delete-orphan")
    qc_decisions: Mapped[list[QCDecision]] = relationship(back_populates="series")

    # Progress counts series per study by QC status from this index alone (no table read).
    __table_args__ = (Index("ix_series_study_id_qc_status", "study_id", "qc_status"),)


class Instance(Base):
    __tablename__ = "instance"

    id: Mapped[int] = mapped_column(primary_key=True)
    sop_instance_uid: Mapped[str] = mapped_column(String(64), unique=True)
    series_id: Mapped[int] = mapped_column(ForeignKey("series.id"), index=True)
    instance_number: Mapped[int | None] = mapped_column(Integer)
    position_z: Mapped[float | None] = mapped_column(Float)  # along the slice normal, mm
    file_path: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    file_size: Mapped[int] = mapped_column(Integer)
    # `file_path` is the de-identified archive copy, or for a file indexed in place the data home's
    # pseudonymous link to it (`Home.in_place_dir`): no folder name of the original either way. When
    # set, `file_path` is relative to that root (`registry.instance_files` resolves both); ingest sets none.
    source_root_id: Mapped[int | None] = mapped_column(ForeignKey("source_root.id"), index=True)

    series: Mapped[Series] = relationship(back_populates="instances")
    source_root: Mapped[SourceRoot | None] = relationship()


class SourceRoot(Base):
    """A folder under which an instance's `file_path` is relative (`registry.instance_files`); ingest declares none,
    since a folder's own name may name the patient."""

    __tablename__ = "source_root"

    id: Mapped[int] = mapped_column(primary_key=True)
    path: Mapped[str] = mapped_column(Text, unique=True)
    declared_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class QCDecision(Base):
    __tablename__ = "qc_decision"

    id: Mapped[int] = mapped_column(primary_key=True)
    series_id: Mapped[int] = mapped_column(ForeignKey("series.id"), index=True)
    status: Mapped[str] = mapped_column(String(16))
    reasons: Mapped[list[Any]] = mapped_column(JSON, default=list)
    note: Mapped[str | None] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(100))
    automatic: Mapped[bool] = mapped_column(Boolean, default=False)
    decided_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, index=True)

    series: Mapped[Series] = relationship(back_populates="qc_decisions")


class IngestRun(Base):
    """One `registry ingest` or CSV import: its source, counts and rejected files."""

    __tablename__ = "ingest_run"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))  # dicom | clinical | outcomes | annotations
    source: Mapped[str] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(100))
    started_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # running | done | interrupted (its process is gone without finishing: killed, machine restarted).
    status: Mapped[str] = mapped_column(String(16), default=INGEST_DONE)
    pid: Mapped[int | None] = mapped_column(Integer)
    host: Mapped[str | None] = mapped_column(String(255))

    rejections: Mapped[list[Rejection]] = relationship(back_populates="ingest_run")


class Rejection(Base):
    __tablename__ = "rejection"

    id: Mapped[int] = mapped_column(primary_key=True)
    ingest_run_id: Mapped[int] = mapped_column(ForeignKey("ingest_run.id"), index=True)
    path: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(String(64))
    detail: Mapped[str | None] = mapped_column(Text)

    ingest_run: Mapped[IngestRun] = relationship(back_populates="rejections")


class AuditEvent(Base):
    __tablename__ = "audit_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(64))
    entity_type: Mapped[str] = mapped_column(String(32))
    entity_id: Mapped[str | None] = mapped_column(String(80))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    __table_args__ = (Index("ix_audit_event_entity_type_entity_id", "entity_type", "entity_id"),)


class ManualAnnotation(Base):
    """A manual lesion mask (NIfTI, the four-class label map of vocabulary.labels) on a series' grid.

    `label_scheme` is the scheme the mask was drawn in: `four-class`, or `two-class` (1 hematoma,
    2 edema; converted at import, so the stored file at `mask_path` is always four-class).
    """

    __tablename__ = "manual_annotation"

    id: Mapped[int] = mapped_column(primary_key=True)
    series_id: Mapped[int] = mapped_column(ForeignKey("series.id"), index=True)
    mask_path: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    annotator: Mapped[str | None] = mapped_column(String(100))
    label_scheme: Mapped[str] = mapped_column(String(16), default="four-class", server_default="four-class")
    imported_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)

    __table_args__ = (UniqueConstraint("series_id", "sha256"),)


class SegmentationRun(Base):
    """Which model made which mask of which series, where and how fast."""

    __tablename__ = "segmentation_run"

    id: Mapped[int] = mapped_column(primary_key=True)
    series_id: Mapped[int] = mapped_column(ForeignKey("series.id"), index=True)
    model_name: Mapped[str] = mapped_column(String(100))
    model_version: Mapped[str] = mapped_column(String(64))  # checkpoint content hash
    device: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))  # done | failed
    error: Mapped[str | None] = mapped_column(Text)
    mask_path: Mapped[str | None] = mapped_column(Text)
    seconds: Mapped[float | None] = mapped_column(Float)
    timings: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    started_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    # Networks the run averaged ("<name>:<sha256>" or a checkpoint hash); for an ensemble,
    # model_version is the hash of the members' hashes.
    model_members: Mapped[list[str] | None] = mapped_column(JSON)
    notes: Mapped[str | None] = mapped_column(Text)  # what was done to the series (e.g. resampled), in words

    __table_args__ = (UniqueConstraint("series_id", "model_version"),
                      Index("ix_segmentation_run_status_series_id", "status", "series_id"))


class CorrectionAgreement(Base):
    """How much an annotator changed one lesion class of a model's mask: the model mask against its correction.

    One row per corrected annotation, the segmentation run it started from, and lesion class (the key of
    `vocabulary.labels`). Dice is NULL when neither mask has the class. A partial annotation is compared over
    the voxels it annotated. Per center, these rows are the study's running measure of model quality.
    """

    __tablename__ = "correction_agreement"

    id: Mapped[int] = mapped_column(primary_key=True)
    annotation_id: Mapped[int] = mapped_column(ForeignKey("manual_annotation.id"), index=True)
    segmentation_run_id: Mapped[int] = mapped_column(ForeignKey("segmentation_run.id"), index=True)
    lesion_class: Mapped[str] = mapped_column(String(16))
    dice: Mapped[float | None] = mapped_column(Float)
    model_ml: Mapped[float] = mapped_column(Float)
    corrected_ml: Mapped[float] = mapped_column(Float)
    overlap_ml: Mapped[float] = mapped_column(Float)
    # Share of the scan's voxels the annotation covers; Dice and volumes are over those voxels only (a partial
    # annotation leaves the rest `vocabulary.labels.UNANNOTATED`).
    annotated_fraction: Mapped[float] = mapped_column(Float, default=1.0, server_default="1.0")
    computed_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)

    __table_args__ = (UniqueConstraint("annotation_id", "segmentation_run_id", "lesion_class"),)


class StudyModel(Base):
    """A segmentation model the study made for itself (`imaging adapt`): a folder with weights and a model card.

    `promoted_at` is set when it became the study's default for `imaging segment` (the latest promoted one is).
    """

    __tablename__ = "study_model"

    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[str] = mapped_column(String(64), unique=True)  # checkpoint SHA-256
    name: Mapped[str] = mapped_column(String(200))
    path: Mapped[str] = mapped_column(Text)
    parent_version: Mapped[str | None] = mapped_column(String(64))  # the model it was adapted from
    card: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(100))
    promoted_at: Mapped[dt.datetime | None] = mapped_column(DateTime)


class SeriesFeatures(Base):
    """Imaging biomarkers of one series from one mask source, under one feature-definitions version.

    `values` holds the scalar features by name; `lesions` the per-lesion table (a list of records).
    """

    __tablename__ = "series_features"

    id: Mapped[int] = mapped_column(primary_key=True)
    series_id: Mapped[int] = mapped_column(ForeignKey("series.id"), index=True)
    source: Mapped[str] = mapped_column(String(16))  # segmentation | manual | truth
    segmentation_run_id: Mapped[int | None] = mapped_column(ForeignKey("segmentation_run.id"))
    annotation_id: Mapped[int | None] = mapped_column(ForeignKey("manual_annotation.id"))
    mask_sha256: Mapped[str | None] = mapped_column(String(64))
    definitions_version: Mapped[str] = mapped_column(String(32))
    values: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    lesions: Mapped[list[Any]] = mapped_column(JSON, default=list)
    computed_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)

    __table_args__ = (UniqueConstraint("series_id", "source", "definitions_version"),)


class ScoreComponentReview(Base):
    """A CT-classification component set by a reviewer for one series (basal cisterns, tSAH, evacuation, EDH).

    Every setting is a row (the history stays); the latest per (series, component) is the one the scores use.
    `value` is the component's value as text: present | compressed | absent for the cisterns, yes | no for the
    others, or `unset` to return the component to what is measured.
    """

    __tablename__ = "score_component_review"

    id: Mapped[int] = mapped_column(primary_key=True)
    series_id: Mapped[int] = mapped_column(ForeignKey("series.id"), index=True)
    component: Mapped[str] = mapped_column(String(40))
    value: Mapped[str] = mapped_column(String(16))
    reviewer: Mapped[str] = mapped_column(String(120))
    note: Mapped[str | None] = mapped_column(Text)
    set_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class ModelFit(Base):
    """An outcome model fit: what data (snapshot hash), which variables, what came out."""

    __tablename__ = "model_fit"

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    actor: Mapped[str] = mapped_column(String(100))
    outcome: Mapped[str] = mapped_column(String(32))
    feature_set: Mapped[str] = mapped_column(String(64))
    model_kind: Mapped[str] = mapped_column(String(32))
    cv: Mapped[str | None] = mapped_column(String(32))
    n_patients: Mapped[int] = mapped_column(Integer)
    n_events: Mapped[int | None] = mapped_column(Integer)
    data_hash: Mapped[str] = mapped_column(String(64))
    variables: Mapped[list[Any]] = mapped_column(JSON, default=list)
    coefficients: Mapped[list[Any]] = mapped_column(JSON, default=list)  # summary table records
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    artifact_path: Mapped[str | None] = mapped_column(Text)


class CenterTarget(Base):
    """A collection target set by an admin: for one center, or study-wide (`center_id` NULL).

    Metrics are `registry.collection.targets.TARGET_METRICS`; every change is also an AuditEvent (entity_type
    "center_target"). The packaged dashboard/targets.toml gives the study-wide defaults below these.
    """

    __tablename__ = "center_target"

    id: Mapped[int] = mapped_column(primary_key=True)
    center_id: Mapped[int | None] = mapped_column(ForeignKey("center.id"), index=True)
    metric: Mapped[str] = mapped_column(String(32))
    target: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(100))

    __table_args__ = (UniqueConstraint("center_id", "metric"),)


class User(Base):
    __tablename__ = "app_user"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    center_id: Mapped[int | None] = mapped_column(ForeignKey("center.id"))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    # Log-in hardening (registry.access.users): `failed_logins` counts the log-in slots taken since
    # `failures_reset_at`, the start of the current counting window (a slot is reserved before a
    # password is verified and given back when it was right); at MAX_USER_FAILURES wrong ones the user
    # is locked until `locked_until`; dashboard sessions opened before `sessions_valid_after`
    # (deactivation, new password, new role) are ended.
    locked_until: Mapped[dt.datetime | None] = mapped_column(DateTime)
    failures_reset_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    sessions_valid_after: Mapped[dt.datetime | None] = mapped_column(DateTime)

    center: Mapped[Center | None] = relationship()


class LoginAttempt(Base):
    """Every dashboard log-in attempt, for the per-user and per-address limits and the security audit.

    `username` is the name as typed (unknown names too: guessing is what the limit is for);
    `address` the client address Streamlit reports, or "local".
    """

    __tablename__ = "login_attempt"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, index=True)
    username: Mapped[str] = mapped_column(String(64), index=True)
    address: Mapped[str] = mapped_column(String(64), index=True)
    succeeded: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str | None] = mapped_column(String(32))  # wrong_password | locked | address_limited | inactive


class DicomSender(Base):
    """A DICOM node allowed to send to the study's receiver: its calling AE title, the center its files
    belong to and, optionally, the one IP address it must call from (`ctstudy registry senders add`)."""

    __tablename__ = "dicom_sender"

    id: Mapped[int] = mapped_column(primary_key=True)
    ae_title: Mapped[str] = mapped_column(String(16), unique=True)
    center_id: Mapped[int] = mapped_column(ForeignKey("center.id"), index=True)
    host: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(100))

    center: Mapped[Center] = relationship()


class PatientRevision(Base):
    """How many times a patient's imaging rows have changed: bumped by database triggers (migration 0014) on every
    insert, update or delete of the patient's studies, series, segmentation runs and series features.

    The per-patient summaries below record the revision they were computed at; a summary whose revision differs
    (or that is missing) is recomputed before it is read, so a summary never shows anything but what the full
    query over the rows would.
    """

    __tablename__ = "patient_revision"

    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id", ondelete="CASCADE"), primary_key=True)
    revision: Mapped[int] = mapped_column(Integer)


class PatientSeriesCounts(Base):
    """One patient's series counted as the Collection page counts them (`registry.summary.series_counts`), at
    `revision` of PatientRevision."""

    __tablename__ = "patient_series_counts"

    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id", ondelete="CASCADE"), primary_key=True)
    revision: Mapped[int] = mapped_column(Integer)
    series: Mapped[int] = mapped_column(Integer)
    qc_passed: Mapped[int] = mapped_column(Integer)
    qc_failed_auto: Mapped[int] = mapped_column(Integer)
    qc_failed_manual: Mapped[int] = mapped_column(Integer)
    qc_pending: Mapped[int] = mapped_column(Integer)
    segmented: Mapped[int] = mapped_column(Integer)
    usable_studies: Mapped[int] = mapped_column(Integer)  # studies with a series passed or pending QC
    # The admission scan: the patient's earliest study with a series, and how many of its series passed QC.
    admission_study_id: Mapped[int | None] = mapped_column(ForeignKey("study.id", ondelete="CASCADE"))
    admission_passed: Mapped[int] = mapped_column(Integer)


class PatientArrivalDay(Base):
    """One patient's series per day (`registry.summary.arrivals`), by `basis`: `scanned` (the day acquired, else
    the study's day; undated series are left out) or `received` (the day ingested), and whether it is the
    patient's first such day (when a patient arrives, scanned). Stored with the patient's PatientSeriesCounts, at
    its revision."""

    __tablename__ = "patient_arrival_day"

    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id", ondelete="CASCADE"), primary_key=True)
    basis: Mapped[str] = mapped_column(String(8), primary_key=True)
    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    series: Mapped[int] = mapped_column(Integer)
    first_day: Mapped[int] = mapped_column(Integer)  # 1 on the patient's earliest day of this basis, else 0


class PatientFeatureSummary(Base):
    """One patient's patient-level imaging features (`biomarkers.patient_summary`), at `revision` of
    PatientRevision and under the feature definitions named by `definitions`; `values` is a JSON object (NULL:
    the patient has no series features)."""

    __tablename__ = "patient_feature_summary"

    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id", ondelete="CASCADE"), primary_key=True)
    revision: Mapped[int] = mapped_column(Integer)
    definitions: Mapped[str] = mapped_column(String(64))
    values: Mapped[str | None] = mapped_column(Text)
