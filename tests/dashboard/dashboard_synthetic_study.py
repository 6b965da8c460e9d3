"""A small synthetic study pushed through the real pipeline in-process, for the browser test.

synthetic.generate_study writes DICOM and CSVs; the registry ingests them (with its QC), imports
clinical data and outcomes and the truth masks as manual annotations; biomarkers are extracted
from those masks; two logistic fits and one user per role complete it.
"""

from __future__ import annotations

from pathlib import Path

from dashboard_registry_factory import PASSWORD, model_fits
from sqlalchemy import select

from biomarkers.extract import extract_features
from biomarkers.store import mask_jobs
from registry.access.users import add_user
from registry.annotations import import_annotations
from registry.clinical.csv_import import import_table
from registry.db.engine import make_engine, session_scope
from registry.db.models import Center, Patient
from registry.home import Home
from registry.ingest.directory import ingest_directory
from synthetic.study import generate_study


def build(home: Home, folder: Path) -> dict[str, str]:
    """Fill an initialised home from a 2-center, 6-patient study; returns the users' centers by role name."""
    study = folder / "study"
    generate_study(study, centers=2, patients=6, seed=3, matrix=128, defects=True)
    engine = make_engine(home.db_url)
    try:
        ingest_directory(engine, home, study / "dicom", actor="test", workers=1)
        import_table(engine, home, study / "clinical.csv", "clinical", actor="test", skip_invalid=True)
        import_table(engine, home, study / "outcomes.csv", "outcomes", actor="test", skip_invalid=True)
        with session_scope(engine) as s:
            import_annotations(s, study / "truth" / "masks", home.masks_dir, actor="test", annotator="truth")
        with session_scope(engine) as s:
            jobs = mask_jobs(s, "manual")
        extract_features(engine, jobs, actor="test")
        with session_scope(engine) as s:
            codes = list(s.scalars(select(Center.code).join(Patient, Patient.center_id == Center.id)
                                   .group_by(Center.code).order_by(Center.code)))
            add_user(s, "coord", "coordinator", PASSWORD, center_code=codes[0])
            add_user(s, "stat", "statistician", PASSWORD)
            s.add_all(model_fits())
    finally:
        engine.dispose()
    return {"coordinator": codes[0], "other": codes[1]}
