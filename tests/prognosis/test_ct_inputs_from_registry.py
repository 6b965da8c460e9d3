"""The analysis table read from the registry takes IMPACT's CT predictors from the admission scan's computed
classification where it is known, says so per patient, and `prognosis fit`, the IMPACT validation and the report
use it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from ctstudy.cli import app
from prognosis.analysis_table import analysis_table_hash, build_analysis_table
from prognosis.ct_inputs import ct_source_counts
from prognosis.impact import impact_validation_table
from prognosis.report import report_html
from prognosis.store import analysis_table_from_registry, registry_frames
from registry.db.engine import make_engine, session_scope
from registry.db.models import ModelFit
from registry.deid.pseudonym import pseudo_id
from registry.home import Home

runner = CliRunner()


def cli(home: Home, *args: str) -> None:
    result = runner.invoke(app, ["--home", str(home.root), "--db-url", home.db_url, *args])
    assert result.exit_code == 0, result.output


@pytest.fixture(scope="module")
def study(small_scored_study: Path) -> Path:
    return small_scored_study


def _clinical_that_disagrees(study: Path, out: Path) -> pd.DataFrame:
    """The study's clinical CSV with every Marshall class other than the admission scan's true one, and every
    patient in IMPACT's population (GCS <= 12) with the core+CT predictors present, and one patient more who has
    no scan (written with the outcomes to `out`)."""
    clinical = pd.read_csv(study / "clinical.csv")
    outcomes = pd.read_csv(study / "outcomes.csv")
    no_scan = clinical.iloc[[0]].assign(patient_id="NOSCAN-1")
    clinical = pd.concat([clinical, no_scan], ignore_index=True)
    outcomes = pd.concat([outcomes, outcomes.iloc[[0]].assign(patient_id="NOSCAN-1")], ignore_index=True)
    outcomes.to_csv(out / "outcomes.csv", index=False)
    truth = pd.read_csv(study / "truth" / "series.csv")
    admission = truth.sort_values(["patient_id", "days_from_injury"]).groupby("patient_id").first()
    true_class = clinical["patient_id"].map(admission["marshall_ct_class"])
    clinical["marshall_ct"] = np.where(true_class == 1, 2, 1)
    clinical["gcs_motor"] = clinical["gcs_motor"].fillna(4).clip(upper=5)
    clinical["gcs_total"] = clinical["gcs_motor"] + 3
    for col in ("pupils_unreactive", "hypoxia", "hypotension", "tsah", "edh"):
        clinical[col] = clinical[col].fillna(0).astype(int)
    clinical.to_csv(out / "clinical.csv", index=False)
    return clinical


def test_the_registry_table_uses_computed_marshall_classes_and_says_so(home: Home, study: Path,
                                                                        tmp_path: Path) -> None:
    clinical = _clinical_that_disagrees(study, tmp_path)
    cli(home, "registry", "ingest", str(study / "dicom"))
    cli(home, "registry", "import-clinical", str(tmp_path / "clinical.csv"), "--create")
    cli(home, "registry", "import-outcomes", str(tmp_path / "outcomes.csv"))
    cli(home, "biomarkers", "extract", "--source", "truth-dir", str(study))
    engine = make_engine(home.db_url)
    try:
        with session_scope(engine) as session:
            table = analysis_table_from_registry(session)
            clin, outc, feats = registry_frames(session)
    finally:
        engine.dispose()
    pseudo = [pseudo_id(home.secret(), c, p) for c, p in zip(clinical["center"], clinical["patient_id"], strict=True)]
    record = pd.Series(clinical["marshall_ct"].to_numpy(), index=pseudo)
    assert set(record.index) == set(table["patient_id"])
    by_patient = table.set_index("patient_id")
    computed = by_patient["adm_marshall_ct_class"].notna()
    assert 8 <= computed.sum() < len(table), by_patient["adm_marshall_ct_class"]
    got = by_patient[computed]
    # Where the admission scan's class is known it is the one used, not the record's (which differs from it).
    assert (got["marshall_ct"] == got["adm_marshall_ct_class"]).all()
    assert (got["marshall_ct"] != record.reindex(got.index)).all()
    assert got["marshall_ct_source"].str.startswith("computed").all()
    rest = by_patient[~computed]
    assert (rest["marshall_ct"] == record.reindex(rest.index)).all()
    assert rest["marshall_ct_source"].str.startswith("clinical record").all()
    # The computed EDH is measured on the scan; tSAH, which the scan cannot show, comes from the record.
    assert got["edh_source"].eq("computed (measured)").all()
    assert got["tsah_source"].eq("computed (clinical_record)").all()
    assert rest["edh_source"].eq("clinical record").all() and rest["tsah_source"].eq("clinical record").all()
    assert by_patient["adm_rotterdam_ct_score"].notna().any()

    counts = ct_source_counts(table).set_index("predictor")
    assert counts.loc["Marshall CT class", "computed"] == computed.sum()

    # IMPACT core+CT is scored on those values: it differs from the same patients scored with the record's class,
    # and IMPACT core (no CT) does not.
    on_record = build_analysis_table(clin, outc, feats)
    assert (on_record.set_index("patient_id")["marshall_ct"] == record.reindex(by_patient.index)).all()
    ours, theirs = (impact_validation_table(t).set_index(["outcome", "model"]) for t in (table, on_record))
    assert ours.loc[("mortality", "IMPACT core+ct"), "n"] == len(table)
    core, core_ct = (slice(None), "IMPACT core"), (slice(None), "IMPACT core+ct")
    assert np.allclose(ours.loc[core, "brier"], theirs.loc[core, "brier"])
    assert not np.allclose(ours.loc[core_ct, "brier"], theirs.loc[core_ct, "brier"])

    html = report_html([], None, {}, impact_validation_table(table), None, None, table=table)
    assert "Where the CT predictors came from" in html and "Computed from the admission scan" in html

    # `prognosis fit` fits this table: its recorded data snapshot is the hash of the table with computed classes.
    result = runner.invoke(app, ["--home", str(home.root), "--db-url", home.db_url, "prognosis", "fit", "--outcome",
                                 "unfavourable", "--features", "clinical", "--cv", "none", "--m", "1", "--n-boot", "10",
                                 "--penalty", "none"])
    assert result.exit_code == 0, result.output
    engine = make_engine(home.db_url)
    try:
        with session_scope(engine) as session:
            fit = session.scalars(select(ModelFit)).one()
            assert fit.data_hash == analysis_table_hash(table) != analysis_table_hash(on_record)
    finally:
        engine.dispose()
