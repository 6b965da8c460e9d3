"""Which patients each model is fitted on when only some have CT: imaging models on the scanned patients alone,
clinical models on everyone without imaging imputed for the unscanned; the demo's clinical models meet Riley's
criteria at the demo's size."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ctstudy.demo import DEMO_TABULAR_PATIENTS
from prognosis.analysis_table import build_analysis_table
from prognosis.fitting import analysis_tables, fit_outcome_model, n_parameters, penalty_decision
from prognosis.model_rows import fitted_on, has_admission_scan, model_rows
from prognosis.report import support_section
from prognosis.sample_size import riley_sample_size
from prognosis.terms import IMAGING_RAW, terms_of
from synthetic.centers import center_profiles
from synthetic.outcomes import simulate_tabular
from synthetic.tabular_cohort import tabular_cohort


def _study_table(imaged: int, without_images: int, seed: int) -> pd.DataFrame:
    """The analysis table of a study whose `imaged` patients have CT biomarkers and the others clinical data only."""
    img = simulate_tabular(imaged, seed=seed)
    more = tabular_cohort(without_images, seed, center_profiles(5))
    return build_analysis_table(pd.concat([img.clinical, more.clinical]), pd.concat([img.outcomes, more.outcomes]),
                                img.patient_level)


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return _study_table(80, 400, seed=5)


def test_imaging_model_is_fitted_on_the_scanned_patients_only(table):
    scanned = set(table.loc[has_admission_scan(table) & table["died"].notna(), "patient_id"])
    assert len(scanned) == 80
    result = fit_outcome_model(table, "mortality", "clinical+imaging", cv="kfold", m=2, n_boot=10, seed=1)
    assert result.n_patients == 80
    assert result.n_events == int(table.loc[table["patient_id"].isin(scanned), "died"].sum())
    assert set(result.curves["cv_risk"]["patient_id"]) == scanned  # validation too: no unscanned row
    assert "admission CT" in result.spec["rows"] and result.spec["n_without_scan"] == 0
    for data in analysis_tables(table, ["died"], terms_of("clinical+imaging"), "mice", 2, 1):
        assert set(data["patient_id"]) == scanned


def test_clinical_model_uses_everyone_and_imputes_no_imaging_for_the_unscanned(table):
    unscanned = ~has_admission_scan(table)
    data = analysis_tables(table, ["died"], terms_of("clinical"), "mice", 2, 1)
    for d in data:
        assert len(d) == len(table)
        assert d.loc[~has_admission_scan(d), list(IMAGING_RAW)].isna().all().all()
        assert not d[["gcs_motor", "pupils_unreactive", "hypoxia", "glucose_mmol_l"]].isna().any().any()
    result = fit_outcome_model(table, "mortality", "clinical", cv=None, m=2, n_boot=10, seed=1)
    assert result.n_patients == len(table)
    assert result.spec["n_without_scan"] == int(unscanned.sum()) == 400
    assert "400 of them without CT images" in result.spec["rows"]


def test_rows_follow_the_terms():
    table = pd.DataFrame({"center": ["A"] * 4, "patient_id": list("abcd"), "died": [1.0, 0.0, np.nan, 1.0],
                          "adm_hematoma_ml": [3.0, np.nan, 2.0, 0.0]})
    assert list(model_rows(table, ["died"], terms_of("clinical"))["patient_id"]) == ["a", "b", "d"]
    assert list(model_rows(table, ["died"], terms_of("imaging"))["patient_id"]) == ["a", "d"]


@pytest.fixture(scope="module")
def demo_table() -> pd.DataFrame:
    """A study of the demo's size: 60 imaged patients and the demo's patients without images."""
    return _study_table(60, DEMO_TABULAR_PATIENTS, seed=0)


def test_the_demo_sizes_clinical_models_meet_rileys_criteria_and_imaging_models_are_penalized(demo_table):
    table = demo_table
    for outcome, col in (("mortality", "died"), ("unfavourable", "unfavourable")):
        clinical = model_rows(table, [col], terms_of("clinical"))
        k = n_parameters(terms_of("clinical"))
        prevalence = float(clinical[col].mean())
        max_r2 = 1 - np.exp(2 * (prevalence * np.log(prevalence) + (1 - prevalence) * np.log(1 - prevalence)))
        riley = riley_sample_size(k, prevalence, 0.15 * max_r2)  # before any fit: 15 % of the maximum R²
        assert len(clinical) >= riley["n_required"], (outcome, len(clinical), riley)
        assert not penalty_decision(clinical, col, k, "auto")["penalized"]
        imaging = model_rows(table, [col], terms_of("clinical+imaging"))
        assert len(imaging) <= 60
        assert penalty_decision(imaging, col, n_parameters(terms_of("clinical+imaging")), "auto")["penalized"]


def test_report_says_which_models_meet_the_criteria_and_on_which_patients(demo_table):
    fits = []
    for i, features in enumerate(("clinical", "clinical+imaging"), start=1):
        r = fit_outcome_model(demo_table, "mortality", features, cv=None, m=2, n_boot=20, seed=0)
        fits.append({"id": i, "outcome": r.outcome, "feature_set": r.feature_set, "model_kind": r.model_kind,
                     "n_patients": r.n_patients, "n_events": r.n_events, "metrics": r.metrics, "spec": r.spec})
    clinical, imaging = fits
    assert clinical["n_patients"] >= clinical["metrics"]["riley"]["n_required"]
    assert imaging["n_patients"] < imaging["metrics"]["riley"]["n_required"]
    assert imaging["metrics"]["estimation"]["penalty_chosen_by"] == "cv"
    assert fitted_on(clinical["spec"]) == f"all patients with the outcome ({DEMO_TABULAR_PATIENTS:,} without CT)"
    assert fitted_on(imaging["spec"]) == "patients with an admission CT"
    html_text = support_section(fits, len(demo_table))
    assert "can support only a first look" not in html_text
    assert "criteria are met by 6-month mortality" in html_text and "fit #1), fitted on 1,060 patients" in html_text
    assert "and not by 6-month mortality" in html_text and "fit #2), fitted on 60 patients" in html_text
    assert "patients with an admission CT" in html_text


def test_impact_is_scored_on_every_patient_with_the_outcome_scanned_or_not(table):
    from prognosis.fitting import impact_scoring_tables
    from prognosis.impact import impact_validation_table

    imputed = impact_scoring_tables(table, m=2, seed=1)
    for outcome, col in (("mortality", "died"), ("unfavourable", "unfavourable")):
        for d in imputed[outcome]:
            assert set(d["patient_id"]) == set(table.loc[table[col].notna(), "patient_id"])
    scored = impact_validation_table(table, imputed)
    eligible = int(((table["gcs_total"] <= 12) & table["died"].notna()).sum())
    core = scored.set_index(["outcome", "model"]).loc[("mortality", "IMPACT core"), "n"]
    assert core > 80 and core <= eligible  # the unscanned patients are scored too, not only the 80 with CT
