"""Collection progress per center, what each center still owes, and the analysis-ready patient table.

Counting is done by the database (GROUP BY center), never by looping over rows in Python, so that
the dashboard's progress page stays fast on thousands of series on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
from sqlalchemy import Select, and_, bindparam, case, distinct, exists, func, literal, or_, select
from sqlalchemy.orm import Session

from registry.csv_export import write_csv
from registry.db import bulk_read
from registry.models import (
    QC_AUTO_FAILED,
    QC_FAILED,
    QC_PASSED,
    QC_PENDING,
    RUN_DONE,
    Center,
    ClinicalRecord,
    Outcome,
    Patient,
    QCDecision,
    SegmentationRun,
    Series,
    Study,
)
from vocabulary import dictionary

TOTAL = "TOTAL"
PROGRESS_COLUMNS = [
    "center", "patients", "with_ct", "series", "qc_passed", "qc_failed_auto", "qc_failed_manual", "qc_pending",
    "with_clinical", "with_outcome", "with_follow_up",
]
MISSING_ITEMS = ("no_ct", "no_clinical", "no_outcome", "no_qc_passed_admission_scan", "series_pending_review")
CLINICAL_EXPORT = [
    "age", "sex", "gcs_total", "gcs_motor", "pupils_unreactive", "hypoxia", "hypotension", "glucose_mmol_l",
    "hemoglobin_g_dl", "marshall_ct", "tsah", "edh", "major_extracranial_injury",
]
OUTCOME_EXPORT = ["gos_6m", "died", "days_to_death_or_censor"]


def _cutoff(as_of: dt.date | dt.datetime | None) -> dt.datetime | None:
    """Exclusive upper bound: a date means the whole of that day."""
    if as_of is None:
        return None
    if isinstance(as_of, dt.datetime):
        return as_of.replace(tzinfo=None) + dt.timedelta(microseconds=1)
    return dt.datetime.combine(as_of, dt.time()) + dt.timedelta(days=1)


def _series_status(cutoff: dt.datetime | None) -> Select:
    """One row per series arrived by `cutoff`: series id, study id and the QC status then (no join when `cutoff`
    is None: the counts below aggregate series per study first and join the 40 times smaller result upwards)."""
    base = select(Series.id.label("series_id"), Series.study_id)
    if cutoff is None:
        return base.add_columns(Series.qc_status.label("status"))
    # The status as of the date is that of the latest decision taken by then (every series gets an
    # automatic one at ingest); decision ids grow with time, so max(id) is the latest.
    latest = (
        select(QCDecision.series_id, func.max(QCDecision.id).label("decision_id"))
        .where(QCDecision.decided_at < cutoff)
        .group_by(QCDecision.series_id)
        .subquery()
    )
    return (
        base.add_columns(func.coalesce(QCDecision.status, literal(QC_PENDING)).label("status"))
        .outerjoin(latest, latest.c.series_id == Series.id)
        .outerjoin(QCDecision, QCDecision.id == latest.c.decision_id)
        .where(Series.ingested_at < cutoff)
    )


def _series_counts(cutoff: dt.datetime | None, count_segmented: bool) -> Select:
    """Per center id, in one statement: patients with a CT, series by QC status, patients with a follow-up scan
    (a second study with a series that has not failed QC) and, when asked, series with a finished segmentation.

    Series are counted per study first (one pass over the series table, no join), then per patient, then per
    center: joining 100,000 series to their study and patient before grouping cost several times more, and so
    did reading the series once per count.
    """
    status = _series_status(cutoff).subquery()

    def n_status(*values: str):  # noqa: ANN202 - a SQL expression
        return func.sum(case((status.c.status.in_(values), 1), else_=0))

    per_study = (select(status.c.study_id, func.count().label("series"),
                        n_status(QC_PASSED).label("qc_passed"), n_status(QC_AUTO_FAILED).label("qc_failed_auto"),
                        n_status(QC_FAILED).label("qc_failed_manual"), n_status(QC_PENDING).label("qc_pending"),
                        func.max(case((status.c.status.in_((QC_PASSED, QC_PENDING)), 1), else_=0)).label("usable"))
                 .group_by(status.c.study_id))
    if count_segmented:
        done = select(SegmentationRun.series_id).where(SegmentationRun.status == RUN_DONE).distinct().subquery()
        per_study = (per_study.add_columns(func.count(done.c.series_id).label("segmented"))
                     .outerjoin(done, done.c.series_id == status.c.series_id))
    per_study = per_study.subquery()
    counted = ["series", "qc_passed", "qc_failed_auto", "qc_failed_manual", "qc_pending"] + (
        ["segmented"] if count_segmented else [])
    per_patient = (select(Study.patient_id, *(func.sum(per_study.c[c]).label(c) for c in counted),
                          func.sum(per_study.c.usable).label("usable_studies"))
                   .join(per_study, per_study.c.study_id == Study.id).group_by(Study.patient_id).subquery())
    return (select(Patient.center_id, func.count().label("with_ct"),
                   *(func.sum(per_patient.c[c]).label(c) for c in counted),
                   func.sum(case((per_patient.c.usable_studies >= 2, 1), else_=0)).label("with_follow_up"))
            .join(per_patient, per_patient.c.patient_id == Patient.id).group_by(Patient.center_id))


def collection_progress(session: Session, as_of: dt.date | dt.datetime | None = None, *,
                        count_segmented: bool = False) -> pd.DataFrame:
    """Per center (and a TOTAL line): patients, series by QC status, clinical data, outcomes, follow-ups.

    `as_of` counts only what had arrived, and QC decisions taken, by then (a date includes that day).
    `count_segmented` adds `series_segmented`: series with a finished segmentation (by any model).
    """
    cutoff = _cutoff(as_of)
    clinical_on = ClinicalRecord.patient_id == Patient.id
    outcome_on = Outcome.patient_id == Patient.id
    patient_on = Patient.center_id == Center.id
    if cutoff is not None:
        clinical_on = and_(clinical_on, ClinicalRecord.imported_at < cutoff)
        outcome_on = and_(outcome_on, Outcome.imported_at < cutoff)
        patient_on = and_(patient_on, Patient.created_at < cutoff)
    patients = session.execute(
        select(Center.id.label("center_id"), Center.code.label("center"),
               func.count(distinct(Patient.id)).label("patients"),
               func.count(distinct(ClinicalRecord.id)).label("with_clinical"),
               func.count(distinct(Outcome.id)).label("with_outcome"))
        .select_from(Center)
        .outerjoin(Patient, patient_on)
        .outerjoin(ClinicalRecord, clinical_on)
        .outerjoin(Outcome, outcome_on)
        .group_by(Center.id, Center.code)
    )
    table = pd.DataFrame(patients.all(), columns=list(patients.keys()))
    series = session.execute(_series_counts(cutoff, count_segmented))
    table = table.merge(pd.DataFrame(series.all(), columns=list(series.keys())), on="center_id", how="left")
    columns = PROGRESS_COLUMNS + (["series_segmented"] if count_segmented else [])
    table = table.rename(columns={"segmented": "series_segmented"}).reindex(columns=columns)
    counts = columns[1:]
    table[counts] = table[counts].apply(pd.to_numeric).fillna(0).astype(int)
    table = table.sort_values("center").reset_index(drop=True)
    total = pd.DataFrame([{"center": TOTAL, **table[counts].sum().astype(int).to_dict()}])
    return pd.concat([table, total], ignore_index=True)[columns]


MISSING_COLUMNS = ["center", "pseudo_id", "item", "what", "reference", "reason", "detail"]


def missing_items(session: Session, center: str | None = None) -> pd.DataFrame:
    """What each center still owes, one row per (patient or series, item).

    Columns: center, pseudo_id, item (the code), what (the item in words, from the data dictionary),
    reference (a short identifier to search for: '…' and the last characters of the study or series UID),
    reason (why, in words: the QC reasons of the admission scan's series) and detail (the full UID, for
    exports and scripts).
    """
    patient_filter = [Center.code == center] if center else []
    base = select(Center.code.label("center"), Patient.pseudo_id, Patient.id).join(Patient.center).where(
        *patient_filter)
    frames = []

    def add(item: str, query: Select, reason: str = "") -> None:
        frame = _frame(session, query)
        frames.append(pd.DataFrame({
            "center": frame["center"], "pseudo_id": frame["pseudo_id"], "item": item,
            "detail": frame.get("detail", ""),
            "reason": frame.get("reason", reason)}))

    has_series = select(Study.patient_id).where(exists().where(Series.study_id == Study.id))
    add("no_ct", base.where(Patient.id.not_in(has_series)), "clinical data or outcome arrived, no CT series")
    add("no_clinical", base.where(Patient.id.not_in(select(ClinicalRecord.patient_id))), "no row in clinical.csv")
    add("no_outcome", base.where(Patient.id.not_in(select(Outcome.patient_id))), "no row in outcomes.csv")

    # The admission scan is the patient's earliest study (ties and undated last, then by study id); it owes a
    # QC-passed series. Ranked in SQL (a window over per-study aggregates) so that only the owed studies come back,
    # not one row per study of the registry. The series are aggregated per study first (one pass, no join): a
    # study's date is its earliest series' acquisition, or the study's own date where that is earlier and some
    # series is undated (what the earliest of each series' acquisition-else-study date is).
    counted = (select(Series.study_id, func.sum(case((Series.qc_status == QC_PASSED, 1), else_=0)).label("passed"),
                      func.min(Series.acquisition_datetime).label("first_acquired"),
                      func.sum(case((Series.acquisition_datetime.is_(None), 1), else_=0)).label("undated"))
               .group_by(Series.study_id))
    if center:  # one center's series only, found through the indexes
        counted = counted.where(Series.study_id.in_(
            select(Study.id).join(Patient, Study.patient_id == Patient.id).join(Center, Patient.center_id == Center.id)
            .where(*patient_filter)))
    counted = counted.subquery()
    when = case((and_(counted.c.undated > 0, Study.study_datetime.is_not(None),
                      or_(counted.c.first_acquired.is_(None), Study.study_datetime < counted.c.first_acquired)),
                 Study.study_datetime), else_=counted.c.first_acquired)
    per_study = (
        select(Study.id.label("study_id"), counted.c.passed,
               func.row_number().over(partition_by=Study.patient_id,
                                      order_by=(when.asc().nulls_last(), Study.id)).label("rank"))
        .join(counted, counted.c.study_id == Study.id)
    )
    if center:
        per_study = per_study.join(Patient, Study.patient_id == Patient.id).join(
            Center, Patient.center_id == Center.id).where(*patient_filter)
    ranked = per_study.subquery()
    owed = _frame(session, (
        select(Center.code.label("center"), Patient.pseudo_id, Study.id.label("study_id"), Study.study_instance_uid)
        .select_from(ranked).join(Study, Study.id == ranked.c.study_id)
        .join(Patient, Study.patient_id == Patient.id).join(Center, Patient.center_id == Center.id)
        .where(ranked.c.rank == 1, ranked.c.passed == 0)))
    if len(owed):
        why = _study_qc_reasons(session, owed["study_id"].tolist())
        frames.append(pd.DataFrame({"center": owed["center"], "pseudo_id": owed["pseudo_id"],
                                    "item": "no_qc_passed_admission_scan", "detail": owed["study_instance_uid"],
                                    "reason": owed["study_id"].map(why).fillna("")}))

    add("series_pending_review",
        select(Center.code.label("center"), Patient.pseudo_id, Series.series_instance_uid.label("detail"),
               func.coalesce(Series.description, "").label("reason"))
        .join(Study, Series.study_id == Study.id).join(Patient, Study.patient_id == Patient.id)
        .join(Center, Patient.center_id == Center.id)
        .where(Series.qc_status == QC_PENDING, *patient_filter))
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame(columns=MISSING_COLUMNS)
    items = pd.concat(frames, ignore_index=True)
    items["what"] = items["item"].map({item: dictionary.label(item) for item in items["item"].unique()})
    # Column-wise, not row by row (tens of thousands of pending series at consortium scale): what
    # `dictionary.short_uid` gives each UID, after "series " or "study ".
    pending = items["item"] == "series_pending_review"
    detail = items["detail"].fillna("").astype(str)
    short = detail.where(detail.str.len() <= dictionary.SHORT_UID_CHARS + 1,
                         "…" + detail.str[-dictionary.SHORT_UID_CHARS:])
    items["reference"] = (pending.map({True: "series ", False: "study "}) + short).where(detail != "", "")
    described = items.loc[pending, "reason"]
    items.loc[pending, "reason"] = "waiting for a reviewer" + (" (series '" + described + "')").where(
        described != "", "")
    return items.sort_values(["center", "item", "pseudo_id"]).reset_index(drop=True)[MISSING_COLUMNS]


def _frame(session: Session, query: Select) -> pd.DataFrame:
    """The rows of `query` as a frame, read through the session's connection (plain rows: no ORM row handling,
    which cost more than the query itself on tens of thousands of rows)."""
    with bulk_read():
        result = session.connection().execute(query)
        return pd.DataFrame(result.all(), columns=list(result.keys()))


def _study_qc_reasons(session: Session, study_ids: list[int]) -> dict[int, str]:
    """Per study, why none of its series passed QC, in words: 'series …12345678 failed automatic checks: Too few
    slices; series …87654321 waiting for review'."""
    if not study_ids:
        return {}
    ids = bindparam("study_ids", [int(i) for i in study_ids], expanding=True, literal_execute=True)  # integers inline
    rows = session.connection().execute(
        select(Series.study_id, Series.series_instance_uid, Series.qc_status, Series.qc_reasons)
        .where(Series.study_id.in_(ids)).order_by(Series.study_id, Series.series_number, Series.id)).all()
    texts: dict[int, list[str]] = {}
    for study_id, uid, status, reasons in rows:
        words = {QC_AUTO_FAILED: "failed automatic checks", QC_FAILED: "failed by the reviewer",
                 QC_PENDING: "waiting for review"}.get(status, status)
        because = ", ".join(dictionary.label(r) for r in (reasons or []))
        texts.setdefault(study_id, []).append(f"series {dictionary.short_uid(uid)} {words}"
                                              + (f": {because}" if because else ""))
    return {k: "; ".join(v) for k, v in texts.items()}


