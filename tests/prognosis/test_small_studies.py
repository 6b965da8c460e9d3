"""Small studies (the 60-patient demo): refits that cannot be estimated are recorded and handled,
never end the run, and the demo's model steps pass on any seed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ctstudy.demo import DEMO_BOOTSTRAP, DEMO_MODEL_FITS
from prognosis.analysis_table import build_analysis_table
from prognosis.fitting import compare_feature_sets, fit_outcome_model
from prognosis.imputation import ImputationCache
from prognosis.logistic import RIDGE_PENALTY, LogisticModel, unidentified_terms
from prognosis.terms import terms_of
from prognosis.validation import cross_validated_predictions
from synthetic.outcomes import simulate_tabular


def small_table(seed: int, n: int = 60) -> pd.DataFrame:
    study = simulate_tabular(n, seed=seed)
    return build_analysis_table(study.clinical, study.outcomes, study.patient_level)


def test_unidentified_terms_names_the_variable_and_why() -> None:
    x = pd.DataFrame({"const": 1.0, "a": [0.0, 1, 2, 3], "motor_2": 0.0, "b": [0.0, 2, 4, 6]})
    found = unidentified_terms(x)
    assert set(found) == {"motor_2", "b"}
    assert "no variation" in found["motor_2"] and "linear combination" in found["b"]


def test_a_category_absent_from_the_rows_gets_a_ridge_refit_that_names_it() -> None:
    table = small_table(1).dropna(subset=["gcs_motor", "pupils_unreactive", "glucose_mmol_l", "hemoglobin_g_dl",
                                          "hypoxia", "hypotension", "age"])
    rows = table.loc[table["gcs_motor"] != 2]
    terms = terms_of("clinical")
    model = LogisticModel(terms, "died").fit(rows)
    assert model.estimation_["method"] == "ridge" and model.estimation_["terms"] == ["motor_2"]
    assert np.isfinite(model.params_.to_numpy()).all()
    assert abs(model.params_["motor_2"]) < 1e-6  # not identified: held at 0 by the penalty
    # The empty column changes nothing else: the other terms are the same weak-ridge fit without it.
    others = [t for t in terms if t != "motor_2"]
    without = LogisticModel(others, "died", penalty=RIDGE_PENALTY).fit(rows)
    np.testing.assert_allclose(model.params_.drop("motor_2"), without.params_, rtol=1e-6, atol=1e-8)
    # Without the empty column the maximum-likelihood fit is Firth's: these 30 rows also separate the
    # outcome on pupils_one (both patients with one unreactive pupil survived).
    firth = LogisticModel(others, "died").fit(rows)
    assert firth.estimation_["method"] == "firth" and firth.estimation_["terms"] == ["pupils_one"]


def test_cross_validation_records_the_fold_and_term_of_a_penalized_refit() -> None:
    """Seed 1's unfavourable clinical+imaging model failed the demo with a bare 'Singular matrix'."""
    table = small_table(1)
    result = fit_outcome_model(table, "unfavourable", "clinical+imaging", m=2, n_boot=20, seed=0, penalty="none")
    notes = result.metrics["cv_refit_notes"]
    assert result.metrics["cv_refits_penalized"] == len(notes) > 0
    assert all(n["where"].startswith("repeat ") and "fold" in n["where"] and n["terms"] for n in notes)
    assert 0.0 <= result.metrics["cv_auc"] <= 1.0


def test_a_fold_that_cannot_be_estimated_is_reported_and_left_out() -> None:
    """A model that raises on some training sets: those folds are noted, their rows have no prediction."""

    class Fragile:
        def fit(self, df: pd.DataFrame) -> Fragile:
            if df["died"].mean() > 0.2:  # some folds only
                raise np.linalg.LinAlgError("Singular matrix")
            self.mean_ = df["died"].mean()
            return self

        def predict_proba(self, df: pd.DataFrame) -> np.ndarray:
            return np.full(len(df), self.mean_)

    df = pd.DataFrame({"died": [1.0] * 10 + [0.0] * 30, "center": "A"})
    df.loc[:4, "died"] = 1.0
    oof = cross_validated_predictions(Fragile, df, "died", n_splits=4, n_repeats=1, seed=0)
    notes = oof.attrs["refit_notes"]
    assert notes and all(n["status"] == "not estimable" and "Singular matrix" in n["reason"] for n in notes)
    assert oof.iloc[:, 0].isna().sum() == 10 * len(notes)


@pytest.mark.parametrize("seed", [2])
def test_the_demo_step_that_failed_now_passes(seed: int) -> None:
    table = small_table(seed)
    result = fit_outcome_model(table, "unfavourable", "clinical+imaging", n_boot=DEMO_BOOTSTRAP, seed=0)
    assert 0.0 <= result.metrics["cv_auc"] <= 1.0 and np.isfinite(result.summary["coef"]).all()


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_demo_model_steps_pass_on_several_seeds(seed: int) -> None:
    """Every `prognosis fit` of the demo and its report's comparison, on 60-patient studies, with the
    demo's settings. The fits share their imputed folds and bootstrap replicates (an ImputationCache,
    which changes no result: test_pooling_and_validation), so each is imputed once, not once per model."""
    table = small_table(seed)
    imputations = ImputationCache()
    for outcome, features in DEMO_MODEL_FITS:
        result = fit_outcome_model(table, outcome, features, n_boot=DEMO_BOOTSTRAP, seed=0, imputations=imputations)
        assert result.n_patients > 0 and result.metrics
    comparison, _ = compare_feature_sets(table, m=5, n_boot=DEMO_BOOTSTRAP, seed=0, imputations=imputations)
    assert comparison["auc_full"].between(0, 1).all()
    assert imputations.hits > 0


def test_a_library_error_is_reported_with_what_was_being_done() -> None:
    from prognosis.cli import explained

    what = "fitting the unfavourable model on clinical+imaging (60 patients, mice)"
    with pytest.raises(ValueError) as info, explained(what):
        raise np.linalg.LinAlgError("Singular matrix")
    text = str(info.value)
    assert text.startswith("fitting the unfavourable model") and "Singular matrix" in text and "Try " in text
