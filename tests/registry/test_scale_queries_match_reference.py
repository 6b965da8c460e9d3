"""The registry reads rewritten for 100,000 series return exactly what the straightforward versions did.

The rewritten reads (missing items, the Collection page's arrivals per day, the QC queue, the analysis
table's clinical/outcome and feature frames) aggregate and rank in SQL and decode JSON in one call; each
is compared here, on SQLite and PostgreSQL, with a plain reference that reads every row through the ORM
and computes in pandas, as the code did before. The registry is the scale bench's synthetic one (small),
with the cases that matter made to occur: undated series, several studies a patient, free-text QC reasons
with commas, identifiers flagged in headers, missing feature values, a second feature source.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from registry.db.engine import make_engine
from registry.db.models import (
    QC_PASSED,
    Base,
    Center,
    ClinicalRecord,
    Outcome,
    Patient,
    Series,
    SeriesFeatures,
    Study,
)
from registry.home import Home
from vocabulary import dictionary

BENCH = Path(__file__).resolve().parents[2] / "bench" / "scale_bench.py"


def _bench():  # noqa: ANN202 - the bench module
    spec = importlib.util.spec_from_file_location("scale_bench", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _admission_cases(tables: dict) -> None:
    """Two patients whose admission scan is found only by dating each series (its acquisition, else its study's
    date), not by the study's earliest acquisition alone: each owes an admission scan; dated wrongly, neither."""
    study_cols, studies = tables["study"]
    series_cols, series = tables["series"]
    patient = tables["patient"][1][0]
    t0 = dt.datetime(2025, 6, 1, 8)
    cases = {
        # A: series at t0 (auto-failed) and an undated one, the study dated 30 days later; B (t0 + 10 days) passed.
        "admission-mixed": [(t0 + dt.timedelta(days=30), [(t0, "auto_failed"), (None, "pending")]),
                            (t0 + dt.timedelta(days=10), [(t0 + dt.timedelta(days=10), "passed")])],
        # C: one undated series, the study dated t0; D (t0 + 5 days) passed.
        "admission-undated": [(t0, [(None, "auto_failed")]),
                              (t0 + dt.timedelta(days=5), [(t0 + dt.timedelta(days=5), "passed")])],
    }
    patients = tables["patient"][1]
    for name, plan in cases.items():
        pid = len(patients) + 1
        patients.append((pid, name, patient[2], patient[3]))
        for study_at, plan_series in plan:
            sid = len(studies) + 1
            studies.append((sid, f"2.25.9{sid:09d}", pid, study_at, "CT HEAD"))
            for acquired, status in plan_series:
                row = dict(zip(series_cols, series[0], strict=True))
                row.update(id=len(series) + 1, series_instance_uid=f"2.25.8{len(series) + 1:09d}", study_id=sid,
                           acquisition_datetime=acquired, qc_status=status)
                series.append(tuple(row[c] for c in series_cols))
    tables["study"], tables["series"] = (study_cols, studies), (series_cols, series)


def _fill(db_url: str) -> None:
    tables = _bench().synthetic_tables(n_series=300, n_patients=60, n_centers=3, seed=3)
    _admission_cases(tables)
    series_cols = tables["series"][0]
    series = [list(r) for r in tables["series"][1]]
    for k, row in enumerate(series):
        if k % 17 == 0:
            row[series_cols.index("description")] = None  # no description: the pending reason says less
        if k % 7 == 0 and k < 300:
            row[series_cols.index("acquisition_datetime")] = None  # undated: ranked last, study date used
        if k % 11 == 0:
            row[series_cols.index("phi_tags")] = json.dumps(["PatientName", "PatientBirthDate"])
        if k % 13 == 0:
            row[series_cols.index("qc_reasons")] = json.dumps(["slice_gap", "motion, severe \"streaks\""])
    tables["series"] = (series_cols, [tuple(r) for r in series])
    feat_cols, feats = tables["series_features"]
    feats = [list(r) for r in feats]
    for k, row in enumerate(feats):
        if k % 5 == 0:
            values = json.loads(row[feat_cols.index("values")])
            values["midline_shift_mm"] = None
            row[feat_cols.index("values")] = json.dumps(values)
    # A manual source for a few series that also have the pipeline's: `auto` must keep the segmentation's.
    extra = [[len(feats) + i + 1, r[1], "manual", None, None, "b" * 64, r[6], r[7], "[]", r[9]]
             for i, r in enumerate(feats[:10])]
    for row in extra:
        row[3] = None
    tables["series_features"] = (feat_cols, [tuple(r) for r in feats + extra])
    # Series segmented twice (a re-run) and a failed run: each segmented series counts once, failures never.
    run_cols, runs = tables["segmentation_run"]
    reruns = [(len(runs) + i + 1, r[1], r[2], "e" * 64, r[4], "done" if i % 2 else "failed", None, r[7], r[8],
               r[9], r[10], r[11]) for i, r in enumerate(runs[:8])]
    failed_only = [(len(runs) + 9, 2, "unet2d", "d" * 64, "cpu", "failed", "out of memory", None, None, None,
                    dt.datetime(2024, 3, 1), None)]
    tables["segmentation_run"] = (run_cols, runs + reruns + failed_only)
    engine = make_engine(db_url)
    with engine.begin() as conn:
        for name, (columns, rows) in tables.items():
            table = Base.metadata.tables[name]
            json_cols = {c.name for c in table.columns if c.type.__class__.__name__ == "JSON"}
            conn.execute(table.insert(), [
                {c: (json.loads(v) if c in json_cols and isinstance(v, str) else v) for c, v in zip(columns, r,
                                                                                                    strict=True)}
                for r in rows])
    engine.dispose()


