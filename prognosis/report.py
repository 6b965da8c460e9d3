"""The outcome-model report a statistician would send: one self-contained HTML file.

It leads with what the data can support (sample size against Riley's criteria, validated rather
than apparent performance, the small-sample caution), then: methods generated from the fit
records, the cohort and its missing data, whether CT biomarkers add to clinical predictors
(pooled test, ΔAUC, NRI, decision curve, IMPACT), each model's validated performance
(rms-validate table, smoothed calibration), coefficients with labels and units, centers
(internal-external validation and random-effects pooling), assumptions, survival, and a TRIPOD
checklist pointing to where each item is answered. Plotly's JavaScript is inlined once, so the
file opens offline.
"""

from __future__ import annotations

import datetime as dt
import html
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from prognosis.assumptions import BRANT_NOT_ESTIMABLE
from prognosis.ct_inputs import ct_source_counts
from prognosis.fitting import calibration_caution
from prognosis.kaplan_meier import KaplanMeierByStrata
from prognosis.labels import FEATURE_LABELS, METRIC_LABELS, OUTCOME_LABELS, estimation_text, term_label
from prognosis.metrics import net_benefit
from prognosis.model_rows import fitted_on, has_admission_scan
from prognosis.plots import (
    calibrate_figure,
    decision_curve_figure,
    forest_figure,
    imputation_trace_figure,
    km_figure,
    missing_pattern_figure,
    observed_imputed_figure,
    roc_figure,
    smooth_calibration_figure,
)
from prognosis.staleness import refit_command, stale_fits, stale_notice
from vocabulary.dictionary import label as variable_label

