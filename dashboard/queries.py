"""Every database read (and the one write, QC decisions) the dashboard pages make, cached.

Pages only lay out what these functions return. Each read takes the database URL and the
center the logged-in user may see (`None` = all centers) and filters in SQL, so a coordinator's
page never receives another center's rows. Results are cached for a short time (`st.cache_data`)
and the cache is dropped after a write. Nothing here returns a direct identifier: patients
are known by `pseudo_id` only.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st
from sqlalchemy import Engine, Select, Text, and_, case, cast, distinct, func, not_, or_, select
from sqlalchemy.orm import Session

from dashboard.collection import COUNT_COLUMNS
from dashboard.review import PHI_FILTERS
from imaging.volume import Volume, grid_mismatch, load_series, read_mask
from registry.access.users import add_user, deactivate_user, reactivate_user, set_password, unlock_user, users_table
from registry.collection.progress import TOTAL, collection_progress, missing_items
from registry.collection.targets import set_targets, stored_targets
from registry.db.engine import make_engine
from registry.db.models import (
    AuditEvent,
    Center,
    ClinicalRecord,
    Instance,
    ManualAnnotation,
    ModelFit,
    Outcome,
    Patient,
    PatientArrivalDay,
    QCDecision,
    SegmentationRun,
    Series,
    SeriesFeatures,
    SourceRoot,
    Study,
)
from registry.db.store import record_qc_decision, repeated_qc_decision
from registry.home import Home
from registry.summary import series_counts

CACHE_TTL_S = 60


def current_home() -> Home:
    """The data home from CTSTUDY_HOME / CTSTUDY_DB_URL, as `ctstudy dashboard` passes them to Streamlit."""
    return Home.resolve(os.environ.get("CTSTUDY_HOME"), os.environ.get("CTSTUDY_DB_URL"))


@st.cache_resource(show_spinner=False)
def engine_for(db_url: str) -> Engine:
    """One pooled engine per database for the whole Streamlit server."""
    return make_engine(db_url)


def _session(db_url: str) -> Session:
    return Session(engine_for(db_url), expire_on_commit=False)


def clear_caches() -> None:
    """Forget cached reads, after a write, so every page shows the new state."""
    st.cache_data.clear()


def _scoped(stmt: Select, center: str | None) -> Select:
    return stmt if center is None else stmt.where(Center.code == center)


def _frame(session: Session, stmt: Select) -> pd.DataFrame:
    result = session.execute(stmt)
    return pd.DataFrame(result.all(), columns=list(result.keys()))


# --- Collection ----------------------------------------------------------------------------------

# registry.collection.progress names -> the dashboard's count columns
_PROGRESS_RENAME = {"qc_failed_manual": "qc_failed", "qc_failed_auto": "qc_auto_failed",
                    "with_follow_up": "with_followup"}


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def center_counts(db_url: str, center: str | None) -> pd.DataFrame:
    """Per center in scope: `registry.collection.progress.collection_progress` (patients, series by QC status and
    segmented, clinical data, outcome, follow-up) plus manually annotated series (columns
    `collection.COUNT_COLUMNS`)."""
    with _session(db_url) as s, s.begin():  # the summaries it brings up to date are kept
        progress = collection_progress(s, count_segmented=True).rename(columns=_PROGRESS_RENAME)
        annotated = _frame(s, _scoped(
            select(Center.code.label("center"),
                   func.count(distinct(ManualAnnotation.series_id)).label("series_annotated"))
            .join(Patient, Patient.center_id == Center.id).join(Study, Study.patient_id == Patient.id)
            .join(Series, Series.study_id == Study.id).join(ManualAnnotation, ManualAnnotation.series_id == Series.id)
            .group_by(Center.code), center))
    progress = progress[progress["center"] != TOTAL]
    if center is not None:
        progress = progress[progress["center"] == center]
    out = progress.merge(annotated, on="center", how="left")
    out[COUNT_COLUMNS] = out.reindex(columns=COUNT_COLUMNS).astype(float).fillna(0).astype(int)
    return out[["center", *COUNT_COLUMNS]].reset_index(drop=True)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def owed_items(db_url: str, center: str | None) -> pd.DataFrame:
    """What centers in scope still owe, one row per patient or series and item
    (`registry.collection.progress.missing_items`)."""
    with _session(db_url) as s, s.begin():  # the summaries it brings up to date are kept
        return missing_items(s, center)


ARRIVAL_BASES = ("scanned", "received")


def series_of_centers(*columns: Any) -> Select:
    """SELECT center code and `columns` over every series, joined through study and patient."""
    return (select(Center.code.label("center"), *columns)
            .join(Patient, Patient.center_id == Center.id).join(Study, Study.patient_id == Patient.id)
            .join(Series, Series.study_id == Study.id))


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def arrival_events(db_url: str, center: str | None, basis: str = "received") -> pd.DataFrame:
    """One row per arrival (center, kind 'patients' | 'series', at).

    basis "received": when the registry got it (a patient counts when first registered);
    "scanned": when the series was acquired (a patient counts from their first scan; patients
    with clinical data only have no scan date and are left out). A collection ingested in one
    batch is one point in time when received, but its enrolment curve when scanned.
    """
    if basis not in ARRIVAL_BASES:
        raise ValueError(f"basis must be one of {ARRIVAL_BASES}, not {basis!r}")
    with _session(db_url) as s:
        if basis == "scanned":
            at = func.coalesce(Series.acquisition_datetime, Study.study_datetime)
            series = _frame(s, _scoped(series_of_centers(at.label("at")), center))
            patients = _frame(s, _scoped(series_of_centers(func.min(at).label("at"))
                                         .group_by(Center.code, Patient.id), center))
            series, patients = series.dropna(subset=["at"]), patients.dropna(subset=["at"])
        else:
            series = _frame(s, _scoped(series_of_centers(Series.ingested_at.label("at")), center))
            patients = _frame(s, _scoped(
                select(Center.code.label("center"), Patient.created_at.label("at"))
                .join(Patient, Patient.center_id == Center.id), center))
    return pd.concat([patients.assign(kind="patients"), series.assign(kind="series")], ignore_index=True)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def arrival_counts(db_url: str, center: str | None, basis: str = "received") -> pd.DataFrame:
    """Arrivals per day, counted by the database: one row per (center, kind, date) with `n`, the same counts as
    grouping `arrival_events` by day (`collection.daily_counts`), without sending every series' row to Python.

    Read from each patient's series per day (`registry.summary.arrivals`, kept in step with the series), summed per
    center and day in one pass: series per day, and (scanned) patients on their first scan day.
    """
    if basis not in ARRIVAL_BASES:
        raise ValueError(f"basis must be one of {ARRIVAL_BASES}, not {basis!r}")
    days = (select(Patient.center_id, PatientArrivalDay.day, func.sum(PatientArrivalDay.series).label("series"),
                   func.sum(PatientArrivalDay.first_day).label("patients"))
            .join(Patient, Patient.id == PatientArrivalDay.patient_id).where(PatientArrivalDay.basis == basis)
            .group_by(Patient.center_id, PatientArrivalDay.day))
    if center is not None:
        days = days.join(Center, Center.id == Patient.center_id).where(Center.code == center)
    created = func.date(Patient.created_at)  # received: a patient arrives when first registered
    registered = _scoped(select(Patient.center_id, created.label("day"), func.count().label("n"))
                         .join(Center, Center.id == Patient.center_id).group_by(Patient.center_id, created), center)
    with _session(db_url) as s, s.begin():
        series_counts.refresh(s)
        per_day = _frame(s, days)
        patients = (per_day[["center_id", "day", "patients"]].rename(columns={"patients": "n"})
                    if basis == "scanned" else _frame(s, registered))
        codes = dict(s.execute(select(Center.id, Center.code)).all())
    daily = pd.concat([patients.assign(kind="patients"),
                       per_day[["center_id", "day", "series"]].rename(columns={"series": "n"}).assign(kind="series")],
                      ignore_index=True)
    daily = daily[daily["n"].astype(int) > 0].reset_index(drop=True)
    daily = daily.rename(columns={"day": "date"})
    daily["center"] = daily["center_id"].map(codes)
    daily["date"] = pd.to_datetime(daily["date"])
    daily["n"] = daily["n"].astype(int)
    return daily[["center", "kind", "date", "n"]]


# --- Collection targets (registry.collection.targets) ---------------------------------------------------------

@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def center_targets(db_url: str) -> pd.DataFrame:
    """Every stored target (center None = study-wide): center, metric, target, updated_at, updated_by.
    Targets are not patient data: every role may see every center's."""
    with _session(db_url) as s:
        return stored_targets(s)


