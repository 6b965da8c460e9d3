"""The tabular simulation: realistic outcome rates, the documented formats, an oracle that is the truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from synthetic.cohort import CLINICAL_COLUMNS
from synthetic.features import PATIENT_LEVEL_COLUMNS, patient_level_features
from synthetic.outcomes import TERMS, design_matrix, outcome_model, simulate_tabular, true_probabilities

OUTCOME_COLUMNS = ["center", "patient_id", "gos_6m", "died", "days_to_death_or_censor"]


@pytest.fixture(scope="module")
def big():
    return simulate_tabular(3000, seed=11)


def test_outcome_rates_are_plausible_for_moderate_severe_tbi(big):
    """Stated targets: 6-month mortality 25-35 %, unfavourable outcome (GOS 1-3) 45-60 %."""
    o = big.outcomes
    known = o.dropna(subset=["gos_6m"])
    assert 0.25 <= o["died"].mean() <= 0.35
    assert 0.45 <= (known["gos_6m"] <= 3).mean() <= 0.60
    assert ((o["gos_6m"] == 1) == (o["died"] == 1))[o["gos_6m"].notna()].all()
    assert (o["days_to_death_or_censor"] > 0).all() and (o["days_to_death_or_censor"] <= 180).all()
    dead = o.loc[o["died"] == 1, "days_to_death_or_censor"]
    assert dead.median() < 30  # most deaths are early


def test_clinical_table_follows_the_import_format_and_has_missing_values(big):
    c = big.clinical
    assert list(c.columns) == list(CLINICAL_COLUMNS)
    assert c["gcs_motor"].between(1, 6).all() and c["age"].between(0, 110).all()
    assert c["gcs_total"].dropna().between(3, 15).all()
    assert set(c["sex"]) == {"M", "F"}
    assert 0.05 <= c["glucose_mmol_l"].isna().mean() <= 0.20
    assert c["age"].notna().all()
    assert pd.to_datetime(c["injury_datetime"], format="%Y-%m-%dT%H:%M").notna().all()
    assert list(big.outcomes.columns) == OUTCOME_COLUMNS


def test_correlations_run_the_clinical_way(big):
    c = big.clinical_complete.merge(big.patient_level, on=["center", "patient_id"])
    assert c["gcs_motor"].corr(np.log1p(c["adm_hematoma_ml"])) < -0.1  # bigger lesions, worse motor score
    assert c["gcs_motor"].corr(c["pupils_unreactive"]) < -0.3
    assert c["glucose_mmol_l"].corr(c["gcs_motor"]) < -0.1
    assert 0.15 <= (c["gcs_motor"] <= 4).mean() <= 0.75


def test_model_json_has_the_documented_layout():
    m = outcome_model()
    assert m["model"] == "proportional_odds" and list(m["cutpoints"]) == sorted(m["cutpoints"])
    assert m["terms"]["adm_lesion_left"] == 0 and m["null_terms"] == ["adm_lesion_left"]
    assert m["mortality"]["intercept"] == m["cutpoints"][0] and m["unfavourable"]["intercept"] == m["cutpoints"][2]
    assert set(m["terms"]) == set(TERMS) == set(m["term_definitions"])


def test_oracle_beats_a_single_predictor_and_matches_drawn_rates(big):
    truth = big.truth.merge(big.outcomes, on=["center", "patient_id"])
    auc_oracle = roc_auc_score(truth["died"], truth["p_death"])
    auc_age = roc_auc_score(truth["died"], truth.merge(big.clinical_complete)["age"])
    assert auc_oracle > 0.75 and auc_oracle > auc_age + 0.05
    assert truth["p_death"].mean() == pytest.approx(truth["died"].mean(), abs=0.03)
    probs = truth[[f"p_gos_{k}" for k in range(1, 6)]]
    assert np.allclose(probs.sum(axis=1), 1) and (probs.to_numpy() >= 0).all()


def test_logistic_fit_recovers_the_mortality_coefficients():
    """The data are drawn from the model: a plain logistic fit on 6,000 patients finds its coefficients."""
    import statsmodels.api as sm

    tab = simulate_tabular(6000, seed=3)
    x = design_matrix(tab.clinical_complete, tab.patient_level)
    y = tab.outcomes.set_index(["center", "patient_id"]).loc[x.index, "died"]
    fit = sm.Logit(y.to_numpy(), sm.add_constant(x.to_numpy())).fit(disp=0)
    coef = pd.Series(fit.params[1:], index=x.columns)
    se = pd.Series(fit.bse[1:], index=x.columns)
    for term in ("age", "motor_1", "motor_2", "pupils_none", "log_adm_hematoma_ml"):
        assert abs(coef[term] - TERMS[term]) < 3.5 * se[term], term
    assert abs(coef["adm_lesion_left"]) < 3.5 * se["adm_lesion_left"]


def test_patient_level_features_follow_the_definitions():
    tp = pd.DataFrame({
        "center": "X", "patient_id": "X-1", "timepoint": [0, 1, 2], "days_from_injury": [0.1, 1.1, 5.1],
        "hematoma_ml": [10.0, 14.0, 8.0], "edema_ml": [4.0, 9.0, 20.0], "extra_axial_ml": 0.0,
        "lesion_count": [2, 2, 1], "side": "left", "midline_shift_mm": [3.0, 4.0, 2.0],
        "largest_lesion_left": [1.0, 1.0, 1.0]})
    f = patient_level_features(tp).iloc[0]
    assert list(patient_level_features(tp).columns) == list(PATIENT_LEVEL_COLUMNS)
    assert f["hematoma_expansion_ml"] == 4 and f["hematoma_expansion_pct"] == pytest.approx(40)
    assert f["significant_expansion"] == 1 and f["peak_edema_day"] == 5.1
    assert f["edema_growth_ml_per_day"] == pytest.approx(16 / 5) and f["n_scans"] == 3
    assert f["adm_lesion_count"] == 2 and f["adm_lesion_left"] == 1


def test_true_probabilities_need_complete_clinical_data(big):
    with pytest.raises(ValueError, match="missing values"):
        true_probabilities(big.model, big.patient_level, big.clinical)


def test_same_seed_same_tables_different_seed_differs():
    a, b, c = simulate_tabular(200, 5), simulate_tabular(200, 5), simulate_tabular(200, 6)
    pd.testing.assert_frame_equal(a.clinical, b.clinical)
    pd.testing.assert_frame_equal(a.outcomes, b.outcomes)
    assert not a.clinical_complete["age"].equals(c.clinical_complete["age"])
