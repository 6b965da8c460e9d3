"""What the methods recover on a synthetic study of 2,500 patients with a known generating model.

Coverage is checked honestly: with 32 CIs (16 terms x 2 outcomes) at 95 %, a single draw misses at
least one ~80 % of the time, so the fast test uses Bonferroni-adjusted CIs (family-wise 95 %),
and test_repeated.py (slow) checks the per-CI coverage rate of plain 95 % CIs over 200 studies.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from prognosis_study import complete_table, observed_table, oracle

from prognosis.cox import CoxModel
from prognosis.fitting import compare_feature_sets, fit_outcome_model
from prognosis.kaplan_meier import kaplan_meier_by_strata, quantile_strata
from prognosis.logistic import LogisticModel
from prognosis.metrics import auc
from prognosis.ordinal import OrdinalGOSModel
from prognosis.terms import CLINICAL_TERMS, IMAGING_TERMS, terms_of
from synthetic.outcomes import simulate_tabular

ALL = terms_of("clinical+imaging")


@pytest.fixture(scope="module")
def table(study) -> pd.DataFrame:  # noqa: ANN001
    return complete_table(study)


@pytest.mark.parametrize("outcome", ["died", "unfavourable"])
def test_logistic_cis_cover_the_true_coefficients(study, table: pd.DataFrame, outcome: str) -> None:  # noqa: ANN001
    data = table.dropna(subset=[outcome])
    truth = pd.Series(study.model["terms"])
    fam_alpha = 0.05 / (2 * len(ALL))
    summary = LogisticModel(ALL, outcome, alpha=fam_alpha).fit(data).summary
    missed = [t for t in ALL if not summary.loc[t, "coef_lower"] <= truth[t] <= summary.loc[t, "coef_upper"]]
    assert not missed, summary.loc[missed, ["coef", "coef_lower", "coef_upper"]].assign(true=truth[missed])
    intercept = study.model["mortality" if outcome == "died" else "unfavourable"]["intercept"]
    assert summary.loc["const", "coef_lower"] <= intercept <= summary.loc["const", "coef_upper"]
    # The clinical and imaging effects that exist are found (the null one is checked in test_repeated).
    strong = [t for t in (*CLINICAL_TERMS, *IMAGING_TERMS) if abs(truth[t]) / summary.loc[t, "se"] > 5]
    assert (summary.loc[strong, "p"] < 0.05).all()


def test_ordinal_model_recovers_terms_and_cutpoints(study, table: pd.DataFrame) -> None:  # noqa: ANN001
    data = table.dropna(subset=["gos_6m"])
    model = OrdinalGOSModel(ALL, alpha=0.05 / (len(ALL) + 4)).fit(data)
    truth = pd.Series(study.model["terms"])
    s = model.summary
    assert ((s["coef_lower"] <= truth[ALL]) & (truth[ALL] <= s["coef_upper"])).all()
    se_cut = np.sqrt(np.diag(model.threshold_cov_.to_numpy()))[0]  # first threshold's SE as a scale
    assert np.allclose(model.cutpoints_, study.model["cutpoints"], atol=5 * max(se_cut, 0.05))
    probs = model.predict_proba(data.head(50))
    assert np.allclose(probs.sum(axis=1), 1.0)


def test_cross_validated_auc_is_within_002_of_the_oracle(study) -> None:  # noqa: ANN001
    obs = observed_table(study)
    for outcome, col, p_col in (("mortality", "died", "p_death"), ("unfavourable", "unfavourable", "p_unfavourable")):
        fit = fit_outcome_model(obs, outcome, "clinical+imaging", cv="kfold", m=3, n_boot=50, seed=1)
        rows = obs.dropna(subset=[col])
        oracle_auc = auc(rows[col], oracle(study, rows)[p_col])
        assert abs(fit.metrics["cv_auc"] - oracle_auc) < 0.02, (outcome, fit.metrics["cv_auc"], oracle_auc)
        assert fit.n_patients == len(rows)
        assert 0.8 < fit.metrics["cv_calibration_slope"] < 1.1


def test_imaging_adds_the_margin_the_generator_implies(study) -> None:  # noqa: ANN001
    """Oracle margin: AUC of the true model minus AUC of the best clinical-only model. The latter is
    the clinical-only logistic fitted on a large independent study (20,000 patients), since imaging
    and clinical variables are correlated and simply dropping the imaging terms from the true LP
    would not be the best clinical-only predictor."""
    big = complete_table(simulate_tabular(20000, seed=7))
    obs = observed_table(study)
    comparison, _ = compare_feature_sets(obs, m=1, n_boot=200, seed=2)
    for outcome, col, p_col in (("mortality", "died", "p_death"), ("unfavourable", "unfavourable", "p_unfavourable")):
        rows = complete_table(study).dropna(subset=[col])
        clinical_oracle = LogisticModel(CLINICAL_TERMS, col).fit(big.dropna(subset=[col])).predict_proba(rows)
        margin = auc(rows[col], oracle(study, rows)[p_col]) - auc(rows[col], clinical_oracle)
        row = comparison.set_index("outcome").loc[outcome]
        assert margin > 0.01
        assert row["delta_auc_lower"] > 0 and row["lr_p"] < 1e-6
        assert abs(row["delta_auc"] - margin) < 0.015, (outcome, row["delta_auc"], margin)
        assert row["delta_auc_lower"] <= margin <= row["delta_auc_upper"]
        assert row["nri_lower"] > 0


def test_multiple_imputation_pools_with_rubins_rules(study) -> None:  # noqa: ANN001
    obs = observed_table(study)
    mi = fit_outcome_model(obs, "mortality", "clinical+imaging", cv=None, m=5, n_boot=20)
    cc = fit_outcome_model(obs, "mortality", "clinical+imaging", cv=None, imputation="complete-case", n_boot=20)
    assert cc.n_patients < mi.n_patients
    s = mi.summary
    assert s.loc["glucose_mmol_l", "fmi"] > 0.01  # 15 % missing: imputation adds variance
    assert s.loc["age", "fmi"] < s.loc["glucose_mmol_l", "fmi"]  # age is never missing
    assert np.isfinite(s.loc["glucose_mmol_l", "dof"])
    truth = pd.Series(study.model["terms"])
    covered = (s.loc[ALL, "coef_lower"] <= truth[ALL]) & (truth[ALL] <= s.loc[ALL, "coef_upper"])
    assert covered.mean() >= 0.85


def test_comparison_models_validate_like_the_logistic(study) -> None:  # noqa: ANN001
    obs = observed_table(study)
    base = fit_outcome_model(obs, "mortality", "clinical+imaging", cv="center", m=1, n_boot=20)
    assert set(base.metrics["cv_auc_by_center"]) == set(obs["center"])
    for kind in ("penalized", "boosting"):
        other = fit_outcome_model(obs, "mortality", "clinical+imaging", model_kind=kind, cv="center", m=1, n_boot=20)
        assert abs(other.metrics["cv_auc"] - base.metrics["cv_auc"]) < 0.03
    assert 0.0 <= base.metrics["optimism"] < 0.02


def test_cox_and_kaplan_meier_order_risk_by_hematoma(table: pd.DataFrame) -> None:
    cox = CoxModel(ALL).fit(table)
    assert cox.summary.loc["log_adm_hematoma_ml", "hazard_ratio_lower"] > 1
    assert cox.concordance_ > 0.7
    ph = cox.proportional_hazards_test()
    assert set(ph.index) == set(ALL) and ph["p"].between(0, 1).all()
    km = kaplan_meier_by_strata(table, quantile_strata(table["adm_hematoma_ml"], 3, "hematoma"))
    deaths = km.counts["deaths"] / km.counts["n"]
    assert deaths.is_monotonic_increasing and km.logrank_p < 1e-6