def save_targets(db_url: str, center: str | None, values: dict[str, int | None], actor: str) -> list[str]:
    """Store an admin's targets for one center (None: study-wide), audited; the metrics that changed."""
    with _session(db_url) as s, s.begin():
        changed = set_targets(s, center, values, actor)
    clear_caches()
    return changed


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def target_history(db_url: str, limit: int = 100) -> pd.DataFrame:
    """Target changes, newest first: when, who, which (center:metric), before and after."""
    with _session(db_url) as s:
        df = _frame(s, select(AuditEvent.at.label("when"), AuditEvent.actor.label("who"),
                              AuditEvent.entity_id.label("target"), AuditEvent.before, AuditEvent.after)
                    .where(AuditEvent.entity_type == "center_target")
                    .order_by(AuditEvent.at.desc(), AuditEvent.id.desc()).limit(limit))
    for col in ("before", "after"):
        df[col] = df[col].map(lambda v: "" if not v or v.get("target") is None else f"{v['target']:,}")
    return df


# --- Quality control ------------------------------------------------------------------------------

def _joined(values: Any) -> str:
    return ", ".join(str(v) for v in values) if values else ""


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def qc_queue(db_url: str, center: str | None) -> pd.DataFrame:
    """All series in scope with their QC status, reasons and PHI flags (filters are applied by the page)."""
    with _session(db_url) as s:
        df = _frame(s, _scoped(
            select(
                Series.series_instance_uid.label("series_uid"), Center.code.label("center"),
                Patient.pseudo_id, Series.days_from_injury, Series.description, Series.instance_count.label("slices"),
                Series.slice_thickness, Series.qc_status, cast(Series.qc_reasons, Text).label("qc_reasons"),
                cast(Series.phi_tags, Text).label("phi_tags"), Series.ingested_at,
            )
            .join(Patient, Patient.center_id == Center.id).join(Study, Study.patient_id == Patient.id)
            .join(Series, Series.study_id == Study.id)
            .order_by(Series.ingested_at, Series.id), center))
    # The JSON lists come as text and are decoded in one json.loads per column: decoding 100,000 rows one by one
    # (what the driver does for a JSON column) took seconds.
    reasons, phi = _json_column(df["qc_reasons"]), _json_column(df["phi_tags"])
    df["qc_reasons"] = [_joined(v) for v in reasons]
    df["phi_flag"] = [bool(v) for v in phi]
    df["phi_tags"] = [_joined(v) for v in phi]
    return df


