"""What the Outcome models and Risk calculator pages compute from ModelFit rows and entered values.

Pure: ModelFit rows as `queries.model_fits` returns them (JSON columns as dicts / lists) in,
DataFrames out. Predictions use the prognosis package's own models (`LogisticModel.from_spec`,
`prognosis.impact`), never a re-implementation here.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from prognosis.fitting import calibration_caution, unusable_reason
from prognosis.impact import IMPACT_MODELS, impact_risk
from prognosis.labels import estimation_text
from prognosis.logistic import LogisticModel
from prognosis.model_rows import fitted_on
from prognosis.terms import design_terms
from vocabulary import dictionary

BINARY_OUTCOMES = ("mortality", "unfavourable")
# AUC figures shown side by side, in this order, when a fit has them.
AUC_COLUMNS = {"auc": "AUC (apparent)", "corrected_auc": "AUC (optimism-corrected)", "cv_auc": "AUC (cross-validated)",
               "auc_death": "AUC death (ordinal)", "harrell_c": "Harrell's C"}


def fit_label(fit: pd.Series | Any) -> str:
    return (f"#{fit.id} {OUTCOME_NAMES.get(fit.outcome, fit.outcome)} · {fit.feature_set.replace('+', ' + ')} · "
            f"{fit.model_kind} · {fit.n_patients:,} patients")


def fits_overview(fits: pd.DataFrame) -> pd.DataFrame:
    """One line per fit: id, when, outcome, features, model, n, events and its AUC figures."""
    rows = []
    for fit in fits.itertuples():
        metrics = fit.metrics or {}
        rows.append({"id": fit.id, "created": fit.created_at, "outcome": fit.outcome, "features": fit.feature_set,
                     "model": fit.model_kind, "cv": fit.cv, "patients": fit.n_patients, "events": fit.n_events,
                     **{label: metrics.get(key) for key, label in AUC_COLUMNS.items() if key in metrics}})
    return pd.DataFrame(rows)


def coefficient_table(fit: pd.Series | Any) -> pd.DataFrame:
    """The fit's summary table (term, coef, ratio and CI, p), without the intercept."""
    table = pd.DataFrame(fit.coefficients or [])
    if table.empty:
        return table
    if "term" not in table.columns:
        table = table.rename(columns={table.columns[0]: "term"})
    if "dof" in table and not np.isfinite(pd.to_numeric(table["dof"], errors="coerce")).any():
        table = table.drop(columns="dof")  # Wald (normal) intervals throughout: the column says nothing
    return table[~table["term"].isin(["const", "intercept", "Intercept"])].reset_index(drop=True)


def ratio_columns(table: pd.DataFrame) -> tuple[str, str, str] | None:
    """(ratio, lower, upper) column names of a summary table (odds_ratio, hazard_ratio, ...), or None."""
    for col in table.columns:
        if col.endswith("_ratio") and f"{col}_lower" in table and f"{col}_upper" in table:
            return col, f"{col}_lower", f"{col}_upper"
    return None


def fit_curves(fit: pd.Series | Any) -> dict[str, pd.DataFrame]:
    """Stored curve data of a fit (roc, calibration, cv_roc, cv_calibration), wherever the fit keeps it."""
    for holder in (fit.metrics or {}, fit.spec or {}):
        curves = holder.get("curves")
        if isinstance(curves, dict):
            return {name: pd.DataFrame(records) for name, records in curves.items() if records}
    return {}


def imputation_labels(curves: dict[str, pd.DataFrame]) -> dict[str, str]:
    """Dictionary labels of the variables in a fit's imputation diagnostics (trace and distributions)."""
    from vocabulary.dictionary import label

    trace = curves.get("imputation_trace")
    return {v: label(v) for v in trace["variable"].unique()} if trace is not None else {}


