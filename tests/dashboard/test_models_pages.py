"""Outcome models and Risk calculator pages, and the computations behind them."""

from __future__ import annotations

import math

import pandas as pd
from dashboard_apptest import COORD1, INV, STAT, page
from dashboard_registry_factory import model_fits

from dashboard import models_view
from prognosis.logistic import LogisticModel
from prognosis.terms import design_terms


def _fits_frame() -> pd.DataFrame:
    fits = model_fits()
    return pd.DataFrame([{"id": i + 1, "created_at": None, "outcome": f.outcome, "feature_set": f.feature_set,
                          "model_kind": f.model_kind, "cv": f.cv, "n_patients": f.n_patients, "n_events": f.n_events,
                          "coefficients": f.coefficients, "metrics": f.metrics, "spec": f.spec}
                         for i, f in enumerate(fits)]).iloc[::-1].reset_index(drop=True)  # newest first


def test_impact_core_mortality_matches_the_published_coefficients() -> None:
    values = models_view.prefill(None, None)  # age 45, motor 5 (reference), pupils reactive
    risks = models_view.impact_risks(values).set_index("model")
    expected = 1 / (1 + math.exp(-(-3.109 + 0.034 * 45)))  # ANCHORS.md, IMPACT core, mortality
    assert math.isclose(risks.loc["IMPACT core", "mortality"], expected, rel_tol=1e-9)
    assert risks.loc["IMPACT core+ct+lab", "unfavourable"] > 0


def test_fitted_risk_is_the_models_own_prediction_with_interval() -> None:
    fits = _fits_frame()
    spec = models_view.logistic_fits(fits).iloc[0]["spec"]["model"]
    values = models_view.prefill({"age": 70, "gcs_motor": 2, "pupils_unreactive": 2}, {"adm_hematoma_ml": 30.0})
    r = models_view.fitted_risk(spec, values)
    direct = LogisticModel.from_spec(spec).predict_interval(design_terms(pd.DataFrame([values]))).iloc[0]
    assert r["risk"] == direct["risk"] and r["lower"] < r["risk"] < r["upper"]
    table = models_view.risk_table(pd.DataFrame([{"source": "a", "outcome": "mortality", **r},
                                                 {"source": "a", "outcome": "unfavourable", "risk": float("nan"),
                                                  "lower": None, "upper": None}]))
    assert table.loc[0, "mortality"] == f"{r['risk']:.1%} ({r['lower']:.1%}–{r['upper']:.1%})"
    assert table.loc[0, "unfavourable"].startswith("n/a")
    only_mortality = models_view.risk_table(pd.DataFrame([{"source": "b", "outcome": "mortality", **r}]))
    assert only_mortality.loc[0, "unfavourable"] == "no model for this outcome"


def test_comparison_and_forest_inputs() -> None:
    fits = _fits_frame()
    cmp = models_view.comparison_table(fits, "mortality", "logistic").set_index("features")
    assert set(cmp.index) == {"clinical", "clinical+imaging"}
    assert cmp.loc["clinical+imaging", "AUC"] > cmp.loc["clinical", "AUC"]  # imaging carries signal in fit_data
    table = models_view.coefficient_table(fits.iloc[0])
    assert "const" not in set(table["term"]) and models_view.ratio_columns(table) == (
        "odds_ratio", "odds_ratio_lower", "odds_ratio_upper")
    assert set(models_view.fit_curves(fits.iloc[0])) == {"roc", "calibration"}


def test_outcome_models_page(small) -> None:
    at = page("5_Outcome_models.py", INV)
    assert not at.exception
    overview = at.dataframe[0].value
    assert len(overview) == 2 and set(overview["features"]) == {"clinical", "clinical+imaging"}
    assert len(at.get("plotly_chart")) >= 3  # ROC, calibration, forest (+ Kaplan-Meier)
    gained = {m.label: m.value for m in at.metric}["AUC gained by adding imaging"]
    cmp = models_view.comparison_table(_fits_frame(), "mortality", "logistic").set_index("features")["AUC"]
    assert gained == f"{cmp['clinical+imaging'] - cmp['clinical']:+.3f}"
    assert any("Log-rank" in c.value for c in at.caption)


def test_outcome_models_page_without_fits_says_what_to_run(home, monkeypatch) -> None:
    monkeypatch.setenv("CTSTUDY_HOME", str(home.root))
    monkeypatch.setenv("CTSTUDY_DB_URL", home.db_url)
    at = page("5_Outcome_models.py", STAT)
    assert not at.exception and "ctstudy prognosis fit" in at.info[0].value


def test_risk_calculator_for_a_patient(small) -> None:
    at = page("6_Risk_calculator.py", COORD1)
    assert not at.exception
    at.radio(key="risk_source").set_value("patient").run()
    assert at.selectbox(key="risk_patient").options == ["pA1aaaaaaaaaaaaa", "pB1bbbbbbbbbbbbb", "pC1ccccccccccccc"]
    at.selectbox(key="risk_patient").set_value("pA1aaaaaaaaaaaaa").run()
    assert not at.exception
    assert at.number_input(key="r_age_pA1aaaaaaaaaaaaa").value == 45.0  # from the clinical record
    assert at.number_input(key="r_hem_pA1aaaaaaaaaaaaa").value == 12.5  # admission hematoma, segmentation
    table = at.dataframe[0].value.set_index("source")
    assert "IMPACT core" in table.index and any(s.startswith("fitted clinical") for s in table.index)
    fitted = [s for s in table.index if s.startswith("fitted")][0]
    assert "–" in table.loc[fitted, "mortality"]  # an interval is shown for the fitted model


def test_risk_calculator_with_entered_values_only(home, monkeypatch) -> None:
    monkeypatch.setenv("CTSTUDY_HOME", str(home.root))
    monkeypatch.setenv("CTSTUDY_DB_URL", home.db_url)
    at = page("6_Risk_calculator.py", STAT)
    assert not at.exception
    assert any("only the IMPACT reference" in i.value for i in at.info)
    expected = 1 / (1 + math.exp(-(-3.109 + 0.034 * 45)))
    assert at.dataframe[0].value.set_index("source").loc["IMPACT core", "mortality"] == f"{expected:.1%}"