def _json_column(texts: pd.Series) -> list[Any]:
    """A column of JSON texts (None for SQL NULL) decoded in one call."""
    return json.loads("[" + ",".join(t if t is not None else "null" for t in texts) + "]")


QC_PAGE_SIZE = 200


def _queue_rows(center: str | None) -> Select:
    return _scoped(
        select(
            Series.series_instance_uid.label("series_uid"), Center.code.label("center"),
            Patient.pseudo_id, Series.days_from_injury, Series.description, Series.instance_count.label("slices"),
            Series.slice_thickness, Series.qc_status, cast(Series.qc_reasons, Text).label("qc_reasons"),
            cast(Series.phi_tags, Text).label("phi_tags"), Series.ingested_at,
        )
        .join(Patient, Patient.center_id == Center.id).join(Study, Study.patient_id == Patient.id)
        .join(Series, Series.study_id == Study.id), center)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def qc_status_counts(db_url: str, center: str | None) -> pd.DataFrame:
    """Series in scope per center and QC status (center, qc_status, n), counted by the database."""
    with _session(db_url) as s:
        df = _frame(s, _scoped(
            select(Center.code.label("center"), Series.qc_status, func.count().label("n"))
            .join(Patient, Patient.center_id == Center.id).join(Study, Study.patient_id == Patient.id)
            .join(Series, Series.study_id == Study.id).group_by(Center.code, Series.qc_status), center))
    df["n"] = df["n"].astype(int)
    return df.sort_values(["center", "qc_status"]).reset_index(drop=True)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def qc_queue_page(db_url: str, center: str | None, centers: tuple[str, ...], statuses: tuple[str, ...],
                  phi: str = "any", search: str = "", page: int = 0, page_size: int = QC_PAGE_SIZE
                  ) -> tuple[pd.DataFrame, int]:
    """One page of the review queue in scope, filtered and ordered by the database: (rows, how many match).

    The rows are those of `qc_queue` narrowed as `review.filtered_queue` and `qc_view.search_queue` narrow it
    (centers, statuses, identifiers flagged or not; `search` in the series UID, pseudonym, description or QC
    reasons, codes or words) in `qc_view.review_order` (what needs a decision first, oldest first). A reviewer
    needs the first page and the counts, never the 100,000 rows of a consortium's queue.
    """
    from dashboard.qc_view import NEEDS_DECISION, reason_words
    from registry.qc.series_qc import QC_REASONS

    if phi not in PHI_FILTERS:
        raise ValueError(f"phi must be one of {PHI_FILTERS}, not {phi!r}")
    stmt = _queue_rows(center).where(Center.code.in_(centers), Series.qc_status.in_(statuses))
    phi_text = cast(Series.phi_tags, Text)
    flagged = and_(phi_text.is_not(None), phi_text.not_in(("[]", "null")))
    if phi == "flagged":
        stmt = stmt.where(flagged)
    elif phi == "clean":
        stmt = stmt.where(not_(flagged))
    needle = search.strip().lstrip("…").lower()
    if needle:
        reasons = cast(Series.qc_reasons, Text)
        coded = [code for code in QC_REASONS if needle in " ".join(reason_words([code])).lower()]
        stmt = stmt.where(or_(
            *(func.lower(c).contains(needle, autoescape=True) for c in (
                Series.series_instance_uid, Patient.pseudo_id, func.coalesce(Series.description, ""), reasons)),
            *(reasons.contains(f'"{code}"', autoescape=True) for code in coded)))
    later = case((Series.qc_status.in_(NEEDS_DECISION), 0), else_=1)
    with _session(db_url) as s:
        total = s.scalar(select(func.count()).select_from(stmt.subquery()))
        df = _frame(s, stmt.order_by(later, Series.ingested_at, Series.id).limit(page_size)
                    .offset(max(page, 0) * page_size))
    reasons_list, phi_list = _json_column(df["qc_reasons"]), _json_column(df["phi_tags"])
    df["qc_reasons"] = [_joined(v) for v in reasons_list]
    df["phi_flag"] = [bool(v) for v in phi_list]
    df["phi_tags"] = [_joined(v) for v in phi_list]
    return df, int(total or 0)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def qc_history(db_url: str, center: str | None, series_uid: str | None = None, limit: int = 200) -> pd.DataFrame:
    """QC decisions, newest first (all series in scope, or one): when, series, status, reasons, note, actor."""
    with _session(db_url) as s:
        stmt = _scoped(
            select(QCDecision.decided_at.label("when"), Series.series_instance_uid.label("series_uid"),
                   Center.code.label("center"), QCDecision.status, QCDecision.reasons, QCDecision.note,
                   QCDecision.actor, QCDecision.automatic)
            .join(Series, QCDecision.series_id == Series.id).join(Study, Series.study_id == Study.id)
            .join(Patient, Study.patient_id == Patient.id).join(Center, Patient.center_id == Center.id), center)
        if series_uid is not None:
            stmt = stmt.where(Series.series_instance_uid == series_uid)
        df = _frame(s, stmt.order_by(QCDecision.decided_at.desc(), QCDecision.id.desc()).limit(limit))
    df["reasons"] = df["reasons"].map(_joined)
    return df


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def audit_trail(db_url: str, center: str | None, limit: int = 200) -> pd.DataFrame:
    """Audit events about series in scope (for a coordinator) or all events (others), newest first; `before` and
    `after` are the stored states (dicts, or None), which `dashboard.words.audit_table` puts into words."""
    with _session(db_url) as s:
        stmt = select(AuditEvent.at, AuditEvent.actor, AuditEvent.action, AuditEvent.entity_type,
                      AuditEvent.entity_id, AuditEvent.before, AuditEvent.after)
        if center is not None:
            uids = _scoped(
                select(Series.series_instance_uid).join(Study, Series.study_id == Study.id)
                .join(Patient, Study.patient_id == Patient.id).join(Center, Patient.center_id == Center.id), center)
            stmt = stmt.where(AuditEvent.entity_type == "series", AuditEvent.entity_id.in_(uids.scalar_subquery()))
        return _frame(s, stmt.order_by(AuditEvent.at.desc(), AuditEvent.id.desc()).limit(limit))