def missing_summary(items: pd.DataFrame) -> pd.DataFrame:
    """Counts of `missing_items` per center and item (one column per item, a TOTAL line)."""
    table = pd.crosstab(items["center"], items["item"]) if len(items) else pd.DataFrame()
    table = table.reindex(columns=list(MISSING_ITEMS), fill_value=0).astype(int)
    table.index.name = "center"
    table = table.reset_index()
    total = pd.DataFrame([{"center": TOTAL, **table[list(MISSING_ITEMS)].sum().astype(int).to_dict()}])
    return pd.concat([table, total], ignore_index=True)


def patient_table(session: Session) -> pd.DataFrame:
    """The analysis-ready table: one row per patient, clinical data, outcome, series counts and scan days.

    `scan_days` lists the days from injury of the studies with a QC-passed series (';'-separated);
    no original ID and no date appear, only the pseudonym and days relative to injury.
    """
    clinical_cols = [getattr(ClinicalRecord, c) for c in CLINICAL_EXPORT]
    outcome_cols = [getattr(Outcome, c) for c in OUTCOME_EXPORT]
    passed = case((Series.qc_status == QC_PASSED, 1), else_=0)
    counts = (
        select(Study.patient_id, func.count(Series.id).label("n_series"),
               func.sum(passed).label("n_series_qc_passed"), func.count(distinct(Study.id)).label("n_studies"))
        .join(Series, Series.study_id == Study.id).group_by(Study.patient_id).subquery()
    )
    rows = session.execute(
        select(Patient.id.label("patient_key"), Patient.pseudo_id, Center.code.label("center"), *clinical_cols,
               *outcome_cols, counts.c.n_series, counts.c.n_series_qc_passed, counts.c.n_studies)
        .join(Center, Patient.center_id == Center.id)
        .outerjoin(ClinicalRecord, ClinicalRecord.patient_id == Patient.id)
        .outerjoin(Outcome, Outcome.patient_id == Patient.id)
        .outerjoin(counts, counts.c.patient_id == Patient.id)
        .order_by(Center.code, Patient.pseudo_id)
    ).all()
    columns = ["patient_key", "pseudo_id", "center", *CLINICAL_EXPORT, *OUTCOME_EXPORT, "n_series",
               "n_series_qc_passed", "n_studies"]
    table = pd.DataFrame(rows, columns=columns)
    for c in ("n_series", "n_series_qc_passed", "n_studies"):
        table[c] = table[c].fillna(0).astype(int)

    days = pd.DataFrame(session.execute(
        select(Study.patient_id, Study.id, func.min(Series.days_from_injury))
        .join(Series, Series.study_id == Study.id)
        .where(Series.qc_status == QC_PASSED, Series.days_from_injury.is_not(None))
        .group_by(Study.patient_id, Study.id)
    ).all(), columns=["patient_key", "study_id", "day"])
    if len(days):
        joined = (days.sort_values("day").groupby("patient_key")["day"]
                  .agg(lambda d: ";".join(f"{v:.2f}" for v in d)).rename("scan_days"))
        table = table.merge(joined, left_on="patient_key", right_index=True, how="left")
    else:
        table["scan_days"] = None
    for c in ("hypoxia", "hypotension", "tsah", "edh", "major_extracranial_injury", "died"):
        table[c] = table[c].astype("boolean").astype("Int64")
    for c in ("gcs_total", "gcs_motor", "pupils_unreactive", "marshall_ct", "gos_6m"):
        table[c] = table[c].astype("Int64")
    return table.drop(columns="patient_key").reset_index(drop=True)


def write_patient_table(table: pd.DataFrame, path: str) -> None:
    """CSV or Parquet, chosen by the file extension."""
    lowered = str(path).lower()
    if lowered.endswith(".parquet") or lowered.endswith(".pq"):
        table.to_parquet(path, index=False)
    elif lowered.endswith(".csv"):
        write_csv(table, path)  # formula-looking cells neutralized (registry.csv_export)
    else:
        raise ValueError(f"{path}: export format is chosen by extension: .csv or .parquet")
