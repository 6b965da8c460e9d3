"""Building blocks: terms, analysis table, Rubin's rules, metrics, IMPACT, prediction intervals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from lifelines.utils import concordance_index
from scipy.special import expit
from sklearn.metrics import roc_auc_score

from prognosis.analysis_table import analysis_table_hash, build_analysis_table, missingness_report
from prognosis.impact import impact_coefficients, impact_risk
from prognosis.logistic import LogisticModel
from prognosis.metrics import (
    auc_delong,
    bootstrap_aucs,
    calibration_intercept_slope,
    harrell_c,
    net_reclassification,
    stratified_bootstrap_indices,
)
from prognosis.rubin import rubin_pool
from prognosis.terms import age_spline_basis, design_terms

KEY = {"center": ["A", "A", "B"], "patient_id": ["p1", "p2", "p3"]}


def _clinical(**over) -> pd.DataFrame:
    base = {**KEY, "age": [30.0, 60.0, 45.0], "gcs_motor": [1, 5, 4], "pupils_unreactive": [2, 0, 1],
            "hypoxia": [1, 0, np.nan], "hypotension": [0, 1, 0], "glucose_mmol_l": [8.0, 6.5, 9.1],
            "hemoglobin_g_dl": [12.0, 14.0, 11.0], "marshall_ct": [1, 3, 6], "tsah": [1, 0, 0], "edh": [0, 1, 0]}
    return pd.DataFrame({**base, **over})


def _outcomes(**over) -> pd.DataFrame:
    return pd.DataFrame({**KEY, "gos_6m": [1, 3, 5], "died": [1, 0, 0],
                         "days_to_death_or_censor": [3.0, 180.0, 180.0], **over})


def _features() -> pd.DataFrame:
    return pd.DataFrame({**KEY, "adm_hematoma_ml": [20.0, 0.0, 3.0], "peak_edema_ml": [15.0, 0.0, 1.0],
                         "adm_midline_shift_mm": [6.0, 0.0, 1.0], "adm_lesion_count": [2, 0, 1],
                         "adm_lesion_left": [1.0, np.nan, np.nan]})


def test_design_terms_follow_the_documented_codings() -> None:
    t = design_terms(pd.concat([_clinical(), _features().drop(columns=["center", "patient_id"])], axis=1))
    assert t.loc[0, ["motor_1", "motor_2", "motor_3", "motor_4"]].tolist() == [1, 0, 0, 0]
    assert t.loc[1, ["motor_1", "motor_2", "motor_3", "motor_4"]].tolist() == [0, 0, 0, 0]  # 5-6 reference
    assert t.loc[2, ["pupils_one", "pupils_none"]].tolist() == [1, 0]
    assert t.loc[0, "log_adm_hematoma_ml"] == pytest.approx(np.log1p(20.0))
    # Lesion-free scan: "left" is 0, not missing; a lesion with unknown side stays missing.
    assert t.loc[1, "adm_lesion_left"] == 0.0
    assert np.isnan(t.loc[2, "adm_lesion_left"])
    assert np.isnan(t.loc[2, "hypoxia"])


def test_analysis_table_joins_derives_outcomes_and_reports_missingness() -> None:
    table = build_analysis_table(_clinical(), _outcomes(), _features())
    assert len(table) == 3
    assert table["unfavourable"].tolist() == [1.0, 1.0, 0.0]
    report = missingness_report(table)
    assert report.loc["hypoxia", "n_missing"] == 1
    assert report.loc["hypoxia", "pct_B"] == 100.0 and report.loc["hypoxia", "pct_A"] == 0.0


def test_analysis_table_rejects_bad_input_naming_it() -> None:
    with pytest.raises(ValueError, match="gos_6m == 1 must match died"):
        build_analysis_table(_clinical(), _outcomes(died=[0, 0, 0]), _features())
    dup = _clinical()
    dup.loc[1, "patient_id"] = "p1"
    with pytest.raises(ValueError, match="share a \\(center, patient_id\\)"):
        build_analysis_table(dup, _outcomes(), _features())
    with pytest.raises(ValueError, match="unknown column.*gcs_motr"):
        build_analysis_table(_clinical(gcs_motr=[1, 2, 3]), _outcomes(), _features())


def test_data_hash_ignores_row_order_but_not_content() -> None:
    table = build_analysis_table(_clinical(), _outcomes(), _features())
    h = analysis_table_hash(table)
    assert analysis_table_hash(table.iloc[::-1]) == h
    changed = table.copy()
    changed.loc[0, "age"] = 31.0
    assert analysis_table_hash(changed) != h


def test_age_spline_is_linear_beyond_the_outer_knots() -> None:
    knots = [20.0, 35.0, 50.0, 80.0]
    basis = age_spline_basis(np.array([85.0, 90.0, 95.0, 100.0]), knots).to_numpy()
    assert np.allclose(np.diff(basis, n=2, axis=0), 0.0, atol=1e-9)
    assert basis.shape[1] == len(knots) - 1
    below = age_spline_basis(np.array([5.0, 10.0]), knots)
    assert np.allclose(below.iloc[:, 1:], 0.0)


def test_rubin_pooling_matches_hand_computation() -> None:
    q = np.array([[1.0], [2.0], [3.0]])
    u = np.array([[[0.5]], [[0.5]], [[0.5]]])
    pooled = rubin_pool(q, u)
    # W = 0.5, B = 1, T = W + (1 + 1/3) B = 1.8333; r = (4/3)/0.5; dof = 2 (1 + 1/r)^2.
    assert pooled.params[0] == pytest.approx(2.0)
    assert pooled.cov[0, 0] == pytest.approx(0.5 + 4 / 3)
    r = (4 / 3) / 0.5
    assert pooled.dof[0] == pytest.approx(2 * (1 + 1 / r) ** 2)
    single = rubin_pool(q[:1], u[:1])
    assert single.cov[0, 0] == pytest.approx(0.5) and np.isinf(single.dof[0])


def test_auc_bootstrap_delong_and_nri_agree_with_references() -> None:
    rng = np.random.default_rng(3)
    y = rng.binomial(1, 0.3, 1500)
    p = expit(-1 + 1.2 * y + rng.normal(0, 1, 1500))
    idx = stratified_bootstrap_indices(y, 300, seed=1)
    boot = bootstrap_aucs(y, p, idx)
    assert boot[7] == pytest.approx(roc_auc_score(y[idx[7]], p[idx[7]]))
    d = auc_delong(y, p)
    assert d["auc"] == pytest.approx(roc_auc_score(y, p))
    assert d["se"] == pytest.approx(boot.std(ddof=1), rel=0.2)  # two estimates of the same sampling SD
    same = net_reclassification(y, p, p, n_boot=50)
    assert same["nri"] == 0.0
    better = net_reclassification(y, p, expit(-1 + 3 * y + rng.normal(0, 1, 1500)), n_boot=50)
    assert better["nri_lower"] > 0


def test_calibration_of_true_probabilities_is_ideal() -> None:
    rng = np.random.default_rng(5)
    p = expit(rng.normal(-0.5, 1.3, 20000))
    y = rng.binomial(1, p)
    cal = calibration_intercept_slope(y, p)
    assert abs(cal["calibration_intercept"]) < 0.05
    assert abs(cal["calibration_slope"] - 1) < 0.05
    over = calibration_intercept_slope(y, expit(2 * np.log(p / (1 - p))))
    assert over["calibration_slope"] == pytest.approx(0.5, abs=0.05)


def test_harrell_c_matches_lifelines() -> None:
    rng = np.random.default_rng(7)
    risk = rng.normal(size=300)
    t = rng.exponential(np.exp(-risk))
    e = rng.binomial(1, 0.7, 300)
    assert harrell_c(t, e, risk) == pytest.approx(concordance_index(t, -risk, e))
    assert harrell_c(t, e, risk) > 0.6


def test_impact_predictions_match_hand_computed_values() -> None:
    # Patient: 40 years, motor 3, one pupil unreactive, hypoxia, no hypotension, Marshall III,
    # tSAH, no EDH, glucose 9, hemoglobin 12.
    df = pd.DataFrame({"age": [40.0], "gcs_motor": [3], "pupils_unreactive": [1], "hypoxia": [1], "hypotension": [0],
                       "marshall_ct": [3], "tsah": [1], "edh": [0], "glucose_mmol_l": [9.0],
                       "hemoglobin_g_dl": [12.0]})
    # Coefficients typed from the project's ANCHORS.md (shared notes) (Steyerberg et al. PLoS Med 2008).
    core_mort = -3.109 + 0.034 * 40 + 0.797 + 0.514
    ct_unfav = -3.023 + 0.033 * 40 + 1.185 + 0.442 + 0.316 + 0.543 + 0.567
    lab_mort = -3.184 + 0.020 * 40 + 0.778 + 0.09 + 0.36 + 0.715 + 0.74 + 0.097 * 9 - 0.086 * 12
    assert impact_risk(df, "core", "mortality")[0] == pytest.approx(1 / (1 + np.exp(-core_mort)), abs=1e-12)
    assert impact_risk(df, "core+ct", "unfavourable")[0] == pytest.approx(1 / (1 + np.exp(-ct_unfav)), abs=1e-12)
    assert impact_risk(df, "core+ct+lab", "mortality")[0] == pytest.approx(1 / (1 + np.exp(-lab_mort)), abs=1e-12)
    assert "glucose_mmol_l" not in impact_coefficients("core+ct", "mortality")
    # Motor 5-6 with both pupils reactive and Marshall II: the intercept and age only.
    ref = df.assign(gcs_motor=6, pupils_unreactive=0, hypoxia=0, marshall_ct=2, tsah=0)
    assert impact_risk(ref, "core+ct", "mortality")[0] == pytest.approx(expit(-3.787 + 0.032 * 40))
    assert np.isnan(impact_risk(df.assign(glucose_mmol_l=np.nan), "core+ct+lab", "mortality")[0])


def test_single_patient_prediction_interval_and_stored_spec_round_trip() -> None:
    rng = np.random.default_rng(9)
    df = pd.DataFrame({"age": rng.uniform(18, 90, 800), "hypoxia": rng.binomial(1, 0.3, 800).astype(float)})
    df["died"] = rng.binomial(1, expit(-4 + 0.05 * df["age"] + 0.7 * df["hypoxia"]))
    model = LogisticModel(["age", "hypoxia"], "died", age_spline_knots=4).fit(df)
    patient = pd.DataFrame({"age": [70.0], "hypoxia": [1.0]})
    interval = model.predict_interval(patient)
    assert interval["lower"][0] < interval["risk"][0] < interval["upper"][0]
    again = LogisticModel.from_spec(model.to_spec())
    assert again.predict_interval(patient).to_numpy() == pytest.approx(interval.to_numpy())
    with pytest.raises(ValueError, match="missing values in hypoxia"):
        model.predict_proba(patient.assign(hypoxia=np.nan))


def test_predict_patient_from_a_stored_spec_uses_raw_values() -> None:
    from prognosis.logistic import predict_patient

    rng = np.random.default_rng(4)
    raw = pd.DataFrame({"age": rng.uniform(18, 90, 600), "gcs_motor": rng.integers(1, 7, 600)})
    terms = design_terms(raw)
    raw["died"] = rng.binomial(1, expit(-3 + 0.04 * raw["age"] + 1.2 * terms["motor_1"]))
    model = LogisticModel(["age", "motor_1", "motor_2"], "died").fit(pd.concat([terms, raw[["died"]]], axis=1))
    out = predict_patient(model.to_spec(), {"age": 50, "gcs_motor": 1})
    lp = model.params_["const"] + 50 * model.params_["age"] + model.params_["motor_1"]
    assert out["risk"] == pytest.approx(expit(lp))
    assert out["lower"] < out["risk"] < out["upper"]


def test_small_study_fit_counts_optimizer_warnings_and_flags_low_events_per_variable() -> None:
    """60 patients, 17 terms: the fit completes, its refits' warnings are counted, not printed, and it says why."""
    import warnings

    from prognosis.fitting import MIN_EVENTS_PER_VARIABLE, fit_outcome_model
    from synthetic.outcomes import simulate_tabular

    small = simulate_tabular(60, seed=3)
    table = build_analysis_table(small.clinical, small.outcomes, small.patient_level)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning that escapes fails the test
        result = fit_outcome_model(table, "mortality", "clinical+imaging", cv="kfold", m=2, n_boot=30, seed=0)
    epv = result.n_events / len(result.variables)
    assert result.metrics["events_per_variable"] == pytest.approx(epv)
    assert epv < MIN_EVENTS_PER_VARIABLE
    assert "per variable" in result.extra["caution"]
    assert result.metrics["optimizer_warnings"] >= 0
    assert 0.0 <= result.metrics["cv_auc"] <= 1.0