def series_center(db_url: str, series_uid: str) -> str | None:
    """The center code a series belongs to (None if unknown), to check a user's right to act on it."""
    with _session(db_url) as s:
        return s.scalar(
            select(Center.code).join(Patient, Patient.center_id == Center.id)
            .join(Study, Study.patient_id == Patient.id).join(Series, Series.study_id == Study.id)
            .where(Series.series_instance_uid == series_uid))


def record_qc(db_url: str, series_uid: str, status: str, reason: str, actor: str, center: str | None
              ) -> QCDecision | None:
    """Write a reviewer's pass/fail decision (with its audit event) on a series the user may see; None when it
    was written, else the earlier identical decision it repeats (then nothing is written).

    The user's center is checked here; the rules on status and reason are registry.db.store.record_qc_decision's.
    """
    owner = series_center(db_url, series_uid)
    if owner is None:
        raise ValueError(f"No series {series_uid} in the registry.")
    if center is not None and owner != center:
        raise PermissionError(f"Series {series_uid} belongs to center {owner}: you may only QC center {center}.")
    with _session(db_url) as s, s.begin():
        repeated = repeated_qc_decision(s, series_uid, status, reason)
        if repeated is None:
            record_qc_decision(s, series_uid, status, reason, actor)
    clear_caches()
    return repeated


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def series_review_facts(db_url: str, center: str | None, series_uid: str) -> dict[str, Any]:
    """What the QC viewer needs beyond the queue row: image type and the latest automatic and manual mask paths."""
    with _session(db_url) as s:
        row = s.execute(_scoped(
            select(Series.id, Series.image_type).join(Study, Series.study_id == Study.id)
            .join(Patient, Study.patient_id == Patient.id).join(Center, Patient.center_id == Center.id)
            .where(Series.series_instance_uid == series_uid), center)).first()
        if row is None:
            return {"image_type": None, "auto_mask": None, "manual_mask": None}
        auto = s.scalar(select(SegmentationRun.mask_path).where(
            SegmentationRun.series_id == row.id, SegmentationRun.status == "done",
            SegmentationRun.mask_path.is_not(None)).order_by(SegmentationRun.id.desc()).limit(1))
        manual = s.scalar(select(ManualAnnotation.mask_path).where(ManualAnnotation.series_id == row.id)
                          .order_by(ManualAnnotation.id.desc()).limit(1))
    return {"image_type": row.image_type, "auto_mask": auto, "manual_mask": manual}