def named_curves(curves: dict[str, pd.DataFrame], metrics: dict[str, Any]
                 ) -> tuple[dict[str, pd.DataFrame], dict[str, pd.DataFrame]]:
    """(ROC curves, calibration curves) keyed by the legend names prognosis.plots shows, AUC in the ROC names."""
    def auc_text(key: str) -> str:
        value = metrics.get(key)
        return f" (AUC {value:.3f})" if isinstance(value, int | float) else ""

    roc = {f"apparent{auc_text('auc')}": curves["roc"]} if "roc" in curves else {}
    if "cv_roc" in curves:
        roc[f"cross-validated{auc_text('cv_auc')}"] = curves["cv_roc"]
    calibration = {name: curves[key] for key, name in (("calibration", "apparent"),
                                                       ("cv_calibration", "cross-validated")) if key in curves}
    return roc, calibration


def latest_by_feature_set(fits: pd.DataFrame, outcome: str) -> pd.DataFrame:
    """The newest fit of each (feature set, model kind) for an outcome (fits come newest first)."""
    chosen = fits[fits["outcome"] == outcome]
    return chosen.drop_duplicates(["feature_set", "model_kind"], keep="first").reset_index(drop=True)


def comparison_table(fits: pd.DataFrame, outcome: str, model_kind: str) -> pd.DataFrame:
    """Clinical-only against clinical+imaging (and any other feature set) for one outcome and model kind:
    validated AUC first (`validated_auc`), the apparent one beside it, labelled as apparent."""
    latest = latest_by_feature_set(fits, outcome)
    latest = latest[latest["model_kind"] == model_kind]
    rows = []
    for fit in latest.itertuples():
        m = fit.metrics or {}
        auc, what = validated_auc(m)
        rows.append({"features": fit.feature_set, "fit": fit.id, "patients": fit.n_patients,
                     "validated AUC": auc, "how validated": what or "not validated",
                     "optimism-corrected AUC": m.get("corrected_auc"), "cross-validated AUC": m.get("cv_auc"),
                     "AUC (apparent)": m.get("auc"), "AUC lower (apparent)": m.get("auc_lower"),
                     "AUC upper (apparent)": m.get("auc_upper"), "Brier (apparent)": m.get("brier")})
    return pd.DataFrame(rows)


def imaging_gain(comparison: pd.DataFrame) -> tuple[float, str] | None:
    """The headline of adding imaging: the difference of the two models' validated AUCs and what they are,
    or None unless both are validated the same way (a cross-validated AUC minus an optimism-corrected
    one is not a gain)."""
    rows = comparison.set_index("features")
    if not {"clinical", "clinical+imaging"} <= set(rows.index):
        return None
    base, full = rows.loc["clinical"], rows.loc["clinical+imaging"]
    if base["how validated"] != full["how validated"] or pd.isna(base["validated AUC"]) or pd.isna(
            full["validated AUC"]):
        return None
    return float(full["validated AUC"] - base["validated AUC"]), str(full["how validated"])


def logistic_fits(fits: pd.DataFrame) -> pd.DataFrame:
    """Binary-outcome fits that stored a logistic model spec (what the risk calculator can predict from)."""
    keep = fits["outcome"].isin(BINARY_OUTCOMES) & fits["spec"].map(
        lambda s: isinstance(s, dict) and isinstance(s.get("model"), dict) and s["model"].get("model_kind")
        == "logistic")
    return fits[keep].reset_index(drop=True)


def fitted_risk(spec: dict[str, Any], values: dict[str, Any], alpha: float = 0.05) -> dict[str, float]:
    """Risk with its (1-alpha) interval from a stored logistic fit, for one patient's raw values.

    Raises ValueError naming the missing predictors when the fit needs a value that was not given."""
    model = LogisticModel.from_spec(spec)
    terms = design_terms(pd.DataFrame([values]))
    missing = [t for t in model.terms if t not in terms or pd.isna(terms[t].iloc[0])]
    if missing:
        raise ValueError(f"this model needs {', '.join(missing)}")
    row = model.predict_interval(terms, alpha=alpha).iloc[0]
    return {"risk": float(row["risk"]), "lower": float(row["lower"]), "upper": float(row["upper"])}


def impact_risks(values: dict[str, Any]) -> pd.DataFrame:
    """IMPACT core / core+CT / core+CT+lab predicted mortality and unfavourable outcome (NaN where a predictor the
    model uses is missing). The published models come without covariances, so there are no intervals."""
    raw = pd.DataFrame([values])
    rows = [{"model": f"IMPACT {m}", **{o: float(impact_risk(raw, m, o).iloc[0]) for o in BINARY_OUTCOMES}}
            for m in IMPACT_MODELS]
    return pd.DataFrame(rows)


