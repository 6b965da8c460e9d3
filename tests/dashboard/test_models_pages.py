"""Outcome models and Risk calculator pages, and the computations behind them."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
from dashboard_apptest import COORD1, INV, STAT, page
from dashboard_registry_factory import model_fits

from dashboard import models_view
from prognosis.fitting import calibration_caution
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
    apparent = cmp["AUC (apparent)"]
    assert apparent["clinical+imaging"] > apparent["clinical"]  # imaging carries signal in fit_data
    assert (cmp["how validated"] == "cross-validated AUC").all()
    assert (cmp["validated AUC"] == cmp["cross-validated AUC"]).all()
    table = models_view.coefficient_table(fits.iloc[0])
    assert "const" not in set(table["term"]) and models_view.ratio_columns(table) == (
        "odds_ratio", "odds_ratio_lower", "odds_ratio_upper")
    assert set(models_view.fit_curves(fits.iloc[0])) == {"roc", "calibration"}


def test_outcome_models_page(small) -> None:
    at = page("5_Outcome_models.py", INV)
    assert not at.exception
    overview = at.dataframe[0].value
    assert len(overview) == 2 and set(overview["Predictors"]) == {"clinical", "clinical + imaging"}
    assert list(overview.columns[:6]) == ["Fit", "Outcome", "Predictors", "Model", "Validated AUC / C",
                                          "How validated"]  # validated performance leads, before the counts
    assert len(at.get("plotly_chart")) >= 3  # ROC, calibration, forest (+ Kaplan-Meier)
    assert not at.json  # no raw JSON dump of the metrics
    coef = next(d.value for d in at.dataframe if "Term" in d.value.columns)
    assert "Age (per year)" in set(coef["Term"]) and all("(" in v for v in coef.iloc[:, 1])
    assert {b.label for b in at.get("download_button")} >= {"Coefficients (CSV)", "Analysis table (CSV)"}
    # The headline compares validated AUCs, never apparent ones.
    gained = {m.label: m.value for m in at.metric}["Change in cross-validated AUC from adding imaging"]
    cmp = models_view.comparison_table(_fits_frame(), "mortality", "logistic").set_index("features")
    cv = cmp["cross-validated AUC"]
    assert gained == f"{cv['clinical+imaging'] - cv['clinical']:+.3f}"
    assert any("Log-rank" in c.value for c in at.caption)
    # Where the CT predictors came from: no scan of this registry has a computed class, so the clinical record.
    sources = next(d.value for d in at.dataframe if "CT predictor" in d.value.columns).set_index("CT predictor")
    assert sources.loc["Marshall CT class", "Computed from the admission scan"] == 0
    assert sources.loc["Marshall CT class", "Clinical record"] > 0


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
    # One row per fitted model (feature set), not per fit id: both outcomes of a model share its row.
    assert not any("#" in s for s in table.index)
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


def test_cautions_weak_models_and_the_shrunken_calculator_model() -> None:
    fits = _fits_frame()
    fit = fits.iloc[0].copy()
    fit["metrics"] = {**fit["metrics"], "cv_auc": 0.436, "events_per_variable": 1.9}
    words = " ".join(models_view.cautions(fit))
    assert "0.436" in words and "below 0.6" in words and "1.9 events per model parameter" in words
    assert models_view.validated_auc(fit["metrics"]) == (0.436, "cross-validated AUC")
    good = fits.iloc[1]
    assert not [c for c in models_view.cautions(good) if "below" in c]
    spec, shrunk = models_view.calculator_spec(good)
    assert not shrunk and spec is good["spec"]["model"]
    model = LogisticModel.from_spec(spec)
    half = model.shrunk(0.5, [])  # no data: the intercept stays as fitted
    with_shrunk = good.copy()
    with_shrunk["spec"] = {**good["spec"], "model_shrunk": {**half.to_spec(), "shrinkage": 0.5}}
    spec, shrunk = models_view.calculator_spec(with_shrunk)
    assert shrunk and spec["shrinkage"] == 0.5
    values = models_view.prefill({"age": 80, "gcs_motor": 1, "pupils_unreactive": 2}, {"adm_hematoma_ml": 60.0})
    raw, less = models_view.fitted_risk(good["spec"]["model"], values), models_view.fitted_risk(spec, values)
    assert abs(less["risk"] - 0.5) < abs(raw["risk"] - 0.5)  # shrunken risks are less extreme


def test_overview_formats_numbers_and_opens_on_a_binary_logistic_fit() -> None:
    fits = _fits_frame()
    cox = fits.iloc[0].copy()
    cox["id"], cox["outcome"], cox["model_kind"], cox["metrics"] = 99, "survival", "cox", {"cv_harrell_c": 0.71234}
    frame = pd.concat([pd.DataFrame([cox]), fits], ignore_index=True)  # the Cox fit is the newest
    assert models_view.default_fit_id(frame) != 99
    overview = models_view.overview_table(frame)
    assert overview.iloc[-1]["Outcome"] == "time to death" and overview.iloc[-1]["Validated AUC / C"] == "0.712"
    assert overview.iloc[0]["Model"] == "logistic"


def test_outcome_models_page_flags_fits_of_older_data_with_the_refit_command(small) -> None:
    from sqlalchemy import update
    from sqlalchemy.orm import Session

    from prognosis.analysis_table import analysis_table_hash
    from prognosis.store import analysis_table_from_registry
    from registry.db.engine import make_engine
    from registry.db.models import ModelFit

    home, _ = small
    at = page("5_Outcome_models.py", STAT)
    assert not at.exception
    warnings = " ".join(w.value for w in at.warning)
    assert "2 model fit(s)" in warnings and "out of date" in warnings  # the factory's fits are of other data
    assert "This fit is out of date" in warnings
    assert "ctstudy prognosis fit --outcome mortality --features clinical" in at.code[0].value
    engine = make_engine(home.db_url)
    with Session(engine) as s, s.begin():
        s.execute(update(ModelFit).values(data_hash=analysis_table_hash(analysis_table_from_registry(s))))
    engine.dispose()
    import streamlit as st

    st.cache_data.clear()
    at = page("5_Outcome_models.py", STAT)
    assert not at.exception and not any("out of date" in w.value for w in at.warning) and not at.code


def test_outcome_models_page_offers_the_written_report_for_download(small) -> None:
    home, _ = small
    at = page("5_Outcome_models.py", STAT)
    assert not at.exception
    assert not any(b.label.startswith("Outcome-model report") for b in at.get("download_button"))
    assert any("No report written yet" in c.value for c in at.caption)
    (home.reports_dir / "prognosis_report.html").write_text("<html><body>report</body></html>", encoding="utf-8")
    at = page("5_Outcome_models.py", STAT)
    labels = {b.label for b in at.get("download_button")}
    assert "Outcome-model report (HTML)" in labels and "Outcome-model report (PDF)" not in labels
    assert any("No PDF yet" in c.value for c in at.caption)
    (home.reports_dir / "prognosis_report.pdf").write_bytes(b"%PDF-1.4 report")
    at = page("5_Outcome_models.py", STAT)
    assert "Outcome-model report (PDF)" in {b.label for b in at.get("download_button")}


def _broken(fit: pd.Series) -> pd.Series:
    """The fit with a bootstrap-corrected calibration slope (shrinkage factor) below 0."""
    fit = fit.copy()
    fit["metrics"] = {**fit["metrics"], "shrinkage": -0.18,
                      "validate": {"calibration_slope": {"apparent": 1.0, "optimism": 1.18, "corrected": -0.18}}}
    return fit


def test_a_model_with_shrinkage_at_or_below_0_is_marked_not_usable_everywhere() -> None:
    fits = _fits_frame()
    broken = _broken(fits.iloc[0])
    assert "-0.18" in models_view.not_usable(broken)
    assert any(c.startswith("Not usable for individual risks") for c in models_view.cautions(broken))
    assert models_view.not_usable(fits.iloc[1]) is None
    overview = models_view.overview_table(pd.DataFrame([broken, fits.iloc[1]]))
    assert sorted(overview["Individual risks"]) == ["not usable", "usable"]
    with pytest.raises(ValueError, match="not positive"):
        LogisticModel.from_spec(broken["spec"]["model"]).shrunk(-0.18, [])
    with pytest.raises(ValueError, match="not usable for individual risks"):
        models_view.calculator_spec(broken)


def test_an_over_shrunk_fit_says_what_its_capped_shrinkage_factor_hides() -> None:
    fit = _fits_frame().iloc[0].copy()
    fit["metrics"] = {**fit["metrics"], "shrinkage": 1.0, "cv_calibration_slope": 0.25, "cautions": [],
                      "validate": {"calibration_slope": {"apparent": 1.0, "optimism": -2.78, "corrected": 3.78}}}
    said = [c for c in models_view.cautions(fit) if "3.78" in c]  # a fit recorded without the caution
    assert len(said) == 1 and "above 1" in said[0] and "0.25" in said[0] and "disagree" in said[0]
    stored = fit.copy()
    stored["metrics"] = {**fit["metrics"], "cautions": [calibration_caution(fit["metrics"])]}
    assert [c for c in models_view.cautions(stored) if "3.78" in c] == said  # not twice
    against = fit.copy()
    against["metrics"] = {**fit["metrics"], "cv_calibration_slope": -0.2}
    said = [c for c in models_view.cautions(against) if "-0.20" in c]
    assert len(said) == 1 and "at or below 0" in said[0] and "more extreme" not in said[0] and "disagree" in said[0]
    agreeing = fit.copy()
    agreeing["metrics"] = {**fit["metrics"], "cv_calibration_slope": 1.1}
    assert not [c for c in models_view.cautions(agreeing) if "disagree" in c]
    assert [c for c in models_view.cautions(agreeing) if "3.78" in c]
    calibrated = fit.copy()
    calibrated["metrics"] = {**fit["metrics"], "shrinkage": 0.95,
                             "validate": {"calibration_slope": {"apparent": 1.0, "optimism": 0.05, "corrected": 0.95}}}
    assert not [c for c in models_view.cautions(calibrated) if "calibration slope" in c]


def test_a_model_ranking_held_out_patients_worse_than_chance_says_so() -> None:
    cox = _fits_frame().iloc[0].copy()
    cox["outcome"], cox["model_kind"] = "survival", "cox"
    cox["metrics"] = {"harrell_c": 0.750, "cv_harrell_c": 0.398}
    assert [c for c in models_view.cautions(cox) if "0.398, below 0.5" in c and "worse than chance" in c]
    cox["metrics"] = {"harrell_c": 0.750, "cv_harrell_c": 0.62}
    assert not [c for c in models_view.cautions(cox) if "below 0.5" in c]


def test_the_risk_calculator_refuses_a_model_with_shrinkage_at_or_below_0(home, monkeypatch) -> None:
    monkeypatch.setenv("CTSTUDY_HOME", str(home.root))
    monkeypatch.setenv("CTSTUDY_DB_URL", home.db_url)
    fits = _fits_frame()
    broken = pd.DataFrame([_broken(fit) for _, fit in fits.iterrows()]).reset_index(drop=True)
    monkeypatch.setattr("dashboard.queries.model_fits", lambda db_url: broken)
    at = page("6_Risk_calculator.py", STAT)
    assert not at.exception
    assert any("refused by the calculator" in e.value and "-0.18" in e.value for e in at.error)
    sources = set(at.dataframe[0].value["source"])
    assert not any(s.startswith("fitted") for s in sources) and "IMPACT core" in sources


def test_the_overview_says_how_each_model_was_estimated() -> None:
    fits = _fits_frame()
    ridge = fits.iloc[0].copy()
    ridge["metrics"] = {**ridge["metrics"], "estimation": {"method": "ridge", "penalty": 31.6,
                                                           "penalty_chosen_by": "cv"}}
    overview = models_view.overview_table(pd.DataFrame([ridge, fits.iloc[1]])).set_index("Fit")
    assert overview.loc[f"#{ridge['id']}", "Estimation"] == "ridge, penalty 32 chosen by cross-validation"
    assert overview.loc[f"#{fits.iloc[1]['id']}", "Estimation"] == "maximum likelihood"


def test_the_overview_says_which_fits_used_firth_under_separation() -> None:
    fits = _fits_frame()
    firth = fits.iloc[0].copy()
    firth["metrics"] = {**firth["metrics"], "estimation": {"method": "firth", "terms": ["hypoxia"],
                                                           "data_sets": [1, 3], "n_data_sets": 5}}
    overview = models_view.overview_table(pd.DataFrame([firth])).set_index("Fit")
    assert overview.loc[f"#{firth['id']}", "Estimation"] == \
        "Firth's penalized likelihood (separation in 2 of 5 imputed data sets)"


def test_the_outcome_models_page_shows_the_imputation_diagnostics_with_labels(home, monkeypatch) -> None:
    from prognosis.imputation_diagnostics import imputation_diagnostics

    monkeypatch.setenv("CTSTUDY_HOME", str(home.root))
    monkeypatch.setenv("CTSTUDY_DB_URL", home.db_url)
    fits = _fits_frame()
    rows = pd.DataFrame({"glucose_mmol_l": [5.0, 6.1, None, 7.3, 8.0, None, 6.6, 5.5],
                         "hypoxia": [0, 1, 0, None, 0, 1, 0, 0], "died": [0, 1, 0, 1, 0, 1, 0, 0]})
    diagnostics = imputation_diagnostics(rows, m=2, seed=0)
    fits.at[0, "metrics"] = {**fits.iloc[0]["metrics"], "curves": {
        **fits.iloc[0]["metrics"]["curves"], **{k: v.to_dict("records") for k, v in diagnostics.items()}}}
    fits["variables"] = [list(c["term"] for c in f if c["term"] != "const") for f in fits["coefficients"]]
    fits["data_hash"] = "0" * 64
    monkeypatch.setattr("dashboard.queries.model_fits", lambda db_url: fits)
    at = page("5_Outcome_models.py", STAT)
    assert not at.exception
    charts = [c for c in at.get("plotly_chart") if "Imputation trace" in c.proto.spec
              or "Observed and imputed" in c.proto.spec]
    assert len(charts) == 2
    for chart in charts:  # one panel per imputed variable, titled with its dictionary label
        titles = {a["text"] for a in json.loads(chart.proto.spec)["layout"]["annotations"]}
        assert titles == {"Glucose", "Hypoxia"}


def test_ct_inputs_are_labelled_by_source_and_a_changed_value_as_typed() -> None:
    prefilled = {"marshall_ct": 6, "edh": 1, "tsah": 0}
    sources = {"marshall_ct": "computed (measured components)", "edh": "computed (measured)",
               "tsah": "unknown"}
    labels = models_view.ct_input_labels({"marshall_ct": 6, "edh": 0, "tsah": 0}, prefilled, sources)
    # Kept as prefilled: its source; changed by the user: typed; a default for an unknown value: typed.
    assert labels == {"marshall_ct": "computed (measured components)", "edh": "typed", "tsah": "typed"}
    assert set(models_view.ct_input_labels(prefilled, prefilled, None).values()) == {"typed"}
    assert models_view.ct_input_caption(prefilled, labels).startswith(
        "CT predictors used: Marshall class 6 (computed (measured components)); EDH 1 (typed)")


def test_risk_calculator_labels_a_patients_ct_inputs_and_a_typed_one(small) -> None:
    at = page("6_Risk_calculator.py", COORD1)
    at.radio(key="risk_source").set_value("patient").run()
    at.selectbox(key="risk_patient").set_value("pA1aaaaaaaaaaaaa").run()
    used = [c.value for c in at.caption if c.value.startswith("CT predictors used")]
    assert used and "Marshall class 3 (clinical record)" in used[0]  # no computed class on this patient's scans
    at.selectbox(key="r_marshall_pA1aaaaaaaaaaaaa").set_value(5)
    next(b for b in at.button if b.label == "Calculate").click().run()
    used = [c.value for c in at.caption if c.value.startswith("CT predictors used")]
    assert not at.exception and "Marshall class 5 (typed)" in used[0]