# --- Series files ---------------------------------------------------------------------------------

@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def series_files(db_url: str, center: str | None, series_uid: str) -> list[str]:
    """The instance files of a series in scope, ordered along the slice normal (empty if none / out of scope)."""
    with _session(db_url) as s:
        rows = s.execute(_scoped(
            select(Instance.file_path, SourceRoot.path).join(Series, Instance.series_id == Series.id)
            .outerjoin(SourceRoot, Instance.source_root_id == SourceRoot.id)
            .join(Study, Series.study_id == Study.id).join(Patient, Study.patient_id == Patient.id)
            .join(Center, Patient.center_id == Center.id)
            .where(Series.series_instance_uid == series_uid)
            .order_by(Instance.position_z, Instance.instance_number), center)).all()
    # Files indexed in place are stored relative to their source root.
    return [str(Path(root) / path) if root else path for path, root in rows]


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False, max_entries=8)
def series_volume(db_url: str, center: str | None, series_uid: str, root: str) -> Volume | None:
    """The series in scope as an `imaging.volume.Volume` (HU, (z, y, x)) read from its archived files; None when
    it has no files. Relative stored paths are taken under the data home `root`."""
    files = series_files(db_url, center, series_uid)
    if not files:
        return None
    return load_series(_paths(files, root))


def _paths(files: list[str], root: str) -> list[Path]:
    return [Path(f) if Path(f).is_absolute() else Path(root) / f for f in files]


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False, max_entries=8)
def sampled_slices_hu(db_url: str, center: str | None, series_uid: str, root: str, count: int
                      ) -> tuple[int, list[tuple[int, np.ndarray]]]:
    """(number of files, [(file index, HU slice)]) for `count` files spread over the series, read one at a time:
    QC thumbnails of a series that is not one regular volume (missing slices, mixed sizes), which is exactly
    when a reviewer needs to look at it."""
    from dashboard.imageview import thumbnail_indices

    paths = _paths(series_files(db_url, center, series_uid), root)
    return len(paths), [(i, load_series([paths[i]]).hu[0]) for i in thumbnail_indices(len(paths), count)]


# --- Cases ----------------------------------------------------------------------------------------

@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def patients(db_url: str, center: str | None) -> pd.DataFrame:
    """Patients in scope that have at least one series: pseudo_id, center, series count, first and last day."""
    with _session(db_url) as s:
        return _frame(s, _scoped(
            select(Patient.pseudo_id, Center.code.label("center"), func.count(Series.id).label("series"),
                   func.min(Series.days_from_injury).label("first_day"),
                   func.max(Series.days_from_injury).label("last_day"))
            .select_from(Center).join(Patient, Patient.center_id == Center.id)
            .join(Study, Study.patient_id == Patient.id)
            .join(Series, Series.study_id == Study.id)
            .group_by(Patient.pseudo_id, Center.code).order_by(Center.code, Patient.pseudo_id), center))