def prefill(clinical: dict[str, Any] | None, imaging: dict[str, Any] | None) -> dict[str, Any]:
    """Entered-value defaults: a patient's records where present, else a typical moderate-severe TBI admission."""
    values: dict[str, Any] = {"age": 45.0, "gcs_motor": 5, "pupils_unreactive": 0, "hypoxia": 0, "hypotension": 0,
                              "glucose_mmol_l": 7.0, "hemoglobin_g_dl": 13.5, "marshall_ct": 2, "tsah": 0, "edh": 0,
                              "adm_hematoma_ml": 0.0, "peak_edema_ml": 0.0, "adm_midline_shift_mm": 0.0,
                              "adm_lesion_count": 0, "adm_lesion_left": 0}
    for source in (clinical or {}, imaging or {}):
        for key, value in source.items():
            if key in values and value is not None and not (isinstance(value, float) and np.isnan(value)):
                values[key] = int(value) if isinstance(value, bool) else value
    return values


CT_INPUT_NAMES = {"marshall_ct": "Marshall class", "edh": "EDH", "tsah": "tSAH"}
TYPED = "typed"


def ct_input_labels(used: dict[str, Any], prefilled: dict[str, Any],
                    sources: dict[str, str] | None) -> dict[str, str]:
    """Where each IMPACT CT predictor the calculator used came from: the prefilled value's source
    (`prognosis.ct_inputs`: computed, clinical record) while the value is the one prefilled, "typed" where the
    user changed it, entered it with no patient (`sources` None) or it was a default for an unknown value."""
    labels = {}
    for key in CT_INPUT_NAMES:
        source = (sources or {}).get(key)
        kept = source is not None and not source.startswith("unknown") and used.get(key) == prefilled.get(key)
        labels[key] = source if kept else TYPED
    return labels


def ct_input_caption(used: dict[str, Any], labels: dict[str, str]) -> str:
    """'CT predictors used: Marshall class 3 (computed (measured components)); EDH 0 (typed); ...'."""
    return "CT predictors used: " + "; ".join(f"{name} {used.get(key)} ({labels[key]})"
                                                for key, name in CT_INPUT_NAMES.items())


def risk_table(risks: pd.DataFrame) -> pd.DataFrame:
    """Risks as text per source (rows, in the given order) and outcome: '23.4% (15.1%–34.2%)', 'n/a' if unknown."""
    def text(r: pd.Series) -> str:
        if pd.isna(r["risk"]):
            return "n/a (a predictor is missing)"
        interval = f" ({r['lower']:.1%}–{r['upper']:.1%})" if pd.notna(r["lower"]) else ""
        return f"{r['risk']:.1%}{interval}"

    table = risks.assign(text=risks.apply(text, axis=1)).pivot(index="source", columns="outcome", values="text")
    table = table.reindex(index=list(dict.fromkeys(risks["source"])), columns=list(BINARY_OUTCOMES))
    return table.fillna("no model for this outcome").reset_index().rename_axis(columns=None)


# A model whose validated AUC is below this is not offered as a calculator without a clear warning.
MIN_CALCULATOR_AUC = 0.6
KIND_ORDER = {"logistic": 0, "penalized": 1, "boosting": 2, "ordinal": 3, "cox": 4}


def validated_auc(metrics: dict[str, Any]) -> tuple[float | None, str]:
    """The fit's validated discrimination and what it is: cross-validated AUC, else bootstrap-corrected
    AUC, else the ordinal model's cross-validated AUCs, else cross-validated Harrell's C."""
    for key, what in (("cv_auc", "cross-validated AUC"), ("corrected_auc", "optimism-corrected AUC"),
                      ("cv_auc_unfavourable", "cross-validated AUC (GOS 1-3)"),
                      ("cv_harrell_c", "cross-validated C")):
        value = metrics.get(key)
        if isinstance(value, int | float) and np.isfinite(value):
            return float(value), what
    return None, ""