@pytest.fixture()
def filled(any_home: Home) -> str:
    _fill(any_home.db_url)
    return any_home.db_url


# --- references: every row through the ORM, computed in pandas ------------------------------------

def _reference_admission_owed(session: Session) -> pd.DataFrame:
    studies = pd.DataFrame(session.execute(
        select(Center.code.label("center"), Patient.pseudo_id, Study.patient_id, Study.id.label("study_id"),
               Study.study_instance_uid,
               func.min(func.coalesce(Series.acquisition_datetime, Study.study_datetime)).label("when"),
               func.sum(case((Series.qc_status == QC_PASSED, 1), else_=0)).label("passed"))
        .join(Series, Series.study_id == Study.id).join(Patient, Study.patient_id == Patient.id)
        .join(Center, Patient.center_id == Center.id)
        .group_by(Center.code, Patient.pseudo_id, Study.patient_id, Study.id, Study.study_instance_uid)
    ).all(), columns=["center", "pseudo_id", "patient_id", "study_id", "study_instance_uid", "when", "passed"])
    first = studies.sort_values(["patient_id", "when", "study_id"], na_position="last").groupby(
        "patient_id").head(1)
    return first[first["passed"] == 0]


def _reference_series_features(session: Session) -> pd.DataFrame:
    from biomarkers.store import SOURCE_PREFERENCE

    records = []
    for feats, uid, days, acquired, study_uid, pseudo, center in session.execute(
            select(SeriesFeatures, Series.series_instance_uid, Series.days_from_injury, Series.acquisition_datetime,
                   Study.study_instance_uid, Patient.pseudo_id, Center.code)
            .join(Series, Series.id == SeriesFeatures.series_id).join(Study, Study.id == Series.study_id)
            .join(Patient, Patient.id == Study.patient_id).join(Center, Center.id == Patient.center_id)).all():
        records.append({
            "center": center, "patient_id": pseudo, "study_instance_uid": study_uid, "series_instance_uid": uid,
            "days_from_injury": days, "acquisition_datetime": acquired, "source": feats.source,
            "definitions_version": feats.definitions_version, "mask_sha256": feats.mask_sha256,
            "segmentation_run_id": feats.segmentation_run_id, "annotation_id": feats.annotation_id,
            "computed_at": feats.computed_at, **{k: (np.nan if v is None else v) for k, v in feats.values.items()},
        })
    table = pd.DataFrame.from_records(records)
    rank = {s: i for i, s in enumerate(SOURCE_PREFERENCE)}
    table = (table.assign(_rank=table["source"].map(rank)).sort_values(["series_instance_uid", "_rank"])
             .drop_duplicates("series_instance_uid").drop(columns="_rank"))
    table = table.sort_values(["center", "patient_id", "days_from_injury", "acquisition_datetime"],
                              na_position="last", kind="stable").reset_index(drop=True)
    table.insert(4, "timepoint", table.groupby(["center", "patient_id"]).cumcount())
    return table


def _reference_clinical_outcomes(session: Session) -> tuple[pd.DataFrame, pd.DataFrame]:
    from prognosis.store import _CLINICAL_FIELDS

    def plain(v):  # noqa: ANN001, ANN202
        return float(v) if isinstance(v, bool) else v

    clinical, outcomes = [], []
    for code, pseudo, rec, out in session.execute(
            select(Center.code, Patient.pseudo_id, ClinicalRecord, Outcome)
            .join(Center, Center.id == Patient.center_id)
            .outerjoin(ClinicalRecord, ClinicalRecord.patient_id == Patient.id)
            .outerjoin(Outcome, Outcome.patient_id == Patient.id)).all():
        key = {"center": code, "patient_id": pseudo}
        clinical.append({**key, **{f: plain(getattr(rec, f)) if rec else None for f in _CLINICAL_FIELDS}})
        outcomes.append({**key, "gos_6m": out.gos_6m if out else None, "died": plain(out.died) if out else None,
                         "days_to_death_or_censor": out.days_to_death_or_censor if out else None})
    clin = pd.DataFrame(clinical, columns=["center", "patient_id", *_CLINICAL_FIELDS])
    outc = pd.DataFrame(outcomes, columns=["center", "patient_id", "gos_6m", "died", "days_to_death_or_censor"])
    for col in clin.columns.drop(["center", "patient_id", "sex"]):
        clin[col] = pd.to_numeric(clin[col], errors="raise")
    for col in ("gos_6m", "died", "days_to_death_or_censor"):
        outc[col] = pd.to_numeric(outc[col], errors="raise")
    return clin, outc


