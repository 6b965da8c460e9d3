"""One outcome-model fit as the CLI records it: imputation (or complete case), the model (pooled by
Rubin's rules over the m imputations), its apparent and cross-validated metrics, curve data for the
plots, and the spec needed to predict again. Pure: DataFrames in, a FitResult out.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
from statsmodels.tools.sm_exceptions import ConvergenceWarning, HessianInversionWarning, PerfectSeparationWarning

from prognosis.analysis_table import analysis_table_hash, rows_with_outcome
from prognosis.coefficients import CoefficientModel
from prognosis.cox import CoxModel
from prognosis.imputation import complete_case_table, multiply_imputed_tables
from prognosis.logistic import LogisticModel
from prognosis.metrics import (
    auc,
    auc_delong,
    binary_metrics,
    bootstrap_aucs,
    calibration_curve_data,
    harrell_c,
    roc_curve_data,
    stratified_bootstrap_indices,
)
from prognosis.ml_models import GradientBoostingModel, PenalizedLogisticModel
from prognosis.ordinal import OrdinalGOSModel
from prognosis.terms import raw_columns_of, terms_of
from prognosis.threads import single_threaded_blas
from prognosis.validation import (
    bootstrap_optimism,
    compare_nested,
    cross_validated_metrics,
    cross_validated_predictions,
    cv_splits,
    fit_fold,
    fold_note_metrics,
)

OUTCOMES = ("mortality", "unfavourable", "gos", "survival")
BINARY_COLUMN = {"mortality": "died", "unfavourable": "unfavourable"}
BINARY_KINDS = ("logistic", "penalized", "boosting")
MODEL_KINDS = {"mortality": BINARY_KINDS, "unfavourable": BINARY_KINDS, "gos": ("ordinal",), "survival": ("cox",)}
IMPUTATIONS = ("mice", "complete-case")


@dataclass
class FitResult:
    outcome: str
    feature_set: str
    model_kind: str
    cv: str | None
    imputation: str
    model: Any  # the fitted (pooled) model
    summary: pd.DataFrame | None  # coefficient table (None for the scikit-learn comparisons)
    metrics: dict[str, Any]
    curves: dict[str, pd.DataFrame]  # roc, calibration (binary outcomes)
    n_patients: int
    n_events: int
    variables: list[str]
    data_hash: str
    spec: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # PH test etc.


def analysis_tables(table: pd.DataFrame, outcome_columns: list[str], terms: list[str], imputation: str, m: int,
                    seed: int) -> list[pd.DataFrame]:
    """The data sets a model is fitted on: m imputed tables, or the complete cases (a list of one)."""
    rows = rows_with_outcome(table, outcome_columns)
    if imputation == "mice":
        return multiply_imputed_tables(rows, m=m, seed=seed, required=tuple(raw_columns_of(terms)))
    if imputation == "complete-case":
        return [complete_case_table(rows, terms)]
    raise ValueError(f"imputation must be one of {IMPUTATIONS}, got {imputation!r}")


def fit_settings(outcome: str, feature_set: str, model_kind: str | None, cv: str | None, imputation: str, m: int,
                 n_splits: int, n_repeats: int, n_boot: int, seed: int,
                 age_spline_knots: int | None) -> dict[str, Any]:
    """The settings that, with the data snapshot, determine a fit: stored in its spec, and what
    `prognosis fit` compares to recognise a fit already made (same data + same settings = same fit)."""
    return {"outcome": outcome, "model_kind": model_kind or MODEL_KINDS[outcome][0], "feature_set": feature_set,
            "cv": cv, "imputation": imputation, "m": m if imputation == "mice" else None, "n_splits": n_splits,
            "n_repeats": n_repeats, "n_boot": n_boot, "seed": seed, "age_spline_knots": age_spline_knots}


def model_factory(outcome: str, model_kind: str, terms: list[str], age_spline_knots: int | None = None):  # noqa: ANN201
    """A zero-argument constructor of the unfitted model (what cross-validation and bootstrap call)."""
    if model_kind not in MODEL_KINDS.get(outcome, ()):
        raise ValueError(f"model kind {model_kind!r} does not fit outcome {outcome!r}; "
                         f"choose from {MODEL_KINDS.get(outcome, ())} (outcomes: {OUTCOMES})")
    if outcome in BINARY_COLUMN:
        col = BINARY_COLUMN[outcome]
        if model_kind == "logistic":
            return partial(LogisticModel, terms, col, age_spline_knots)
        if model_kind == "penalized":
            return partial(PenalizedLogisticModel, terms, col)
        return partial(GradientBoostingModel, terms, col)
    if outcome == "gos":
        return partial(OrdinalGOSModel, terms, "gos_6m", age_spline_knots)
    return partial(CoxModel, terms, "days_to_death_or_censor", "died", age_spline_knots)


# Events per variable below which logistic estimates are unstable (Peduzzi et al., J Clin Epidemiol 1996).
MIN_EVENTS_PER_VARIABLE = 10


OPTIMIZER_WARNINGS = (ConvergenceWarning, PerfectSeparationWarning, HessianInversionWarning, RuntimeWarning)


@contextmanager
def optimizer_warnings_counted() -> Iterator[list[warnings.WarningMessage]]:
    """Collect the optimizers' warnings (non-convergence, separation, overflow) into the yielded list;
    any other warning is re-issued as usual."""
    optimizer: list[warnings.WarningMessage] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield optimizer
    for w in caught:
        if issubclass(w.category, OPTIMIZER_WARNINGS):
            optimizer.append(w)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


def fit_outcome_model(table: pd.DataFrame, outcome: str, feature_set: str, model_kind: str | None = None,
                      **options: Any) -> FitResult:
    """`_fit_outcome_model` with the optimizer's warnings counted into the metrics instead of printed.

    A small study (the 60-patient demo, one center's data) makes many of the hundreds of refits of
    a bootstrap or cross-validation separate or stop short of convergence; one warning line each
    would drown the summary. Their count, and the events per variable that explains them, are
    what a statistician needs to judge the fit, so they are recorded with it.
    """
    with optimizer_warnings_counted() as optimizer:
        result = _fit_outcome_model(table, outcome, feature_set, model_kind, **options)
    result.metrics["optimizer_warnings"] = len(optimizer)
    if outcome == "gos":
        # The rule counts the rarer outcome of a binary or survival model; an ordinal model on five
        # categories has no such single count, so no caution is derived from the deaths alone.
        return result
    result.metrics["events_per_variable"] = result.n_events / max(1, len(result.variables))
    if result.metrics["events_per_variable"] < MIN_EVENTS_PER_VARIABLE:
        result.extra["caution"] = (
            f"{result.n_events} events for {len(result.variables)} terms "
            f"({result.metrics['events_per_variable']:.1f} per variable, fewer than {MIN_EVENTS_PER_VARIABLE}): "
            "estimates are unstable and CIs wide" + (f"; {len(optimizer)} optimizer warnings (non-convergence or "
                                                     "separation) in the refits" if optimizer else ""))
    return result


@single_threaded_blas
def _fit_outcome_model(table: pd.DataFrame, outcome: str, feature_set: str, model_kind: str | None = None,
                       cv: str | None = "kfold", imputation: str = "mice", m: int = 5, n_splits: int = 5,
                       n_repeats: int = 2, n_boot: int = 200, seed: int = 0,
                       age_spline_knots: int | None = None, tables: list[pd.DataFrame] | None = None) -> FitResult:
    """Fit one outcome model on the analysis table and validate it.

    Binary outcomes: coefficients pooled over the m imputations; apparent metrics, bootstrap
    (n_boot) AUC CI and Harrell optimism-corrected AUC, and cross-validated metrics (`cv` kfold =
    repeated stratified k-fold, center = leave-one-center-out) on the first imputed data set.
    GOS (ordinal) and survival (Cox) report the AUCs of death / unfavourable or Harrell's C.
    `tables` may pass already imputed data sets (shared between models of the same outcome).
    """
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome must be one of {OUTCOMES}, got {outcome!r}")
    model_kind = model_kind or MODEL_KINDS[outcome][0]
    terms = terms_of(feature_set)
    make = model_factory(outcome, model_kind, terms, age_spline_knots)
    outcome_cols = {"mortality": ["died"], "unfavourable": ["unfavourable"], "gos": ["gos_6m"],
                    "survival": ["days_to_death_or_censor", "died"]}[outcome]
    data = tables if tables is not None else analysis_tables(table, outcome_cols, terms, imputation, m, seed)
    if not len(data[0]):
        raise ValueError(f"no patients with {outcome_cols} and {imputation} predictors to fit {outcome}")
    fits = [make().fit(d) for d in data]
    model = fits[0]
    if isinstance(model, CoefficientModel) and len(fits) > 1:
        model = make().pool_from(fits)
    d0 = data[0]
    metrics: dict[str, Any] = {}
    curves: dict[str, pd.DataFrame] = {}
    extra: dict[str, Any] = {}
    n_events = int(d0[outcome_cols[-1] if outcome != "gos" else "died"].sum())
    if outcome in BINARY_COLUMN:
        y = d0[BINARY_COLUMN[outcome]].astype(float).to_numpy()
        p = model.predict_proba(d0)
        metrics.update(binary_metrics(y, p))
        boot = bootstrap_aucs(y, p, stratified_bootstrap_indices(y, n_boot, seed))
        metrics["auc_boot_lower"], metrics["auc_boot_upper"] = (float(v) for v in np.percentile(boot, [2.5, 97.5]))
        if model_kind != "boosting":
            # Refitting boosted trees n_boot times costs minutes; their validation is the CV below.
            optimism = bootstrap_optimism(make, d0, BINARY_COLUMN[outcome], n_boot, seed)
            metrics.update({k: v for k, v in optimism.items() if k != "apparent_auc"})
        curves["roc"] = roc_curve_data(y, p)
        curves["calibration"] = calibration_curve_data(y, p)
        if cv:
            oof = cross_validated_predictions(make, d0, BINARY_COLUMN[outcome], cv, n_splits,
                                              1 if cv == "center" else n_repeats, seed)
            metrics.update(cross_validated_metrics(y, oof, d0["center"] if cv == "center" else None))
            risk = oof.mean(axis=1).to_numpy()
            ok = np.isfinite(risk)
            curves["cv_calibration"] = calibration_curve_data(y[ok], risk[ok])
            curves["cv_roc"] = roc_curve_data(y[ok], risk[ok])
    elif outcome == "gos":
        for name, col, fn in (("death", "died", model.predict_death), ("unfavourable", "unfavourable",
                                                                          model.predict_unfavourable)):
            d = auc_delong(d0[col].astype(float), fn(d0))
            metrics[f"auc_{name}"], metrics[f"auc_{name}_lower"], metrics[f"auc_{name}_upper"] = (
                d["auc"], d["lower"], d["upper"])
        metrics["cutpoints"] = [float(c) for c in model.cutpoints_]
        if cv:
            metrics.update(_cv_ordinal(make, d0, cv, n_splits, n_repeats, seed))
    else:
        metrics["harrell_c"] = harrell_c(d0["days_to_death_or_censor"], d0["died"], model.risk_score(d0))
        ph = fits[0].proportional_hazards_test()
        extra["ph_test"] = ph
        metrics["ph_min_p"] = float(ph["p"].min())
        metrics["ph_global_p_holm"] = float(min(1.0, ph["p"].min() * len(ph)))
        if cv:
            metrics.update(_cv_cox(make, d0, cv, n_splits, n_repeats, seed))
    spec = {**fit_settings(outcome, feature_set, model_kind, cv, imputation, len(data) if imputation == "mice" else 1,
                           n_splits, n_repeats, n_boot, seed, age_spline_knots), "terms": terms}
    if isinstance(model, LogisticModel):
        spec["model"] = model.to_spec()
    estimation = getattr(model, "estimation_", None) or {}
    if estimation.get("method", "maximum likelihood") != "maximum likelihood":
        extra["estimation_note"] = (f"the maximum-likelihood fit does not exist on these data "
                                    f"({estimation.get('reason')}); coefficients are from a "
                                    f"{estimation['method']} fit (penalty {estimation.get('penalty')}), "
                                    "shrunk toward 0")
        metrics["estimation"] = estimation
    summary = model.summary if isinstance(model, CoefficientModel) else None
    if summary is not None and hasattr(model, "fmi_"):
        summary = summary.assign(fmi=model.fmi_)
    return FitResult(outcome=outcome, feature_set=feature_set, model_kind=model_kind, cv=cv, imputation=imputation,
                     model=model, summary=summary, metrics=metrics, curves=curves, n_patients=int(len(d0)),
                     n_events=n_events, variables=terms, data_hash=analysis_table_hash(table), spec=spec, extra=extra)


def _cv_refits(make, d0: pd.DataFrame, cv: str, n_splits: int, n_repeats: int, seed: int,  # noqa: ANN001
               predict) -> tuple[list[np.ndarray], list[dict]]:  # noqa: ANN001
    """Out-of-fold predictions `predict(model, test rows) -> {name: array}` of every CV refit, as
    {name: (n, repeats) array}, and the notes of refits that needed help or could not be estimated."""
    splits = cv_splits(d0, "died", cv, n_splits, 1 if cv == "center" else n_repeats, seed)
    n_rep = max(r for r, _, _ in splits) + 1
    out: dict[str, np.ndarray] = {}
    notes: list[dict] = []
    fold_in_repeat: dict[int, int] = {}
    for r, train, test in splits:
        k = fold_in_repeat[r] = fold_in_repeat.get(r, -1) + 1
        where = (f"held-out center {d0.iloc[test]['center'].iloc[0]}" if cv == "center"
                 else f"repeat {r + 1}, fold {k + 1} of {n_splits}")
        model, note = fit_fold(make, d0.iloc[train], where)
        if note:
            notes.append(note)
        if model is None:
            continue
        for name, values in predict(model, d0.iloc[test]).items():
            out.setdefault(name, np.full((len(d0), n_rep), np.nan))[test, r] = values
    return out, notes


def _mean_over_repeats(score, preds: np.ndarray) -> float:  # noqa: ANN001
    """Mean of `score(rows, predictions)` over the repeats, each on its rows with a prediction."""
    values = []
    for r in range(preds.shape[1]):
        ok = np.isfinite(preds[:, r])
        try:
            values.append(score(ok, preds[ok, r]))
        except ValueError:  # a repeat left with one outcome class
            continue
    return float(np.mean(values)) if values else float("nan")


def _cv_ordinal(make, d0: pd.DataFrame, cv: str, n_splits: int, n_repeats: int, seed: int) -> dict[str, Any]:  # noqa: ANN001
    def predict(model, test):  # noqa: ANN001, ANN202
        probs = model.predict_proba(test)
        return {"death": probs["gos_1"].to_numpy(),
                "unfavourable": probs[["gos_1", "gos_2", "gos_3"]].sum(axis=1).to_numpy()}

    preds, notes = _cv_refits(make, d0, cv, n_splits, n_repeats, seed, predict)
    if not preds:
        return fold_note_metrics(notes)
    died, unfav = d0["died"].to_numpy(float), d0["unfavourable"].to_numpy(float)
    return {"cv_auc_death": _mean_over_repeats(lambda ok, p: auc(died[ok], p), preds["death"]),
            "cv_auc_unfavourable": _mean_over_repeats(lambda ok, p: auc(unfav[ok], p), preds["unfavourable"]),
            **fold_note_metrics(notes)}


def _cv_cox(make, d0: pd.DataFrame, cv: str, n_splits: int, n_repeats: int, seed: int) -> dict[str, Any]:  # noqa: ANN001
    preds, notes = _cv_refits(make, d0, cv, n_splits, n_repeats, seed,
                              lambda model, test: {"risk": model.risk_score(test)})
    if not preds:
        return fold_note_metrics(notes)
    t, e = d0["days_to_death_or_censor"].to_numpy(float), d0["died"].to_numpy(float)
    return {"cv_harrell_c": _mean_over_repeats(lambda ok, p: harrell_c(t[ok], e[ok], p), preds["risk"]),
            **fold_note_metrics(notes)}


@single_threaded_blas
def compare_feature_sets(table: pd.DataFrame, outcomes: tuple[str, ...] = ("mortality", "unfavourable"),
                         base: str = "clinical", full: str = "clinical+imaging", cv: str = "kfold",
                         imputation: str = "mice", m: int = 5, n_splits: int = 5, n_repeats: int = 2,
                         n_boot: int = 200, seed: int = 0) -> tuple[pd.DataFrame, dict[str, dict[str, pd.DataFrame]]]:
    """Clinical-only vs clinical+imaging logistic models per binary outcome: LR test, CV AUCs, ΔAUC
    (bootstrap CI) and continuous NRI, on the first imputed data set (or the complete cases).
    Returns the table (one row per outcome) and cross-validated ROC curves for the plots."""
    rows, curves = [], {}
    for outcome in outcomes:
        col = BINARY_COLUMN[outcome]
        data = analysis_tables(table, [col], terms_of(full), imputation, 1, seed)[0]
        with optimizer_warnings_counted() as optimizer:
            res = compare_nested(model_factory(outcome, "logistic", terms_of(base)),
                                 model_factory(outcome, "logistic", terms_of(full)), data, col, cv, n_splits,
                                 n_repeats, n_boot, seed)
        res["optimizer_warnings"] = len(optimizer)
        y = res.pop("_y")
        curves[outcome] = {f"{base} (AUC {res['auc_base']:.3f})": roc_curve_data(y, res.pop("_oof_base")),
                           f"{full} (AUC {res['auc_full']:.3f})": roc_curve_data(y, res.pop("_oof_full"))}
        rows.append({"outcome": outcome, "base": base, "full": full, **res})
    return pd.DataFrame(rows), curves