def cautions(fit: pd.Series | Any) -> list[str]:
    """The small-sample and estimation cautions a fit carries, in words (also derived for older fits)."""
    metrics = _get(fit, "metrics") or {}
    out = list(metrics.get("cautions") or [])
    epv = metrics.get("events_per_variable")
    if not out and isinstance(epv, int | float) and epv < 10:
        out.append(f"{epv:.1f} events per model parameter (fewer than 10): estimates are unstable and intervals wide.")
    calibration = calibration_caution(metrics)  # derived from the metrics, not stored: one wording for every fit
    if calibration and calibration not in out:
        out.append(calibration)
    if _get(fit, "outcome") in BINARY_OUTCOMES and not_usable(fit):
        out.append(f"Not usable for individual risks: {not_usable(fit)}.")
    auc, what = validated_auc(metrics)
    if auc is not None and auc < MIN_CALCULATOR_AUC and _get(fit, "outcome") in BINARY_OUTCOMES:
        out.append(f"Its {what} is {auc:.3f}, below {MIN_CALCULATOR_AUC}: it barely separates patients who "
                   "have the outcome from those who do not; do not use its risks for individual patients.")
    elif auc is not None and auc < 0.5:
        out.append(f"Its {what} is {auc:.3f}, below 0.5: it ranked patients it was not fitted on worse than "
                   "chance would; what it learned does not carry over to new patients of this study.")
    return out


def not_usable(fit: pd.Series | Any) -> str | None:
    """Why the fit must not give individual risks (corrected calibration slope, the shrinkage factor,
    at or below 0), or None; read from the fit's metrics, so fits recorded before the mark carry it too."""
    metrics = _get(fit, "metrics") or {}
    return metrics.get("not_usable_for_individual_risks") or unusable_reason(metrics)


def _get(fit: pd.Series | Any, key: str) -> Any:
    return fit[key] if isinstance(fit, pd.Series | dict) else getattr(fit, key)


def overview_table(fits: pd.DataFrame) -> pd.DataFrame:
    """The newest fit of each model, validated performance first, as formatted text for people."""
    latest = fits.drop_duplicates(["outcome", "feature_set", "model_kind", "cv"], keep="first")
    rows = []
    for fit in latest.itertuples():
        m = fit.metrics or {}
        auc, what = validated_auc(m)
        shrink = m.get("shrinkage")
        rows.append({
            "Fit": f"#{fit.id}", "Outcome": OUTCOME_NAMES.get(fit.outcome, fit.outcome),
            "Predictors": fit.feature_set.replace("+", " + "), "Model": fit.model_kind,
            "Validated AUC / C": f"{auc:.3f}" if auc is not None else "–",
            "How validated": what or "not validated",
            "Shrinkage": f"{shrink:.2f}" if isinstance(shrink, int | float) else "–",
            "Estimation": estimation_text(m, fit.model_kind),
            "Individual risks": ("not usable" if fit.outcome in BINARY_OUTCOMES and not_usable(fit)
                                 else "usable" if fit.outcome in BINARY_OUTCOMES else "–"),
            "Patients (events)": f"{fit.n_patients:,} ({fit.n_events:,})" if fit.n_events is not None
            else f"{fit.n_patients:,}",
            "Fitted on": fitted_on(getattr(fit, "spec", None)),
            "Caution": "yes" if cautions(fit) else "",
            "_order": (fit.outcome not in BINARY_OUTCOMES, KIND_ORDER.get(fit.model_kind, 9), fit.outcome, -fit.id),
        })
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    return frame.sort_values("_order", key=lambda s: s.map(str)).drop(columns="_order").reset_index(drop=True)


OUTCOME_NAMES = {"mortality": "6-month mortality", "unfavourable": "unfavourable (GOS 1-3)", "gos": "GOS (ordinal)",
                 "survival": "time to death"}


def default_fit_id(fits: pd.DataFrame) -> int:
    """What the page opens on: the newest binary logistic fit (validated AUC and curves), else the newest fit."""
    binary = fits[fits["outcome"].isin(BINARY_OUTCOMES) & (fits["model_kind"] == "logistic")]
    return int((binary if len(binary) else fits).iloc[0]["id"])