# Volumes that count as findings (mL): the two-class names and the four-class ones (vocabulary.labels).
FINDING_VOLUMES = ("hematoma_ml", "edema_ml", "eah_ml", "ivh_ml")


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def patient_findings(db_url: str, center: str | None) -> pd.DataFrame:
    """Per patient in scope with biomarkers: the largest lesion volume on any of their series (mL), largest first.
    (The case viewer opens on a patient with findings, not on one whose scans show nothing.)"""
    with _session(db_url) as s:
        df = _frame(s, _scoped(
            select(Patient.pseudo_id, SeriesFeatures.values)
            .select_from(Center).join(Patient, Patient.center_id == Center.id)
            .join(Study, Study.patient_id == Patient.id).join(Series, Series.study_id == Study.id)
            .join(SeriesFeatures, SeriesFeatures.series_id == Series.id), center))
    if df.empty:
        return pd.DataFrame(columns=["pseudo_id", "lesion_ml"])
    df["lesion_ml"] = df["values"].map(
        lambda v: sum(float(v.get(k) or 0.0) for k in FINDING_VOLUMES if isinstance(v.get(k), int | float)))
    return (df.groupby("pseudo_id", as_index=False)["lesion_ml"].max()
            .sort_values("lesion_ml", ascending=False, kind="stable").reset_index(drop=True))


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def patient_series(db_url: str, center: str | None, pseudo_id: str) -> pd.DataFrame:
    """A patient's series in time order, with the latest automatic and manual mask paths (None where absent)."""
    latest_run = (
        select(SegmentationRun.series_id, func.max(SegmentationRun.id).label("run_id"))
        .where(SegmentationRun.status == "done", SegmentationRun.mask_path.is_not(None))
        .group_by(SegmentationRun.series_id).subquery()
    )
    latest_manual = (
        select(ManualAnnotation.series_id, func.max(ManualAnnotation.id).label("annotation_id"))
        .group_by(ManualAnnotation.series_id).subquery()
    )
    with _session(db_url) as s:
        return _frame(s, _scoped(
            select(Series.series_instance_uid.label("series_uid"), Series.days_from_injury, Series.description,
                   Series.instance_count.label("slices"), Series.qc_status,
                   SegmentationRun.mask_path.label("auto_mask"), SegmentationRun.model_name,
                   ManualAnnotation.mask_path.label("manual_mask"))
            .select_from(Center).join(Patient, Patient.center_id == Center.id)
            .join(Study, Study.patient_id == Patient.id)
            .join(Series, Series.study_id == Study.id)
            .outerjoin(latest_run, latest_run.c.series_id == Series.id)
            .outerjoin(SegmentationRun, SegmentationRun.id == latest_run.c.run_id)
            .outerjoin(latest_manual, latest_manual.c.series_id == Series.id)
            .outerjoin(ManualAnnotation, ManualAnnotation.id == latest_manual.c.annotation_id)
            .where(Patient.pseudo_id == pseudo_id)
            .order_by(Series.days_from_injury, Series.id), center))


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def series_features(db_url: str, center: str | None, pseudo_id: str | None = None) -> pd.DataFrame:
    """Imaging biomarkers of every series in scope (or one patient's), one row per series and mask source, the
    scalar feature values as columns, with center, day, outcome (died, gos_6m, unfavourable = GOS 1-3) and the
    model that made the mask (mask_model, `biomarkers.provenance.mask_model`)."""
    from biomarkers.provenance import mask_model

    with _session(db_url) as s:
        patient_filter = [] if pseudo_id is None else [Patient.pseudo_id == pseudo_id]
        df = _frame(s, _scoped(
            select(Series.series_instance_uid.label("series_uid"), Patient.pseudo_id, Center.code.label("center"),
                   Series.days_from_injury, SeriesFeatures.source, SeriesFeatures.definitions_version,
                   SegmentationRun.model_name, SegmentationRun.model_version,
                   SeriesFeatures.values, Outcome.died, Outcome.gos_6m)
            .select_from(Center).join(Patient, Patient.center_id == Center.id)
            .join(Study, Study.patient_id == Patient.id)
            .join(Series, Series.study_id == Study.id).join(SeriesFeatures, SeriesFeatures.series_id == Series.id)
            .outerjoin(SegmentationRun, SegmentationRun.id == SeriesFeatures.segmentation_run_id)
            .outerjoin(Outcome, Outcome.patient_id == Patient.id).where(*patient_filter)
            .order_by(Center.code, Patient.pseudo_id, Series.days_from_injury), center))
    df.insert(df.columns.get_loc("source") + 1, "mask_model",
              [mask_model(src, name, version) for src, name, version in
               zip(df["source"], df.pop("model_name"), df.pop("model_version"), strict=True)])
    values = pd.DataFrame(df.pop("values").tolist(), index=df.index) if len(df) else pd.DataFrame(index=df.index)
    df["unfavourable"] = df["gos_6m"].map(lambda g: None if g is None or g != g else bool(g <= 3))
    return df.join(values.drop(columns=[c for c in values.columns if c in df.columns]))


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False, max_entries=16)
def mask_labels(path: str, root: str) -> tuple[np.ndarray, np.ndarray]:
    """A stored NIfTI mask as (z, y, x) labels and its LPS affine (`imaging.volume.read_mask`)."""
    return read_mask(Path(path) if Path(path).is_absolute() else Path(root) / path)


