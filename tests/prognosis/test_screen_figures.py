"""What the dashboard and the report show of a demo-sized study (60 patients, 16 terms): no validate index
outside its range, no model with a shrinkage factor at or below 0 offered for individual risks, a
model too big for its data fitted by ridge with a cross-validated penalty, saying so, and no test p-value
from fits that separate."""

from __future__ import annotations

import html

import numpy as np
import pandas as pd
import pytest

from prognosis.analysis_table import build_analysis_table
from prognosis.assumptions import brant_test, nonlinearity_tests
from prognosis.fitting import OVER_SHRUNK_SLOPE, fit_outcome_model, penalty_decision
from prognosis.imputation import ImputationCache
from prognosis.logistic import LogisticModel
from prognosis.report import assumptions_section, support_section
from prognosis.terms import terms_of
from prognosis.validate_indexes import INDEX_RANGES
from synthetic.outcomes import simulate_tabular


def demo_sized_table(seed: int = 0, n: int = 60) -> pd.DataFrame:
    study = simulate_tabular(n, seed=seed)
    return build_analysis_table(study.clinical, study.outcomes, study.patient_level)


def assert_screen_figures_possible(metrics: dict, spec: dict) -> None:
    validate = metrics["validate"]
    for index, (low, high) in INDEX_RANGES.items():
        for column in ("apparent", "corrected"):
            assert low <= validate[index][column] <= high, (index, column, validate[index])
    # An optimism is a difference of two values of the same range.
    assert abs(validate["r2_nagelkerke"]["optimism"]) <= 1 and abs(validate["auc"]["optimism"]) <= 1
    assert 0 <= metrics["n_boot_separated"] <= metrics["n_boot"]
    slope = validate["calibration_slope"]["corrected"]
    if slope <= 0:
        assert "model_shrunk" not in spec and "at or below 0" in metrics["not_usable_for_individual_risks"]
    else:
        shrunk = LogisticModel.from_spec(spec["model_shrunk"])
        assert 0 < spec["model_shrunk"]["shrinkage"] <= 1 and np.isfinite(shrunk.params_).all()
        assert abs(shrunk.params_["const"]) < 50  # an intercept, not the -1.2e13 of a diverged re-estimation


def test_a_demo_sized_fit_shows_no_impossible_figure_by_maximum_likelihood_or_ridge() -> None:
    table = demo_sized_table()
    imputations = ImputationCache()
    ml = fit_outcome_model(table, "mortality", "clinical+imaging", m=2, n_boot=40, seed=0, penalty="none",
                           imputations=imputations)
    ridge = fit_outcome_model(table, "mortality", "clinical+imaging", m=2, n_boot=40, seed=0, imputations=imputations)
    assert ml.metrics["estimation_choice"]["method"] == "maximum likelihood"
    assert ml.metrics["n_boot_separated"] > 0  # the small study separates in refits: the count is what is shown
    for fit in (ml, ridge):
        assert_screen_figures_possible(fit.metrics, fit.spec)
    # 16 parameters on about 17 deaths: the default is ridge, its penalty chosen by cross-validation, and says why.
    choice = ridge.metrics["estimation_choice"]
    assert choice["penalized"] and "Riley" in choice["reason"] and "short of" in choice["reason"]
    assert ridge.metrics["estimation"]["penalty_chosen_by"] == "cv"
    assert len(ridge.metrics["estimation"]["penalty_by_imputation"]) == 2
    # The penalty pulls the coefficients toward 0 and the refits stop separating.
    assert np.abs(ridge.model.params_.drop("const")).sum() < np.abs(ml.model.params_.drop("const")).sum()
    assert ridge.metrics["n_boot_separated"] < ml.metrics["n_boot_separated"]
    # Here the cross-validated penalty shrinks more than the bootstrap finds the data support: the factor shown is
    # capped at 1, so the caution says what it hides, and that cross-validation points the other way.
    slope = ridge.metrics["validate"]["calibration_slope"]["corrected"]
    assert slope > OVER_SHRUNK_SLOPE and ridge.metrics["shrinkage"] == 1.0
    assert ridge.metrics["cv_calibration_slope"] < 0.8
    caution = ridge.extra["calibration_caution"]
    assert f"{slope:.2f}" in caution and f"{ridge.metrics['cv_calibration_slope']:.2f}" in caution
    assert "disagree" in caution
    assert ml.metrics["validate"]["calibration_slope"]["corrected"] < 1 and "calibration_caution" not in ml.extra
    recorded = {"id": 2, "outcome": "mortality", "feature_set": "clinical+imaging", "model_kind": "logistic",
                "n_patients": ridge.n_patients, "metrics": ridge.metrics, "spec": ridge.spec}
    assert html.escape(caution) in support_section([recorded], ridge.n_patients)  # the report says it too