def _by_key(df: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    return df.sort_values(keys, kind="stable").reset_index(drop=True)


# --- the tests --------------------------------------------------------------------------------------

def test_missing_items_rank_the_admission_scan_as_the_reference(filled: str) -> None:
    from registry.collection.progress import missing_items

    engine = make_engine(filled)
    with Session(engine) as s:
        items = missing_items(s)
        reference = _reference_admission_owed(s)
        c07 = missing_items(s, "C02")
        description = dict(s.execute(select(Series.series_instance_uid, Series.description)).all())
    engine.dispose()
    owed = items[items["item"] == "no_qc_passed_admission_scan"]
    assert len(reference) > 3, "the synthetic registry must owe some admission scans"
    assert sorted(zip(owed["pseudo_id"], owed["detail"], strict=True)) == sorted(
        zip(reference["pseudo_id"], reference["study_instance_uid"], strict=True))
    assert owed["reason"].str.startswith("series ").all()
    assert set(items["item"]) >= {"no_clinical", "no_outcome", "series_pending_review",
                                  "no_qc_passed_admission_scan"}
    assert {"admission-mixed", "admission-undated"} <= set(owed["pseudo_id"])
    pending = items[items["item"] == "series_pending_review"]
    assert pending["reason"].str.startswith("waiting for a reviewer").all()
    assert pending["reference"].str.startswith("series ").all()
    # The words and references, built column-wise, are what the dictionary gives row by row.
    assert None in description.values() and set(pending["detail"]) <= set(description)
    for r in items.itertuples():
        assert r.what == dictionary.label(r.item)
        assert r.reference == (("series " if r.item == "series_pending_review" else "study ")
                               + dictionary.short_uid(r.detail) if r.detail else "")
        if r.item == "series_pending_review":
            d = description[r.detail]
            assert r.reason == "waiting for a reviewer" + (f" (series '{d}')" if d else "")
    assert set(owed["reference"].str[:6]) == {"study "} and (items["detail"] == "").sum() > 0
    assert (items[items["item"] == "no_clinical"]["reason"] == "no row in clinical.csv").all()
    pd.testing.assert_frame_equal(c07, items[items["center"] == "C02"].reset_index(drop=True))


def test_arrival_counts_are_the_daily_counts_of_every_arrival(filled: str) -> None:
    from dashboard import collection, queries

    try:
        for basis in queries.ARRIVAL_BASES:
            for center in (None, "C03"):
                queries.clear_caches()
                events = queries.arrival_events(filled, center, basis)
                expected = collection.cumulative_by_center(events)
                got = collection.cumulative_from_daily(queries.arrival_counts(filled, center, basis))
                assert len(expected) >= 2 and expected["cumulative"].max() > 10
                pd.testing.assert_frame_equal(got, expected, check_dtype=False)
                assert (got["cumulative"].to_numpy() == expected["cumulative"].to_numpy()).all()
    finally:
        queries.engine_for(filled).dispose()
        queries.clear_caches()


def test_qc_queue_decodes_reasons_and_identifiers_as_the_reference(filled: str) -> None:
    from dashboard import queries

    try:
        queries.clear_caches()
        queue = queries.qc_queue(filled, None)
        with Session(queries.engine_for(filled)) as s:
            rows = s.execute(select(Series.series_instance_uid, Series.qc_reasons, Series.phi_tags)).all()
    finally:
        queries.engine_for(filled).dispose()
        queries.clear_caches()
    expected = {uid: (", ".join(str(r) for r in reasons or []), bool(phi), ", ".join(phi or []))
                for uid, reasons, phi in rows}
    got = {r.series_uid: (r.qc_reasons, r.phi_flag, r.phi_tags) for r in queue.itertuples()}
    assert got == expected
    assert queue["phi_flag"].any() and queue["qc_reasons"].str.contains('motion, severe "streaks"').any()
    assert list(queue["ingested_at"]) == sorted(queue["ingested_at"])


def test_analysis_table_frames_are_the_reference(filled: str) -> None:
    from biomarkers.store import patient_feature_table, series_feature_table, with_feature_types
    from biomarkers.timecourse import admission_ct_classes, patient_level_features
    from prognosis.analysis_table import build_analysis_table
    from prognosis.store import analysis_table_from_registry, registry_frames

    engine = make_engine(filled)
    with Session(engine) as s:
        clin, outc, _ = registry_frames(s)
        ref_clin, ref_outc = _reference_clinical_outcomes(s)
        series = series_feature_table(s)
        ref_series = _reference_series_features(s)
        patients = patient_feature_table(s)
        table = analysis_table_from_registry(s)
    engine.dispose()
    # The patient features (on integer patient ids, as numbers) and the analysis table are exactly what the
    # per-series reference gives through the pure functions.
    ref_patients = with_feature_types(patient_level_features(ref_series)).reset_index()
    pd.testing.assert_frame_equal(patients, ref_patients)
    ref_ct = admission_ct_classes(ref_series).reset_index()
    pd.testing.assert_frame_equal(table, build_analysis_table(ref_clin, ref_outc, ref_patients, ref_ct))
    keys = ["center", "patient_id"]
    pd.testing.assert_frame_equal(_by_key(clin, keys), _by_key(ref_clin, keys))
    pd.testing.assert_frame_equal(_by_key(outc, keys), _by_key(ref_outc, keys))
    pd.testing.assert_frame_equal(series, ref_series)
    assert series["midline_shift_mm"].isna().any() and set(series["source"]) == {"segmentation"}
    assert len(table) == 62 and table["n_scans"].notna().sum() > 30  # 60 synthetic patients, 2 admission cases
    assert isinstance(table["adm_hematoma_ml"].iloc[0], float | np.floating)


@pytest.mark.parametrize("center", [None, "C02"])
def test_qc_queue_page_is_the_filtered_ordered_queue(filled: str, center: str | None) -> None:
    """Pages of the SQL-filtered queue, put together, are the whole queue filtered and ordered in pandas."""
    from dashboard import qc_view, queries, review

    try:
        queries.clear_caches()
        queue = qc_view.review_order(queries.qc_queue(filled, center))
        counts = queries.qc_status_counts(filled, center)
        assert counts["n"].sum() == len(queue)
        assert dict(counts.groupby("qc_status")["n"].sum()) == dict(queue["qc_status"].value_counts())
        centers = tuple(sorted(counts["center"].unique()))
        cases = [(("pending", "auto_failed"), "any", ""), (("passed", "failed", "pending", "auto_failed"), "any", ""),
                 (("pending", "auto_failed"), "flagged", ""), (("passed", "pending"), "clean", ""),
                 (("passed", "failed", "pending", "auto_failed"), "any", "slice"),
                 (("passed", "failed", "pending", "auto_failed"), "any", "streaks"),
                 (("pending", "auto_failed", "passed"), "any", "…" + queue["series_uid"].iloc[5][-8:]),
                 (("pending", "auto_failed", "passed"), "any", queue["pseudo_id"].iloc[3][:6].upper()),
                 (("pending", "auto_failed"), "any", "100%_x")]
        for statuses, phi, search in cases:
            expected = qc_view.search_queue(review.filtered_queue(queue, list(centers), list(statuses), "", phi),
                                            search)
            pages, total, page = [], None, 0
            while True:
                rows, total = queries.qc_queue_page(filled, center, centers, statuses, phi, search, page, 37)
                if rows.empty:
                    break
                pages.append(rows)
                page += 1
            got = pd.concat(pages, ignore_index=True) if pages else expected.iloc[:0]
            assert total == len(expected), (statuses, phi, search)
            pd.testing.assert_frame_equal(got.reset_index(drop=True), expected.reset_index(drop=True),
                                          check_dtype=False, obj=str((statuses, phi, search)))
        assert any(len(qc_view.search_queue(queue, s)) for s in ("slice", "streaks"))
    finally:
        queries.engine_for(filled).dispose()
        queries.clear_caches()


def test_collection_counts_segmented_series_once(filled: str) -> None:
    from dashboard import queries
    from registry.db.models import SegmentationRun

    try:
        queries.clear_caches()
        counts = queries.center_counts(filled, None).set_index("center")["series_segmented"]
        with Session(queries.engine_for(filled)) as s:
            expected = dict(s.execute(
                select(Center.code, func.count(func.distinct(SegmentationRun.series_id)))
                .join(Patient, Patient.center_id == Center.id).join(Study, Study.patient_id == Patient.id)
                .join(Series, Series.study_id == Study.id).join(SegmentationRun, SegmentationRun.series_id == Series.id)
                .where(SegmentationRun.status == "done").group_by(Center.code)).all())
    finally:
        queries.engine_for(filled).dispose()
        queries.clear_caches()
    assert counts.to_dict() == expected and sum(expected.values()) > 50