def overlay_labels(path: str, root: str, volume: Volume, name: str) -> tuple[np.ndarray | None, str | None]:
    """The mask to overlay on `volume`, or None with the reason in words (unreadable, or another grid)."""
    try:
        labels, affine = mask_labels(path, root)
    except ValueError as exc:
        return None, f"Cannot read the {name} mask: {exc}"
    problem = grid_mismatch(labels.shape, affine, volume)
    if problem:
        return None, f"The {name} mask does not match the series grid ({problem}); it is not overlaid."
    return labels, None


# --- Model quality from corrections ----------------------------------------------------------------

@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def corrections(db_url: str, center: str | None) -> pd.DataFrame:
    """Every imported correction and lesion class in scope: center, annotator, model, Dice and volumes."""
    from imaging.store import correction_rows

    with _session(db_url) as s:
        return pd.DataFrame(correction_rows(s, center))


# --- Outcome models and risk ----------------------------------------------------------------------

@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def model_fits(db_url: str) -> pd.DataFrame:
    """Every outcome-model fit, newest first: what was fitted on how many patients, metrics, coefficients, spec.

    Fits are study-wide aggregates (no patient rows), so every role may see them."""
    with _session(db_url) as s:
        return _frame(s, select(
            ModelFit.id, ModelFit.created_at, ModelFit.actor, ModelFit.outcome, ModelFit.feature_set,
            ModelFit.model_kind, ModelFit.cv, ModelFit.n_patients, ModelFit.n_events, ModelFit.data_hash,
            ModelFit.variables, ModelFit.coefficients, ModelFit.metrics, ModelFit.spec, ModelFit.artifact_path,
        ).order_by(ModelFit.created_at.desc(), ModelFit.id.desc()))


CLINICAL_FIELDS = ("age", "gcs_motor", "pupils_unreactive", "hypoxia", "hypotension", "glucose_mmol_l",
                   "hemoglobin_g_dl", "marshall_ct", "tsah", "edh")


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def patient_clinical(db_url: str, center: str | None, pseudo_id: str) -> dict[str, Any] | None:
    """A patient's admission clinical values (IMPACT predictors), or None without a clinical record / out of scope."""
    with _session(db_url) as s:
        row = s.execute(_scoped(
            select(*(getattr(ClinicalRecord, f) for f in CLINICAL_FIELDS))
            .select_from(Center).join(Patient, Patient.center_id == Center.id)
            .join(ClinicalRecord, ClinicalRecord.patient_id == Patient.id)
            .where(Patient.pseudo_id == pseudo_id), center)).first()
    return None if row is None else dict(row._mapping)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def patient_outcomes(db_url: str, center: str | None) -> pd.DataFrame:
    """Outcomes of patients in scope: pseudo_id, center, gos_6m, died, days_to_death_or_censor."""
    with _session(db_url) as s:
        return _frame(s, _scoped(
            select(Patient.pseudo_id, Center.code.label("center"), Outcome.gos_6m, Outcome.died,
                   Outcome.days_to_death_or_censor)
            .select_from(Center).join(Patient, Patient.center_id == Center.id)
            .join(Outcome, Outcome.patient_id == Patient.id), center))


# --- Users (admin) --------------------------------------------------------------------------------