def test_a_sample_meeting_rileys_criteria_keeps_maximum_likelihood() -> None:
    died = pd.DataFrame({"died": (np.arange(2000) % 10 < 3).astype(float)})  # 2,000 patients, 30 % died
    decision = penalty_decision(died, "died", len(terms_of("clinical")), "auto")
    assert not decision["penalized"] and "meeting" in decision["reason"]
    assert decision["riley_a_priori"]["n_required"] <= len(died)
    assert penalty_decision(died.head(60), "died", len(terms_of("clinical")), "auto")["penalized"]
    assert penalty_decision(died, "died", 11, "ridge")["penalized"]
    with pytest.raises(ValueError, match="penalty must be one of"):
        penalty_decision(died, "died", 11, "lasso")


def test_a_shrunken_model_re_estimates_its_intercept_from_the_observed_rate() -> None:
    table = demo_sized_table(seed=2).dropna(subset=["died", "age", "gcs_motor"])
    model = LogisticModel(["age"], "died").fit(table)
    model.params_["const"] = -1e6  # a separated fit's intercept, far on the flat part of the curve
    shrunk = model.shrunk(0.5, [table])
    assert np.mean(shrunk.predict_proba(table)) == pytest.approx(table["died"].mean(), abs=1e-6)


def test_the_corrected_calibration_curve_is_flatter_than_the_apparent_on_a_small_sample() -> None:
    from prognosis.calibrate import corrected_calibration_curve
    from prognosis.metrics import stratified_bootstrap_indices
    from tests.prognosis.prognosis_study import complete_table

    table = complete_table(simulate_tabular(150, seed=8))
    model = LogisticModel(terms_of("clinical+imaging"), "died").fit(table)
    y = table["died"].to_numpy(float)
    idx = stratified_bootstrap_indices(y, 100, 0)
    p_boot, p_orig = model.bootstrap_risks(table, idx)
    curve = corrected_calibration_curve([(y, model.predict_proba(table))], y[idx], p_boot,
                                        np.broadcast_to(y, p_orig.shape), p_orig)
    assert len(curve) == 50 and curve["corrected"].between(0, 1).all()
    # Overfitting: apparent risks near the diagonal, corrected ones pulled toward the average (slope < 1).
    rise = lambda column: float(curve[column].iloc[-1] - curve[column].iloc[0])  # noqa: E731
    spread = float(curve["predicted"].iloc[-1] - curve["predicted"].iloc[0])
    assert rise("corrected") < 0.85 * rise("apparent") and rise("apparent") == pytest.approx(spread, rel=0.25)


def test_a_demo_sized_ordinal_fit_gives_no_brant_p_value_from_binary_fits_that_separate() -> None:
    """Brant's test compares K-1 binary fits of 'GOS <= k'; on 57 patients and 16 terms they separate, their
    coefficients run off and the Wald statistic falls to 0: p = 1.000 would read as proportional odds confirmed."""
    table = demo_sized_table()
    complete = table.dropna(subset=[*terms_of("clinical+imaging"), "gos_6m"])
    with pytest.raises(ValueError, match=r"binary fit of 'GOS <= \d' \(\d+ of \d+ patients\) (separates|does not)"):
        brant_test(complete, terms_of("clinical+imaging"))
    fit = fit_outcome_model(table, "gos", "clinical+imaging", m=2, n_boot=20, seed=0, cv=None)
    assert "brant_omnibus_p" not in fit.metrics and "brant" not in fit.extra
    assert fit.extra["brant_note"].startswith("Brant test not estimable on these data (the binary fit of 'GOS <=")
    recorded = {"id": 5, "outcome": "gos", "feature_set": "clinical+imaging", "model_kind": "ordinal",
                "metrics": {"cautions": [fit.extra["brant_note"]]}}
    section = assumptions_section([recorded])
    assert "Proportional odds" in section and "separates the outcome" in section


def test_a_demo_sized_fit_gives_no_non_linearity_p_value_from_spline_fits_that_separate() -> None:
    table = demo_sized_table().dropna(subset=[*terms_of("clinical"), "died"])  # 37 patients, 10 deaths
    tests = nonlinearity_tests(table, terms_of("clinical"), "died")
    assert len(tests) == 3 and tests["p"].isna().all()
    assert tests["note"].str.match(r"not estimable \(the fit with \w+ as a spline (separates|does not)").all()
