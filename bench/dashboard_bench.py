"""First render of the dashboard's Collection page with 1,000 patients and 5,000 series, SQLite and PostgreSQL.

Prints, per backend: the time to bulk-insert the registry (Core insert executemany), the first render
of the page (Streamlit AppTest run with the query caches emptied: what a user who opens the page
after a change waits for; median of repeats), a cached re-render, and the same per-center counts
computed the naive way (ORM objects loaded and counted in Python) for a ratio. Target: < 2 s.

    .venv/bin/python bench/dashboard_bench.py [--patients 1000] [--series 5000] [--repeats 5]

PostgreSQL: CTSTUDY_TEST_PG_URL (default postgresql+psycopg://postgres@127.0.0.1:5432/test); a
throw-away database is created beside it and dropped after. Skipped with a message when unreachable.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import streamlit as st
from sqlalchemy import insert, select, text
from sqlalchemy.orm import Session, selectinload
from streamlit.testing.v1 import AppTest

from registry.access.users import add_user
from registry.db.engine import make_engine, session_scope, upgrade
from registry.db.models import (
    Center,
    ClinicalRecord,
    ManualAnnotation,
    Outcome,
    Patient,
    QCDecision,
    SegmentationRun,
    Series,
    Study,
)
from registry.db.scratch_database import ServerUnreachable, scratch_database
from registry.home import Home

PAGE = Path(__file__).resolve().parents[1] / "dashboard" / "pages" / "1_Collection.py"
STATUSES = np.array(["passed", "pending", "auto_failed", "failed"])


def fill_registry(db_url: str, n_patients: int, n_series: int, seed: int = 0) -> float:
    """Insert a registry of the given size with Core executemany; returns the seconds it took."""
    rng = np.random.default_rng(seed)
    start = dt.datetime(2024, 1, 1)
    centers = [{"id": i + 1, "code": f"C{i + 1:02d}", "name": f"Center {i + 1}"} for i in range(8)]
    patient_center = rng.integers(1, len(centers) + 1, n_patients)
    arrival = [start + dt.timedelta(days=float(d)) for d in np.sort(rng.uniform(0, 365, n_patients))]
    patients = [{"id": i + 1, "pseudo_id": f"{uuid.UUID(int=int(rng.integers(1 << 62))).hex[:16]}{i:06d}",
                 "center_id": int(patient_center[i]), "created_at": arrival[i]} for i in range(n_patients)]
    clinical = [{"patient_id": p["id"], "age": float(rng.integers(18, 90)), "gcs_motor": int(rng.integers(1, 7)),
                 "pupils_unreactive": int(rng.integers(0, 3)), "imported_at": p["created_at"]}
                for p in patients if rng.random() < 0.9]
    outcomes = [{"patient_id": p["id"], "gos_6m": int(rng.integers(1, 6)), "died": False,
                 "days_to_death_or_censor": 183.0, "imported_at": p["created_at"]}
                for p in patients if rng.random() < 0.8]
    # Each series its own study, at most three studies per patient: admission and follow-ups.
    owner = np.sort(rng.integers(0, n_patients, n_series))
    studies, series, decisions, annotations, runs = [], [], [], [], []
    status = STATUSES[rng.choice(4, n_series, p=[0.6, 0.25, 0.1, 0.05])]
    for k in range(n_series):
        p = patients[owner[k]]
        day = float(rng.uniform(0, 10))
        studies.append({"id": k + 1, "study_instance_uid": f"1.2.3.{k + 1}", "patient_id": p["id"],
                        "study_datetime": p["created_at"] + dt.timedelta(days=day)})
        series.append({"id": k + 1, "series_instance_uid": f"1.2.3.{k + 1}.1", "study_id": k + 1, "modality": "CT",
                       "days_from_injury": day, "instance_count": 40, "slice_thickness": 5.0,
                       "qc_status": str(status[k]), "qc_reasons": [] if status[k] in ("passed", "pending")
                       else ["too_few_slices"], "phi_tags": [], "ingested_at": p["created_at"]
                       + dt.timedelta(days=day)})
        decisions.append({"series_id": k + 1, "status": "pending" if status[k] != "auto_failed" else "auto_failed",
                          "reasons": [], "actor": "auto-qc", "automatic": True,
                          "decided_at": series[-1]["ingested_at"]})
        if status[k] in ("passed", "failed"):
            decisions.append({"series_id": k + 1, "status": str(status[k]), "reasons": [], "actor": "coordinator",
                              "automatic": False, "decided_at": series[-1]["ingested_at"] + dt.timedelta(days=1)})
        if status[k] == "passed" and rng.random() < 0.3:
            annotations.append({"series_id": k + 1, "mask_path": f"masks/{k}.nii.gz", "sha256": f"{k:064d}"})
        if status[k] == "passed":
            runs.append({"series_id": k + 1, "model_name": "unet2d", "model_version": "v1", "status": "done",
                         "mask_path": f"masks/auto/{k}.nii.gz"})
    engine = make_engine(db_url)
    t0 = time.perf_counter()
    with engine.begin() as conn:
        for table, rows in ((Center, centers), (Patient, patients), (ClinicalRecord, clinical), (Outcome, outcomes),
                            (Study, studies), (Series, series), (QCDecision, decisions),
                            (ManualAnnotation, annotations), (SegmentationRun, runs)):
            if rows:
                conn.execute(insert(table.__table__), rows)
        if engine.dialect.name == "postgresql":
            # Explicit ids were inserted: move the sequences past them, as an ingest would have.
            for table in ("center", "patient", "study", "series"):
                conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                  f"(SELECT max(id) FROM {table}))"))
    seconds = time.perf_counter() - t0
    engine.dispose()
    return seconds


def first_render_seconds() -> tuple[float, AppTest]:
    """One AppTest run of the Collection page as a statistician, with every dashboard cache emptied first."""
    from registry.access.users import Identity

    st.cache_data.clear()
    st.cache_resource.clear()
    at = AppTest.from_file(str(PAGE), default_timeout=120)
    at.session_state["identity"] = Identity("bench", "statistician", None)
    t0 = time.perf_counter()
    at.run()
    seconds = time.perf_counter() - t0
    if at.exception:
        raise RuntimeError(f"Collection page failed: {at.exception[0].value}")
    return seconds, at


def cached_render_seconds(at: AppTest) -> float:
    t0 = time.perf_counter()
    at.run()
    return time.perf_counter() - t0


def naive_counts_seconds(db_url: str) -> float:
    """Per-center counts by loading every patient with its studies, series and records as ORM objects."""
    engine = make_engine(db_url)
    t0 = time.perf_counter()
    with Session(engine) as s:
        counts: dict[str, dict[str, int]] = {}
        patients = s.scalars(select(Patient).options(
            selectinload(Patient.center), selectinload(Patient.clinical), selectinload(Patient.outcome),
            selectinload(Patient.studies).selectinload(Study.series))).all()
        for p in patients:
            c = counts.setdefault(p.center.code, {"patients": 0, "series": 0, "passed": 0, "clinical": 0})
            c["patients"] += 1
            c["clinical"] += p.clinical is not None
            for study in p.studies:
                for se in study.series:
                    c["series"] += 1
                    c["passed"] += se.qc_status == "passed"
    seconds = time.perf_counter() - t0
    engine.dispose()
    return seconds


def bench(name: str, home: Home, n_patients: int, n_series: int, repeats: int) -> None:
    home.ensure()
    upgrade(home.db_url)
    insert_s = fill_registry(home.db_url, n_patients, n_series)
    engine = make_engine(home.db_url)
    with session_scope(engine) as s:  # every page request re-checks the account (dashboard.auth)
        add_user(s, "bench", "statistician", "bench password 1")
    engine.dispose()
    os.environ["CTSTUDY_HOME"], os.environ["CTSTUDY_DB_URL"] = str(home.root), home.db_url
    cold_process, at = first_render_seconds()  # includes importing plotly and building the engine pool
    firsts = [first_render_seconds()[0] for _ in range(repeats)]
    cached = statistics.median(cached_render_seconds(at) for _ in range(repeats))
    naive = statistics.median(naive_counts_seconds(home.db_url) for _ in range(max(1, repeats // 2)))
    patients = {m.label: m.value for m in at.metric}["Patients"]
    median = statistics.median(firsts)
    print(f"{name:10s} {n_patients} patients ({patients} shown), {n_series} series: bulk insert {insert_s:.2f} s; "
          f"Collection first render median {median:.3f} s (min {min(firsts):.3f}, max {max(firsts):.3f}, "
          f"n={repeats}; very first in process {cold_process:.3f} s); cached re-render {cached:.3f} s; "
          f"naive ORM counts alone {naive:.3f} s = {naive / median:.1f}x the whole page render; "
          f"target < 2 s: {'met' if median < 2 else 'MISSED'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=1000)
    parser.add_argument("--series", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        bench("SQLite", Home.resolve(Path(tmp) / "sqlite"), args.patients, args.series, args.repeats)
        try:
            with scratch_database("ctstudy_bench") as url:
                try:
                    bench("PostgreSQL", Home.resolve(Path(tmp) / "pg", url), args.patients, args.series,
                          args.repeats)
                finally:
                    st.cache_resource.clear()  # closes nothing by itself: dispose the pooled engines before DROP
        except ServerUnreachable as exc:
            print(f"{exc}; PostgreSQL skipped", file=sys.stderr)


if __name__ == "__main__":
    main()