def users(db_url: str) -> pd.DataFrame:
    """All dashboard users without their password hashes (never cached: admins act on it at once)."""
    with _session(db_url) as s:
        return users_table(s)


def center_codes(db_url: str) -> list[str]:
    with _session(db_url) as s:
        return list(s.scalars(select(Center.code).order_by(Center.code)))


def add_dashboard_user(db_url: str, username: str, role: str, password: str, center: str | None, actor: str) -> None:
    """Create a user (registry.access.users.add_user's rules and audit apply); UserError says what is wrong."""
    with _session(db_url) as s, s.begin():
        add_user(s, username, role, password, center_code=center or None, actor=actor)


def deactivate_dashboard_user(db_url: str, username: str, actor: str) -> None:
    with _session(db_url) as s, s.begin():
        deactivate_user(s, username, actor=actor)


def reactivate_dashboard_user(db_url: str, username: str, actor: str) -> None:
    with _session(db_url) as s, s.begin():
        reactivate_user(s, username, actor=actor)


def unlock_dashboard_user(db_url: str, username: str, actor: str) -> None:
    with _session(db_url) as s, s.begin():
        unlock_user(s, username, actor=actor)


def reset_dashboard_password(db_url: str, username: str, password: str, actor: str) -> None:
    """An admin sets a user's password (audited; the user's open sessions end); UserError when it is too short."""
    with _session(db_url) as s, s.begin():
        set_password(s, username, password, actor=actor)


def user_audit(db_url: str, limit: int = 100) -> pd.DataFrame:
    """What was done to user accounts, newest first: when, who, action, user, before, after (states as dicts;
    never cached)."""
    with _session(db_url) as s:
        df = _frame(s, select(AuditEvent.at.label("when"), AuditEvent.actor.label("who"), AuditEvent.action,
                              AuditEvent.entity_id.label("user"), AuditEvent.before, AuditEvent.after)
                    .where(AuditEvent.entity_type == "user")
                    .order_by(AuditEvent.at.desc(), AuditEvent.id.desc()).limit(limit))
    return df


# --- Provenance: the series, mask and segmentation run behind a biomarker value ------------------------------

@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def value_provenance(db_url: str, center: str | None, series_uid: str, source: str) -> dict[str, Any] | None:
    """Where the biomarkers of one series and mask source come from, or None (unknown, or out of scope):
    the series (reference, description, center, patient, acquisition date, day, slices, thickness, QC status),
    the stored features (definitions version, when computed, mask checksum) and the mask behind them: the
    segmentation run (model name and version, device, when) or the manual annotation (annotator, when
    imported), with the mask file's path (None for reference masks, which stay in the study's folder)."""
    with _session(db_url) as s:
        row = s.execute(_scoped(
            select(Series.series_instance_uid, Series.description, Center.code.label("center"), Patient.pseudo_id,
                   func.coalesce(Series.acquisition_datetime, Study.study_datetime).label("acquired"),
                   Series.days_from_injury, Series.instance_count, Series.slice_thickness, Series.qc_status,
                   SeriesFeatures.definitions_version, SeriesFeatures.computed_at, SeriesFeatures.mask_sha256,
                   SeriesFeatures.segmentation_run_id, SeriesFeatures.annotation_id)
            .select_from(Center).join(Patient, Patient.center_id == Center.id)
            .join(Study, Study.patient_id == Patient.id).join(Series, Series.study_id == Study.id)
            .join(SeriesFeatures, SeriesFeatures.series_id == Series.id)
            .where(Series.series_instance_uid == series_uid, SeriesFeatures.source == source)
            .order_by(SeriesFeatures.computed_at.desc(), SeriesFeatures.id.desc()).limit(1), center)).first()
        if row is None:
            return None
        out: dict[str, Any] = dict(row._mapping)
        out["source"] = source
        out["run"] = out["annotation"] = None
        if row.segmentation_run_id is not None:
            run = s.get(SegmentationRun, row.segmentation_run_id)
            out["run"] = {"model_name": run.model_name, "model_version": run.model_version, "device": run.device,
                          "segmented_at": run.finished_at or run.started_at, "mask": run.mask_path,
                          "members": list(run.model_members or [])}
        elif row.annotation_id is not None:
            ann = s.get(ManualAnnotation, row.annotation_id)
            out["annotation"] = {"annotator": ann.annotator, "imported_at": ann.imported_at, "mask": ann.mask_path,
                                 "sha256": ann.sha256}
    holder = out["run"] or out["annotation"]
    out["mask"] = holder["mask"] if holder else None
    return out