def validate_table(metrics: dict[str, Any]) -> pd.DataFrame:
    """Harrell's validate table (apparent, optimism, corrected; rms's definitions) as formatted text, if the
    fit has it. A corrected value held at the edge of its range says so; a table recorded under other
    definitions (no D, U, Q or g) is not shown, only the instruction to refit."""
    from prognosis.labels import METRIC_LABELS

    validate = metrics.get("validate") or {}
    if validate and "Q" not in validate:
        return pd.DataFrame([{"Index": "This fit's validate table predates rms's definitions of R², intercept "
                                       "and slope: refit it (`ctstudy prognosis fit`) to see them."}])
    rows = []
    for k, v in validate.items():
        note = (f"{v['corrected_unbounded']:.3f} before bounding to the index's range"
                if "corrected_unbounded" in v else "")
        rows.append({"Index": METRIC_LABELS.get(k, k), "Apparent": f"{v['apparent']:.3f}",
                     "Optimism": f"{v['optimism']:+.3f}", "Corrected": f"{v['corrected']:.3f}", "Note": note})
    frame = pd.DataFrame(rows)
    if len(frame) and not frame["Note"].any():
        frame = frame.drop(columns="Note")
    if isinstance(metrics.get("n_boot_separated"), int) and len(frame):
        frame.attrs["separated"] = (f"{metrics['n_boot_separated']} of {metrics.get('n_boot')} bootstrap refits "
                                    "separated the outcome (some risk predicted as 0 or 1)")
    return frame


def coefficient_display(fit: pd.Series | Any) -> pd.DataFrame:
    """Coefficients for people: labelled term with unit, ratio with 95% CI, p, fraction of missing information."""
    from prognosis.labels import term_label

    table = coefficient_table(fit)
    cols = ratio_columns(table) if len(table) else None
    if not cols:
        return pd.DataFrame()
    ratio, lo, hi = cols
    word = ratio.replace("_", " ").capitalize()

    def p_text(p: float) -> str:
        return "< 0.001" if p < 0.001 else f"{p:.3f}"

    out = pd.DataFrame({"Term": table["term"].map(term_label),
                        f"{word} (95% CI)": [f"{r:.2f} ({a:.2f} to {b:.2f})" for r, a, b in
                                             zip(table[ratio], table[lo], table[hi], strict=True)],
                        "p": table["p"].map(p_text)})
    for column, name in (("lambda", "Variance share from missing data (λ)"),
                         ("riv", "Relative increase in variance (riv)"), ("fmi", "Fraction of missing information")):
        if column in table:
            out[name] = table[column].map(lambda v: f"{v:.2f}" if pd.notna(v) else "–")
    return out


def metrics_display(metrics: dict[str, Any]) -> pd.DataFrame:
    """The fit's scalar metrics as a two-column table with readable names and 3 decimals (no curve arrays)."""
    rows = []
    for key, value in metrics.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        text = f"{value:,}" if isinstance(value, int) else f"{value:.3f}"
        name = dictionary.label(key, "model_metric") if dictionary.entry(key, "model_metric") else dictionary.label(key)
        rows.append({"Metric": name, "Value": text})
    return pd.DataFrame(rows)


def calculator_spec(fit: pd.Series | Any) -> tuple[dict[str, Any], bool]:
    """The model spec the calculator predicts from: the shrunken one when the fit has it (True), else the fit's own.
    Raises ValueError, saying why, for a fit not usable for individual risks (`not_usable`)."""
    reason = not_usable(fit)
    if reason:
        raise ValueError(f"fit #{_get(fit, 'id')} is not usable for individual risks: {reason}")
    spec = _get(fit, "spec") or {}
    if isinstance(spec.get("model_shrunk"), dict):
        return spec["model_shrunk"], True
    return spec["model"], False


def predictions_csv(fit: pd.Series | Any) -> str | None:
    """The fit's cross-validated (out-of-fold) risk per patient as CSV, where it stored them."""
    risks = fit_curves(fit).get("cv_risk")
    return None if risks is None or risks.empty else risks.to_csv(index=False)