_CSS = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1000px;color:#222;line-height:1.45}
table{border-collapse:collapse;font-size:13px;margin:.5em 0 .3em}td,th{border:1px solid #ccc;padding:3px 7px;
text-align:right;vertical-align:top}th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
h2{margin-top:2em;border-bottom:2px solid #ddd}.note,.caption{color:#555;font-size:13px}.caption{margin:0 0 1.5em}
.caution{background:#fff4e0;border-left:4px solid #f0a020;padding:.6em 1em;margin:1em 0}
.lead{background:#eef4fb;border-left:4px solid #4c78a8;padding:.8em 1.2em;margin:1em 0}
nav a{margin-right:1em;font-size:13px}"""

# Where the 2,000-patient simulation's results are kept (bench/prognosis_bench.py writes it).
SIMULATION_DOC = Path(__file__).resolve().parents[1] / "docs" / "prognosis-simulation.md"

SECTIONS = (("support", "What the data can support"), ("methods", "Methods"), ("cohort", "Cohort and missing data"),
            ("added-value", "Do CT biomarkers add?"), ("performance", "Validated performance"),
            ("coefficients", "Coefficients"), ("centers", "Centers"), ("assumptions", "Assumptions"),
            ("survival", "Survival"), ("tripod", "TRIPOD+AI checklist"))


class _Figures:
    """Embeds figures with a numbered caption, the plotly library with the first one only."""

    def __init__(self) -> None:
        self.first = True
        self.n = 0

    def __call__(self, fig: go.Figure, caption: str) -> str:
        out = fig.to_html(full_html=False, include_plotlyjs=self.first)
        self.first = False
        self.n += 1
        return f"{out}<p class='caption'><b>Figure {self.n}.</b> {html.escape(caption)}</p>"


def _num(v: Any, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "–"
    if isinstance(v, int | np.integer):
        return f"{int(v):,}"
    return f"{float(v):.{digits}f}"


def _p(v: Any) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "–"
    return "< 0.001" if v < 0.001 else f"{v:.3f}"


def _ci(v: Any, lo: Any, hi: Any, digits: int = 3) -> str:
    return f"{_num(v, digits)} ({_num(lo, digits)} to {_num(hi, digits)})"


def _table(rows: list[dict[str, Any]] | pd.DataFrame, caption: str = "") -> str:
    frame = pd.DataFrame(rows) if not isinstance(rows, pd.DataFrame) else rows
    body = frame.to_html(index=False, border=0, escape=True, na_rep="–")
    return body + (f"<p class='caption'>{html.escape(caption)}</p>" if caption else "")


def _fit_title(fit: dict[str, Any]) -> str:
    return (f"{OUTCOME_LABELS.get(fit['outcome'], fit['outcome'])} ~ "
            f"{FEATURE_LABELS.get(fit['feature_set'], fit['feature_set'])} ({fit['model_kind']}, fit #{fit['id']})")


def _validated_auc(m: dict[str, Any]) -> float | None:
    return m.get("cv_auc", m.get("corrected_auc", m.get("cv_auc_unfavourable", m.get("cv_harrell_c"))))


def _not_usable(m: dict[str, Any]) -> str | None:
    from prognosis.fitting import unusable_reason

    return m.get("not_usable_for_individual_risks") or unusable_reason(m)


def _titles(fits: list[dict[str, Any]]) -> str:
    return html.escape("; ".join(_fit_title(f) for f in fits))


def _patient_counts(fits: list[dict[str, Any]]) -> str:
    counts = sorted({int(f["n_patients"]) for f in fits})
    return f"{counts[0]:,}" if len(counts) == 1 else f"{counts[0]:,} to {counts[-1]:,}"


def support_section(fits: list[dict[str, Any]], n_patients: int) -> str:
    """The lead: sample size against what the models need, validated performance, the caution."""
    binary = [f for f in fits if f["outcome"] in ("mortality", "unfavourable") and f["model_kind"] == "logistic"]
    parts = [f"<h2 id='support'>{SECTIONS[0][1]}</h2>"]
    rows = []
    needed = []
    for f in binary:
        m = f["metrics"]
        riley = m.get("riley") or {}
        if riley:
            needed.append(riley["n_required"])
        rows.append({"Model": _fit_title(f), "Fitted on": fitted_on(f.get("spec")), "Patients": _num(f["n_patients"]),
                     "Smaller outcome class": _num(m.get("smaller_class")),
                     "Per model parameter": _num(m.get("events_per_variable"), 1),
                     "Patients needed (Riley)": _num(riley.get("n_required")),
                     "Validated AUC": _num(_validated_auc(m)),
                     "Estimation": estimation_text(m) or "–",
                     "Shrinkage factor": _num(m.get("shrinkage")),
                     "Individual risks": "not usable" if _not_usable(m) else "usable (shrunken model)"})
    short = [f for f in binary if (f["metrics"].get("riley") or {}).get("n_required", 0) > f["n_patients"]]
    small = bool(short) and len(short) == len(binary)
    link = (f"<a href='{SIMULATION_DOC.as_uri()}'>the 2,000-patient simulation's results "
            "(prognosis-simulation.md)</a>" if SIMULATION_DOC.exists() else
            "the 2,000-patient simulation's results, which <code>python bench/prognosis_bench.py --write-doc</code> "
            "writes to docs/prognosis-simulation.md")
    if small:
        parts.append(
            f"<div class='lead'><b>These {n_patients:,} patients can support only a first look.</b> Riley's "
            f"sample-size criteria ask for at least {min(needed):,} patients for the smallest model below; with fewer "
            "than 10 patients in the smaller outcome class per model parameter, coefficients are unstable, "
            "apparent AUCs are optimistic, and cross-validated AUCs vary widely from one random split to "
            "another (a validated AUC near 0.5 here says little about the method). Read the validated "
            "(cross-validated or bootstrap-corrected) figures, not the apparent ones, and use the shrunken "
            f"model for individual risks. What these methods recover when the sample is adequate: {link}.</div>")
    elif short:
        met = [f for f in binary if f not in short]
        parts.append(
            f"<div class='lead'>Riley's sample-size criteria are met by {_titles(met)}, fitted on "
            f"{_patient_counts(met)} patients, and not by {_titles(short)}, fitted on {_patient_counts(short)} "
            f"patients (they ask for {min(f['metrics']['riley']['n_required'] for f in short):,} or more). Models "
            "with imaging terms are fitted only on the patients with an admission CT and its biomarkers: imaging is "
            "never imputed for a patient without a scan. A model short of the criteria is fitted by ridge "
            "penalized likelihood (see Estimation below); read its validated figures, not the apparent ones, and "
            f"use the shrunken model for individual risks. Method checks on simulated data: {link}.</div>")
    else:
        parts.append(f"<div class='lead'>The sample meets Riley's criteria for the models below; performance is "
                     f"reported as validated (cross-validated and bootstrap-corrected). Method checks on simulated "
                     f"data: {link}.</div>")
    if rows:
        parts.append(_table(rows, "Patients needed: the largest of Riley et al.'s three criteria (BMJ 2020) for "
                                  "expected shrinkage ≥ 0.9, optimism in R² ≤ 0.05 and the overall risk within "
                                  "±0.05, with the bootstrap-corrected R². Estimation: a model whose sample falls "
                                  "short of Riley's criteria (anticipated R² 15 % of its maximum) or of 10 patients "
                                  "of the smaller outcome class per parameter is fitted by ridge penalized "
                                  "likelihood, its penalty chosen by 5-fold cross-validation on each imputed data "
                                  "set and again inside every cross-validation fold and bootstrap refit; "
                                  "coefficients pooled over the imputations by Rubin's rules and validated as the "
                                  "maximum-likelihood models are. Shrinkage factor: bootstrap-corrected "
                                  "calibration slope, capped at 1, applied to the risk calculator's model."))
    for f in binary:
        choice = (f["metrics"].get("estimation_choice") or {}).get("reason")
        if choice:
            parts.append(f"<p class='note'>{html.escape(_fit_title(f))}: {html.escape(choice)}.</p>")
    for f in fits:
        calibration = calibration_caution(f["metrics"])
        for caution in [*f["metrics"].get("cautions", []), *([calibration] if calibration else [])]:
            parts.append(f"<div class='caution'><b>{html.escape(_fit_title(f))}:</b> {html.escape(caution)}</div>")
    return "".join(parts)


def methods_section(fits: list[dict[str, Any]], comparison: pd.DataFrame | None) -> str:
    """A methods paragraph written from what the fit records say was done."""
    if not fits:
        return f"<h2 id='methods'>{SECTIONS[1][1]}</h2><p>No model has been fitted yet.</p>"
    spec = fits[0]["spec"]
    imp = spec.get("imputation_settings") or {}
    prov = spec.get("provenance") or {}
    pk = prov.get("packages") or {}
    kinds = sorted({f["model_kind"] for f in fits})
    outcomes = sorted({OUTCOME_LABELS.get(f["outcome"], f["outcome"]).lower() for f in fits})
    text = [f"We fitted {', '.join(kinds)} models of {', '.join(outcomes)}. "]
    if spec.get("imputation") == "mice":
        text.append(
            f"Missing predictors were multiply imputed (m = {imp.get('m', spec.get('m'))}) by chained equations with "
            f"predictive mean matching ({imp.get('donors', 5)} donors, {imp.get('iterations', 5)} iterations), the "
            "imputation model including all predictors, the center and the outcomes; estimates were pooled with "
            "Rubin's rules (Barnard-Rubin degrees of freedom), and the test of added imaging value with the D1 "
            "statistic over all imputations. ")
    else:
        text.append("Patients with a missing predictor were excluded (complete-case analysis). ")
    text.append(
        f"Performance was validated by {spec.get('n_splits', 5)}-fold cross-validation repeated "
        f"{spec.get('n_repeats', 2)} times and by Harrell's bootstrap ({spec.get('n_boot')} replicates), with the "
        "imputation repeated inside every fold and replicate so that no held-out patient was imputed from their own "
        "outcome; cross-validated risks were evaluated on every imputed data set and averaged. Refits that the data "
        "could not estimate by maximum likelihood were refitted with Firth's penalized likelihood where the outcome "
        "was separated (Firth 1993; Heinze & Schemper 2002) and with a weak ridge penalty where a category was "
        "absent, and are listed with the fit. Calibration is shown as a loess curve of out-of-fold risks "
        "with a bootstrap band. Leave-one-center-out validation, where run, was pooled across centers by "
        "DerSimonian-Laird random-effects meta-analysis with a 95% prediction interval. ")
    firth = [f for f in fits if (f["metrics"].get("estimation") or {}).get("method") == "firth"]
    if firth:
        text.append(f"The outcome was separated in the data of {len(firth)} model(s) "
                    f"({', '.join(_fit_title(f) for f in firth)}): their maximum-likelihood estimates are infinite, "
                    "so they were fitted by Firth's penalized likelihood (Jeffreys prior) on the data sets "
                    "concerned, pooled and validated as the others. ")
    text.append(f"Seed {spec.get('seed')}; ctstudy {prov.get('ctstudy') or '?'} (commit "
                f"{(prov.get('git_commit') or '?')[:12]}), Python {prov.get('python', '?')}, statsmodels "
                f"{pk.get('statsmodels', '?')}, scikit-learn {pk.get('scikit-learn', '?')}, lifelines "
                f"{pk.get('lifelines', '?')}; data snapshot {fits[0]['data_hash'][:12]}.")
    return f"<h2 id='methods'>{SECTIONS[1][1]}</h2><p>{html.escape(''.join(text))}</p>"


def comparison_section(comparison: pd.DataFrame | None, curves: dict[str, Any], impact: pd.DataFrame | None,
                       figure: _Figures, ct_sources: pd.DataFrame | None = None) -> str:
    parts = [f"<h2 id='added-value'>{SECTIONS[3][1]}</h2>"]
    if comparison is None or not len(comparison):
        parts.append("<p>No imaging features yet: no comparison.</p>")
    else:
        rows = []
        for _, r in comparison.iterrows():
            rows.append({
                "Outcome": OUTCOME_LABELS.get(r["outcome"], r["outcome"]),
                "Patients (events)": f"{int(r['n']):,} ({int(r['n_events']):,})",
                "CV AUC clinical": _num(r["auc_base"]), "CV AUC + CT": _num(r["auc_full"]),
                "ΔAUC (95% CI)": _ci(r["delta_auc"], r["delta_auc_lower"], r["delta_auc_upper"]),
                "NRI (95% CI)": _ci(r["nri"], r["nri_lower"], r["nri_upper"], 2),
                "Pooled test of CT terms": f"F({int(r['d1_df1'])}, {_num(r.get('d1_df2'), 0)}) = "
                                           f"{_num(r['d1_statistic'], 2)}, p {_p(r['d1_p'])}",
                "LR χ² over imputations": f"{_num(r['lr_statistic_min'], 1)} to {_num(r['lr_statistic_max'], 1)}",
                "m": int(r["m"]),
            })
        parts.append(_table(rows, "CV AUC: out-of-fold risks (imputation inside each fold), averaged over repeats "
                                  "and imputations. ΔAUC and NRI (continuous): bootstrap CIs over patients. Pooled "
                                  "test: D1 multivariate Wald test of the CT coefficients over all m imputations "
                                  "(Li, Raghunathan & Rubin 1991)."))
        for outcome in comparison["outcome"]:
            if outcome in curves:
                parts.append(figure(roc_figure(curves[outcome], f"{OUTCOME_LABELS.get(outcome, outcome)}: ROC"),
                                    "Cross-validated ROC curves of the clinical and clinical + CT models."))
            risks = curves.get(f"{outcome}_risks")
            if risks:
                y = np.asarray(risks["y"], dtype=float)
                models = {k: np.asarray(v, dtype=float) for k, v in risks.items() if k != "y"}
                ok = np.all([np.isfinite(v) for v in models.values()], axis=0)
                nb = net_benefit(y[ok], {k: v[ok] for k, v in models.items()}, np.arange(0.05, 0.61, 0.01))
                parts.append(figure(decision_curve_figure(nb, f"{OUTCOME_LABELS.get(outcome, outcome)}: decision "
                                                              "curve"),
                                    "Net benefit of acting on each model's risk above the threshold (Vickers & Elkin "
                                    "2006), with out-of-fold risks for our models and IMPACT core+CT's published "
                                    "risks on the same imputed rows (all patients, although IMPACT was developed on "
                                    "GCS ≤ 12); against treating all and treating none."))
    if impact is not None and len(impact):
        rows = [{"Outcome": OUTCOME_LABELS.get(r["outcome"], r["outcome"]), "Model": r["model"],
                 "Patients (events)": f"{int(r['n']):,} ({int(r['events']):,})",
                 "Excluded: GCS > 12 / unknown": f"{int(r.get('excluded_gcs_above_12', 0))} / "
                                                 f"{int(r.get('excluded_gcs_unknown', 0))}",
                 "AUC (95% CI)": _ci(r["auc"], r["auc_lower"], r["auc_upper"]),
                 "Calibration intercept": _num(r["calibration_intercept"]),
                 "Calibration slope": _num(r["calibration_slope"]), "Brier": _num(r["brier"]),
                 "Scored on": r.get("scored_on", "")} for _, r in impact.iterrows()]
        parts.append("<h3>IMPACT as external reference</h3>")
        parts.append(_table(rows, "IMPACT models with their published coefficients (calculator coefficient document "
                                  "of Steyerberg et al., PLoS Med 2008), applied to patients with GCS ≤ 12 as "
                                  "developed; a missing motor score is coded 'untestable/missing'."))
    if ct_sources is not None and len(ct_sources):
        rows = [{"CT predictor": r["predictor"], "Computed from the admission scan": _num(int(r["computed"])),
                 "Clinical record": _num(int(r["clinical record"])), "Unknown": _num(int(r["unknown"]))}
                for _, r in ct_sources.iterrows()]
        parts.append("<h3>Where the CT predictors came from</h3>")
        parts.append(_table(rows, "Patients per source of the Marshall class, EDH and tSAH that the models and "
                                  "IMPACT core+CT use: the admission scan's computed classification where it is "
                                  "known (not a range), else the clinical record's."))
    return "".join(parts)


def imputation_figures(fit: dict[str, Any], figure: _Figures) -> str:
    """mice's trace plot and observed-against-imputed plot of the imputation a fit used, if it kept them."""
    curves = fit["metrics"].get("curves", {})
    if not len(curves.get("imputation_trace", [])):
        return ""
    trace = pd.DataFrame(curves["imputation_trace"])
    labels = {v: variable_label(v) for v in trace["variable"].unique()}
    outcome = OUTCOME_LABELS.get(fit["outcome"], fit["outcome"])
    parts = [figure(imputation_trace_figure(trace, labels),
                    f"Imputation of the patients with a known {outcome.lower()} outcome: mean of each variable's "
                    "imputed values after each iteration, one line per imputation (chain); chains that "
                    "intermingle without a trend have converged (as mice's plot).")]
    if len(curves.get("imputation_distribution", [])):
        parts.append(figure(observed_imputed_figure(pd.DataFrame(curves["imputation_distribution"]), labels),
                            "Observed values (blue) against each imputation's imputed values (red), share per bin "
                            "or per value (as mice's densityplot and stripplot): imputed values unlike any observed "
                            "ones would question the imputation model or the missing-at-random assumption."))
    return "".join(parts)


def performance_section(fits: list[dict[str, Any]], figure: _Figures) -> str:
    parts = [f"<h2 id='performance'>{SECTIONS[4][1]}</h2>"]
    imputations_shown: set[str] = set()
    for f in fits:
        m = f["metrics"]
        parts.append(f"<h3>{html.escape(_fit_title(f))}</h3>")
        rows_note = (f["spec"] or {}).get("rows")
        parts.append(f"<p class='note'>{f['n_patients']:,} patients, {f['n_events']:,} events"
                     f"{' (' + html.escape(str(rows_note)) + ')' if rows_note else ''}; validation "
                     f"{html.escape(str(f['cv']))}; imputation {html.escape(str(f['spec'].get('imputation')))} "
                     f"(m = {f['spec'].get('m')}).</p>")
        validate = m.get("validate")
        if validate and "Q" not in validate:
            parts.append("<p class='caution'>This fit's validate table predates rms's definitions of R², "
                         "intercept and slope and is not shown: refit it to report them.</p>")
        elif validate:
            rows = [{"Index": METRIC_LABELS.get(k, k), "Apparent": _num(v["apparent"]),
                     "Optimism": _num(v["optimism"]), "Corrected": _num(v["corrected"])}
                    for k, v in validate.items()]
            if "cv_auc" in m:
                rows.append({"Index": "AUC, cross-validated", "Apparent": "", "Optimism": "",
                             "Corrected": _num(m["cv_auc"])})
            bounded = [METRIC_LABELS.get(k, k) for k, v in validate.items() if "corrected_unbounded" in v]
            separated = m.get("n_boot_separated")
            parts.append(_table(rows, f"Bootstrap validation ({m.get('n_boot')} replicates, imputation repeated in "
                                      "each) with rms validate's definitions: intercept, slope and R² after "
                                      "recalibrating each refit on the original data. Apparent intercept and slope "
                                      "are 0 and 1 by construction; the corrected slope, capped at 1, is the "
                                      "uniform shrinkage factor."
                                      + (f" {separated} of {m.get('n_boot')} refits separated the outcome (some risk "
                                         "predicted as 0 or 1)." if isinstance(separated, int) else "")
                                      + (f" Held at the edge of its range: {', '.join(bounded)}." if bounded else "")))
            if _not_usable(m):
                parts.append(f"<p class='caution'><b>Not usable for individual risks:</b> "
                             f"{html.escape(str(_not_usable(m)))}.</p>")
        elif f["outcome"] == "gos":
            parts.append(_table([{"Outcome split": k, "AUC (95% CI)": _ci(m.get(f"auc_{k}"), m.get(f"auc_{k}_lower"),
                                                                           m.get(f"auc_{k}_upper")),
                                  "Cross-validated AUC": _num(m.get(f"cv_auc_{k}"))}
                                 for k in ("death", "unfavourable")],
                                "Apparent AUC with DeLong CI; cross-validated with imputation inside each fold."))
        elif f["outcome"] == "survival":
            parts.append(_table([{"Harrell's C": _num(m.get("harrell_c")),
                                  "Cross-validated C": _num(m.get("cv_harrell_c"))}]))
        refits = (m.get("cv_refits_penalized") or 0) + (m.get("cv_folds_not_estimable") or 0)
        if refits:
            parts.append(f"<p class='note'>{refits} cross-validation refit(s) needed Firth's penalized likelihood "
                         "(separation), the ridge fallback (an absent category) or could not be estimated (listed "
                         "in the fit record).</p>")
        curves = m.get("curves", {})
        if "cv_calibration_smooth" in curves:
            parts.append(figure(smooth_calibration_figure(pd.DataFrame(curves["cv_calibration_smooth"]),
                                                          pd.DataFrame(curves.get("cv_calibration", []))),
                                f"{_fit_title(f)}: calibration of cross-validated risks, loess with 95% "
                                "bootstrap band; grey points: tenths of predicted risk."))
        if "calibrate" in curves:
            parts.append(figure(calibrate_figure(pd.DataFrame(curves["calibrate"])),
                                f"{_fit_title(f)}: apparent and optimism-corrected calibration (as rms calibrate, "
                                f"{m.get('n_boot')} bootstrap refits; spline logistic recalibration of each)."))
        if f["outcome"] not in imputations_shown and len(curves.get("imputation_trace", [])):
            # One outcome's models share their imputation (same rows, m and seed): shown once.
            imputations_shown.add(f["outcome"])
            parts.append(imputation_figures(f, figure))
    return "".join(parts)


def coefficients_section(fits: list[dict[str, Any]], figure: _Figures) -> str:
    parts = [f"<h2 id='coefficients'>{SECTIONS[5][1]}</h2>"]
    for f in fits:
        if not f["coefficients"]:
            continue
        coef = pd.DataFrame(f["coefficients"])
        ratio = next((c for c in ("odds_ratio", "hazard_ratio") if c in coef), None)
        if not ratio:
            continue
        word = "Odds ratio" if ratio == "odds_ratio" else "Hazard ratio"
        rows = [{"Term": term_label(r["term"]),
                 f"{word} (95% CI)": _ci(r[ratio], r[f"{ratio}_lower"], r[f"{ratio}_upper"], 2),
                 "p": _p(r["p"]), "λ": _num(r.get("lambda"), 2), "riv": _num(r.get("riv"), 2),
                 "FMI": _num(r.get("fmi"), 2) if "fmi" in r else "–"}
                for _, r in coef.iterrows() if r["term"] != "const"]
        parts.append(f"<h3>{html.escape(_fit_title(f))}</h3>")
        parts.append(_table(rows, "Pooled over imputations (Rubin's rules); CIs and p with Barnard-Rubin degrees of "
                                  "freedom; λ: share of the total variance due to the missing data; riv: relative "
                                  "increase in variance due to it; FMI: fraction of missing information (mice's "
                                  "names, van Buuren 2018, 2.3)."))
        cuts = f["metrics"].get("cutpoint_table")
        if cuts:
            parts.append(_table([{"Cutpoint": c["cutpoint"], "Estimate (95% CI)": _ci(c["estimate"], c["lower"],
                                                                                       c["upper"], 2),
                                  "SE": _num(c["se"])} for c in cuts],
                                "Cutpoints of P(GOS ≤ k) = expit(cutpoint + linear predictor), pooled by Rubin's "
                                "rules (total variance; CI with Barnard-Rubin degrees of freedom)."))
        labelled = coef.assign(term=coef["term"].map(term_label))
        parts.append(figure(forest_figure(labelled, f"{word}s (95% CI)"), f"{_fit_title(f)}: {word.lower()}s."))
    return "".join(parts)


def centers_section(fits: list[dict[str, Any]]) -> str:
    parts = [f"<h2 id='centers'>{SECTIONS[6][1]}</h2>"]
    found = False
    for f in fits:
        curves = f["metrics"].get("curves", {})
        if "per_center" not in curves:
            continue
        found = True
        rows = [{"Center": r["center"], "Patients": _num(r["n"]), "Events": _num(r["events"]),
                 "AUC (95% CI)": _ci(r.get("auc"), r.get("auc_lower"), r.get("auc_upper")),
                 "Calibration intercept": _num(r.get("calibration_intercept")),
                 "Calibration slope": _num(r.get("calibration_slope"))} for r in curves["per_center"]]
        meta = (f["metrics"].get("center_meta") or {}).get("auc")
        caption = "Each center's patients predicted by the model fitted on the other centers."
        if meta:
            caption += (f" Random-effects pooled AUC {_ci(meta['pooled'], meta['lower'], meta['upper'])}; τ² (logit "
                        f"AUC) {_num(meta['tau2_logit'])}, I² {_num(100 * meta['i2'], 0)}%; 95% prediction interval "
                        f"for a new center {_num(meta['pi_lower'])} to {_num(meta['pi_upper'])}"
                        + (f"; Hartung-Knapp 95% CI {_num(meta['hk_lower'])} to {_num(meta['hk_upper'])}"
                           if "hk_lower" in meta else "") + ".")
        for name, label in (("calibration_intercept", "calibration intercept"), ("calibration_slope",
                                                                                  "calibration slope")):
            cal = (f["metrics"].get("center_meta") or {}).get(name)
            if cal:
                caption += (f" Pooled {label} {_ci(cal['pooled'], cal['lower'], cal['upper'], 2)} (random effects, "
                            f"Hartung-Knapp CI), τ² {_num(cal['tau2'])}.")
        parts.append(f"<h3>{html.escape(_fit_title(f))}</h3>" + _table(rows, caption))
        ri = f["metrics"].get("random_intercept")
        if ri:
            parts.append(f"<p>Sensitivity analysis, logistic model with a random intercept per center "
                         f"(maximum likelihood, Laplace; over {ri.get('m', 1)} imputed data set(s)): between-center "
                         f"SD of the log-odds {_num(ri['center_sd'], 2)} (95% profile-likelihood interval "
                         f"{_num(ri['center_sd_lower'], 2)} to {_num(ri['center_sd_upper'], 2)}), "
                         f"median odds ratio {_num(ri['median_odds_ratio'], 2)}; largest shift of a fixed effect "
                         f"against the ordinary model "
                         f"{_num(max((abs(r.get('shift') or 0) for r in ri['fixed_effects']), default=0), 2)} on "
                         "the log-odds scale.</p>")
    if not found:
        parts.append("<p class='note'>No leave-one-center-out fit yet: run <code>ctstudy prognosis fit --cv "
                     "center</code> for the per-center table and its random-effects pooling.</p>")
    return "".join(parts)


POOLED_TEST_NOTE = ("Run on each imputed data set and pooled over all m by D2 (Li, Meng, Raghunathan & Rubin "
                    "1991): F on (df, df2), with the range of the per-imputation χ².")


def _pooled_statistic(r: dict[str, Any]) -> str:
    """'F(3, 41) = 1.20 (χ² 2.9 to 4.4 over 5)' for a D2-pooled test row, 'χ² 3.10 (3)' for one data set."""
    df2 = r.get("df2")
    if (r.get("m") or 1) > 1 and df2 is not None:
        df2_text = _num(df2, 0) if np.isfinite(df2) else "∞"
        return (f"F({int(r['df'])}, {df2_text}) = {_num(r['chi2'], 2)} (χ² {_num(r.get('chi2_min'), 1)} to "
                f"{_num(r.get('chi2_max'), 1)} over {int(r['m'])})")
    return f"χ² {_num(r['chi2'], 2)} ({int(r['df'])})"


def assumptions_section(fits: list[dict[str, Any]]) -> str:
    parts = [f"<h2 id='assumptions'>{SECTIONS[7][1]}</h2>"]
    for f in fits:
        m = f["metrics"]
        if "brant" in m:
            rows = [{"Term": "all terms" if r["term"] == "omnibus" else term_label(r["term"]),
                     "Statistic": _pooled_statistic(r), "p": _p(r["p"])} for r in m["brant"]]
            parts.append(f"<h3>Proportional odds: {html.escape(_fit_title(f))}</h3>")
            parts.append(_table(rows, "Brant's test: each term's coefficients in the cumulative binary logits "
                                      "GOS ≤ k compared; small p: that term's effect differs across GOS levels. "
                                      + POOLED_TEST_NOTE))
        else:
            for note in (c for c in m.get("cautions", []) if c.startswith(BRANT_NOT_ESTIMABLE)):
                parts.append(f"<h3>Proportional odds: {html.escape(_fit_title(f))}</h3>")
                parts.append(f"<p class='caution'>{html.escape(note)}.</p>")
        if "ph_test" in m:
            rows = [{"Term": term_label(r["term"]), "Statistic (df)": f"{_num(r['test_statistic'], 2)} "
                                                                  f"({int(r.get('df') or 1)})", "p": _p(r["p"])}
                    for r in m["ph_test"]]
            parts.append(f"<h3>Proportional hazards: {html.escape(_fit_title(f))}</h3>")
            parts.append(_table(rows, f"Score tests of each term x g(t), g = 1 - Kaplan-Meier (R's cox.zph); "
                                      "over m imputations the statistic is D2's F (per df) pooling the m "
                                      f"chi-squares. Global test: p {_p(m.get('ph_global_p'))}."))
        if "nonlinearity" in m:
            rows = [{"Term": term_label(r["term"]), "Statistic": _pooled_statistic(r),
                     "p": _p(r["p"])} for r in m["nonlinearity"]]
            parts.append(f"<h3>Non-linearity: {html.escape(_fit_title(f))}</h3>")
            parts.append(_table(rows, "Each continuous term as a restricted cubic spline (4 knots), Wald test of the "
                                      "non-linear terms; small p: keep the spline rather than the linear term. "
                                      + POOLED_TEST_NOTE))
    return "".join(parts)


# TRIPOD+AI (Collins et al., BMJ 2024;385:e078378): each item, the report section that answers it (None:
# not addressed by this report, what the manuscript must supply) and what there answers it.
TRIPOD_AI_ITEMS: tuple[tuple[str, str, str | None, str], ...] = (
    ("1", "Title", None, "Not addressed: the report's title is generic; the manuscript's title names the model, "
                         "population and outcome"),
    ("2", "Abstract", None, "Not addressed (TRIPOD+AI for Abstracts)"),
    ("3a-c", "Background: context, rationale, disparities", None, "Not addressed"),
    ("4", "Objectives", "added-value", "Whether CT biomarkers add to the clinical predictors"),
    ("5a-b", "Data sources and dates", "cohort", "Registry data snapshot and centers; collection dates not "
                                                 "reported"),
    ("6a-c", "Participants: setting, eligibility, treatment", "cohort",
     "Patients with the outcome, per center; IMPACT applied to GCS ≤ 12; treatments not addressed"),
    ("7", "Data preparation", None, "Not addressed: image QC and segmentation are documented outside this report"),
    ("8a-c", "Outcome: definition, time horizon, blinding", "methods",
     "6-month GOS, mortality, time to death; blinding of outcome assessment not addressed"),
    ("9a-c", "Predictors: choice, definition, blinding", "coefficients",
     "Terms with labels and units; blinding of predictor assessment not addressed"),
    ("10", "Sample size", "support", "Riley's criteria and events per parameter (smaller class)"),
    ("11", "Missing data", "cohort", "Missingness by variable and pattern; multiple imputation in Methods"),
    ("12a", "Data used for development and evaluation", "methods",
     "All patients; cross-validation and bootstrap with imputation inside"),
    ("12b", "Predictor handling (functional form)", "assumptions", "Spline tests of non-linearity pooled over "
                                                                    "imputations"),
    ("12c", "Model type, building, tuning, internal validation", "support",
     "Ridge or maximum likelihood and why; the penalty chosen by cross-validation, again in every refit"),
    ("12d", "Heterogeneity across clusters", "centers", "Leave-one-center-out, per-center table, random effects"),
    ("12e", "Performance measures", "performance", "rms validate indexes; calibration curve of cross-validated "
                                                   "risks"),
    ("12f", "Model updating or recalibration", "performance", "Uniform shrinkage from the corrected slope"),
    ("12g", "Comparison with existing models", "added-value", "IMPACT with its published coefficients"),
    ("13", "Class imbalance", None, "Not addressed (no rebalancing is done; outcome rates in the cohort section)"),
    ("14", "Fairness", None, "Not addressed"),
    ("15", "Model output and thresholds", "added-value", "Predicted risks; decision curve over thresholds"),
    ("16", "Training versus evaluation data", "centers", "Held-out centers against the others"),
    ("17", "Ethical approval", None, "Not addressed"),
    ("18a-f", "Funding, conflicts, protocol, registration, data and code", "methods",
     "Software versions, commit and seed; funding, conflicts, protocol, registration and data sharing not "
     "addressed"),
    ("19", "Patient and public involvement", None, "Not addressed"),
    ("20a-c", "Participants: flow, characteristics, missing data", "cohort", "Counts per center, missing data"),
    ("21", "Model development: participants and events per analysis", "performance",
     "Patients and events of each fit"),
    ("22", "Model specification", "coefficients", "Full pooled coefficients; the stored spec predicts again"),
    ("23a", "Model performance with CIs", "performance",
     "Optimism-corrected indexes; AUC CIs with the comparison (Do CT biomarkers add?)"),
    ("23b", "Performance in key subgroups", "centers", "Per held-out center"),
    ("24", "Model updating results", "performance", "Shrinkage factor; models with factor ≤ 0 marked not usable"),
    ("25", "Interpretation", "added-value", "Against IMPACT and treat-all / treat-none"),
    ("26", "Limitations", "support", "Sample size against Riley's criteria, cautions; assumption checks"),
    ("27a-c", "Usability: poor or missing input, users, future research", None, "Not addressed"),
)


def tripod_section() -> str:
    """The TRIPOD+AI checklist: each item with the report section that answers it, or 'not addressed'."""
    rows = [{"TRIPOD+AI item": k, "Topic": topic,
             "Where answered": (f"<a href='#{anchor}'>{dict(SECTIONS)[anchor]}</a>" if anchor else "not addressed"),
             "What": what} for k, topic, anchor, what in TRIPOD_AI_ITEMS]
    frame = pd.DataFrame(rows)
    return (f"<h2 id='tripod'>{SECTIONS[9][1]}</h2>" + frame.to_html(index=False, border=0, escape=False)
            + "<p class='caption'>TRIPOD+AI statement (Collins et al., BMJ 2024;385:e078378). Items marked "
              "'not addressed' are the manuscript's to answer.</p>")


def staleness_section(fits: list[dict[str, Any]], current_hash: str | None) -> str:
    """A caution naming the fits made on another data snapshot than the analysis table's now, with the commands
    that refit them; empty when every fit is current (or the current snapshot is not known)."""
    stale = [] if current_hash is None else stale_fits(fits, current_hash)
    if not stale:
        return ""
    rows = [{"Model": _fit_title(f), "Fitted on data snapshot": f["data_hash"][:12],
             "Refit with": refit_command(f)} for f in stale]
    notice = html.escape(stale_notice(stale, current_hash))
    return f"<div class='caution' id='out-of-date'><b>Out of date.</b> {notice}</div>" + _table(rows)


def report_html(fits: list[dict[str, Any]], comparison: pd.DataFrame | None, comparison_curves: dict[str, Any],
                impact: pd.DataFrame | None, km: KaplanMeierByStrata | None, missingness: pd.DataFrame | None,
                title: str = "ctstudy outcome models", table: pd.DataFrame | None = None,
                current_hash: str | None = None) -> str:
    """The whole report as one HTML string; with `current_hash` (the analysis table's data snapshot now) it leads
    with the fits that were made on other data, if any."""
    figure = _Figures()
    n_patients = int(len(table)) if table is not None else max((f["n_patients"] for f in fits), default=0)
    nav = "".join(f"<a href='#{a}'>{t}</a>" for a, t in SECTIONS)
    body = [f"<h1>{html.escape(title)}</h1><p class='note'>Generated {dt.datetime.now():%Y-%m-%d %H:%M} from "
            f"{len(fits)} stored fits.</p><nav>{nav}</nav>", staleness_section(fits, current_hash),
            support_section(fits, n_patients), methods_section(fits, comparison)]
    body.append(f"<h2 id='cohort'>{SECTIONS[2][1]}</h2>")
    if table is not None:
        per_center = table.groupby("center").agg(patients=("patient_id", "size"), deaths=("died", "sum"),
                                                 unfavourable=("unfavourable", "sum")).reset_index()
        rows = [{"Center": r["center"], "Patients": _num(int(r["patients"])), "Deaths": _num(int(r["deaths"])),
                 "Unfavourable (GOS 1-3)": _num(int(r["unfavourable"]))} for _, r in per_center.iterrows()]
        body.append(_table(rows, "Patients and 6-month outcomes per center."))
        from prognosis.imputation import IMPUTED_COLUMNS

        cols = [c for c in IMPUTED_COLUMNS if c in table.columns]
        body.append(figure(missing_pattern_figure(table, cols, {c: term_label(c) for c in cols}),
                           "Missing-data patterns: each row a combination of missing variables and its patients."))
    if missingness is not None:
        miss = missingness.reset_index()
        rows = []
        for _, r in miss.iterrows():
            row = {"Variable": term_label(str(r["variable"])), "Missing (n)": _num(int(r["n_missing"])),
                   "Missing (%)": _num(r["pct_missing"], 1)}
            row.update({f"{c[4:]} (%)": _num(r[c], 1) for c in miss.columns if c.startswith("pct_")
                        and c != "pct_missing"})
            rows.append(row)
        scanned = has_admission_scan(table) if table is not None else None
        no_ct = int((~scanned).sum()) if scanned is not None and scanned.any() else 0
        body.append(_table(rows, "Missing values per variable: count, % overall and % in each center."
                           + (f" The imaging variables are absent by design for the {no_ct:,} patients without an "
                              "admission CT: models with imaging terms are fitted on the others only, and no "
                              "imaging value is imputed for them." if no_ct else "")))
    ct_sources = ct_source_counts(table) if table is not None else None
    body.append(comparison_section(comparison, comparison_curves, impact, figure, ct_sources))
    body.append(performance_section(fits, figure))
    body.append(coefficients_section(fits, figure))
    body.append(centers_section(fits))
    body.append(assumptions_section(fits))
    body.append(f"<h2 id='survival'>{SECTIONS[8][1]}</h2>")
    if km is not None:
        body.append(_table(km.counts))
        body.append(figure(km_figure(km), "Kaplan-Meier survival by tertile of admission hematoma volume, with 95% "
                                          "bands; log-rank p in the title."))
    body.append(tripod_section())
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{_CSS}</style></head><body>{''.join(body)}</body></html>")
