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

from prognosis.analysis_table import analysis_table_hash
from prognosis.assumptions import BRANT_NOT_ESTIMABLE, brant_test, nonlinearity_tests, pooled_over_imputations
from prognosis.centers import random_intercept_model
from prognosis.coefficients import CoefficientModel
from prognosis.cox import CoxModel
from prognosis.impact import impact_risk
from prognosis.imputation import (
    IMPUTED_COLUMNS,
    ImputationCache,
    complete_case_table,
    imputation_settings,
    multiply_imputed_tables,
)
from prognosis.imputation_diagnostics import imputation_diagnostics
from prognosis.logistic import LogisticModel
from prognosis.metrics import (
    auc,
    auc_delong,
    binary_metrics,
    bootstrap_aucs,
    calibration_curve_data,
    harrell_c,
    loess_calibration,
    roc_curve_data,
    stratified_bootstrap_indices,
)
from prognosis.ml_models import GradientBoostingModel, PenalizedLogisticModel
from prognosis.model_rows import has_admission_scan, imputed_columns, model_rows, rows_description
from prognosis.ordinal import OrdinalGOSModel
from prognosis.rubin import d2_pooled_chisq
from prognosis.sample_size import events_per_variable, riley_sample_size
from prognosis.terms import age_spline_knots, raw_columns_of, terms_of
from prognosis.threads import single_threaded_blas
from prognosis.validation import (
    bootstrap_optimism,
    compare_nested,
    cross_validated_metrics,
    cross_validated_predictions,
    cv_refit_predictions,
    d1_pooled_wald,
    fold_note_metrics,
    per_center_validation,
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
                    seed: int, imputations: ImputationCache | None = None) -> list[pd.DataFrame]:
    """The data sets a model is fitted on (`prognosis.model_rows`): m imputed tables, or the complete cases
    (a list of one)."""
    rows = model_rows(table, outcome_columns, terms)
    if imputation == "mice":
        return multiply_imputed_tables(rows, m=m, seed=seed, columns=imputed_columns(rows, terms),
                                       required=tuple(raw_columns_of(terms)), cache=imputations)
    if imputation == "complete-case":
        return [complete_case_table(rows, terms)]
    raise ValueError(f"imputation must be one of {IMPUTATIONS}, got {imputation!r}")


def impact_scoring_tables(table: pd.DataFrame, m: int, seed: int,
                          imputations: ImputationCache | None = None) -> dict[str, list[pd.DataFrame]]:
    """{outcome: m imputed tables} IMPACT's models are scored on (`impact.impact_validation_table`): the rows our
    clinical models use, every patient with the outcome whether scanned or not, since IMPACT's predictors are
    clinical with the CT classes (computed from the admission scan or taken from the record)."""
    terms = terms_of("clinical")
    return {o: analysis_tables(table, [c], terms, "mice", m, seed, imputations)
            for o, c in (("mortality", "died"), ("unfavourable", "unfavourable"))}


def imputer_for(terms: list[str], imputations: ImputationCache | None = None,  # noqa: ANN201
                columns: tuple[str, ...] | None = None):
    """The in-fold imputer of cross-validation and the bootstrap (`validation.Imputer`): the same
    chained-equations PMM as the fit, on the given rows, with the outcomes of rows not `known` hidden.
    `columns`: the variables the fit's imputation uses (`model_rows.imputed_columns` of all its rows).
    With `imputations`, a fold or replicate another model has already imputed is not imputed again."""
    required = tuple(raw_columns_of(terms))
    columns = columns if columns is not None else IMPUTED_COLUMNS

    def impute(rows: pd.DataFrame, known: np.ndarray, seed: int, m: int) -> list[pd.DataFrame]:
        return multiply_imputed_tables(rows, m=m, seed=seed, columns=columns, required=required, outcome_known=known,
                                       cache=imputations)

    return impute


def fit_settings(outcome: str, feature_set: str, model_kind: str | None, cv: str | None, imputation: str, m: int,
                 n_splits: int, n_repeats: int, n_boot: int, seed: int,
                 age_spline_knots: int | None, penalty: str = "auto") -> dict[str, Any]:
    """The settings that, with the data snapshot, determine a fit: stored in its spec, and what
    `prognosis fit` compares to recognise a fit already made (same data + same settings = same fit)."""
    return {"outcome": outcome, "model_kind": model_kind or MODEL_KINDS[outcome][0], "feature_set": feature_set,
            "cv": cv, "imputation": imputation, "m": m if imputation == "mice" else None, "n_splits": n_splits,
            "n_repeats": n_repeats, "n_boot": n_boot, "seed": seed, "age_spline_knots": age_spline_knots,
            "penalty": penalty, "validate_definitions": "rms"}


def fixed_spline_knots(table: pd.DataFrame, outcome_columns: list[str], terms: list[str], imputation: str,
                       n_knots: int | None) -> list[float] | None:
    """The age spline's knots, placed once at Harrell's quantiles of the observed ages of the rows
    with the outcome (complete cases: of those rows), and used by every imputed data set and every
    refit, so that the m coefficient vectors Rubin's rules average are of one basis."""
    if not n_knots or "age" not in terms:
        return None
    rows = model_rows(table, outcome_columns, terms)
    if imputation == "complete-case":
        rows = complete_case_table(rows, terms)
    age = rows["age"].dropna()
    if age.nunique() < n_knots:
        raise ValueError(f"age spline: {age.nunique()} distinct observed ages cannot place {n_knots} knots; "
                         "use fewer knots (--age-spline 3) or no spline")
    return age_spline_knots(age, n_knots)


def model_factory(outcome: str, model_kind: str, terms: list[str],  # noqa: ANN201
                  age_spline_knots: int | list[float] | None = None, penalty: str | float | None = None):
    """A zero-argument constructor of the unfitted model (what cross-validation and bootstrap call).
    `age_spline_knots`: a number of knots (placed on each fit's data) or the knots themselves; `penalty`:
    see `LogisticModel` (logistic models only)."""
    if model_kind not in MODEL_KINDS.get(outcome, ()):
        raise ValueError(f"model kind {model_kind!r} does not fit outcome {outcome!r}; "
                         f"choose from {MODEL_KINDS.get(outcome, ())} (outcomes: {OUTCOMES})")
    if outcome in BINARY_COLUMN:
        col = BINARY_COLUMN[outcome]
        if model_kind == "logistic":
            return partial(LogisticModel, terms, col, age_spline_knots, penalty=penalty)
        if model_kind == "penalized":
            return partial(PenalizedLogisticModel, terms, col)
        return partial(GradientBoostingModel, terms, col)
    if outcome == "gos":
        return partial(OrdinalGOSModel, terms, "gos_6m", age_spline_knots)
    return partial(CoxModel, terms, "days_to_death_or_censor", "died", age_spline_knots)


# Events per variable below which logistic estimates are unstable (Peduzzi et al., J Clin Epidemiol 1996).
MIN_EVENTS_PER_VARIABLE = 10
PENALTIES = ("auto", "none", "ridge")


def n_parameters(terms: list[str], age_spline_knots: int | list[float] | None = None) -> int:
    """Regression parameters of a model on `terms` besides the intercept: one per term, and the extra
    columns of a restricted cubic spline of age (knots - 2; the knots given as a number or as their values)."""
    knots = len(age_spline_knots) if isinstance(age_spline_knots, list | tuple) else age_spline_knots
    return len(terms) + (knots - 2 if knots and "age" in terms else 0)


def penalty_decision(d: pd.DataFrame, outcome_column: str, n_params: int, penalty: str) -> dict[str, Any]:
    """Maximum likelihood or ridge for a binary logistic model, and why. `auto` penalizes when the
    sample falls short of Riley's criteria (anticipated R² 15 % of its maximum, their default before
    any fit) or has fewer than 10 patients of the smaller outcome class per parameter: the
    pre-specified alternative to a model too big for its data (Riley et al., BMJ 2020)."""
    if penalty not in PENALTIES:
        raise ValueError(f"penalty must be one of {PENALTIES}, got {penalty!r}")
    y = d[outcome_column].astype(float).to_numpy()
    prevalence = float(np.clip(y.mean(), 1e-6, 1 - 1e-6))
    max_r2 = 1 - np.exp(2 * (prevalence * np.log(prevalence) + (1 - prevalence) * np.log(1 - prevalence)))
    riley = riley_sample_size(n_params, prevalence, 0.15 * max_r2)
    epp = events_per_variable(len(y), int(y.sum()), n_params)["events_per_variable"]
    short = len(y) < riley["n_required"] or epp < MIN_EVENTS_PER_VARIABLE
    penalized = penalty == "ridge" or (penalty == "auto" and short)
    why = (f"{len(y):,} patients and {epp:.1f} of the smaller outcome class per parameter ({n_params} parameters) "
           f"against Riley's {riley['n_required']:,} patients (anticipated R² 15 % of its maximum) and "
           f"{MIN_EVENTS_PER_VARIABLE} per parameter")
    method = ("ridge penalized likelihood, penalty chosen by 5-fold cross-validation on each imputed data set "
              "(the median held fixed in the validation refits)" if penalized else "maximum likelihood")
    reason = (f"{method}: requested" if penalty != "auto" else
              f"{method}: {why}, {'short of' if short else 'meeting'} them")
    return {"penalized": penalized, "method": method, "reason": reason, "riley_a_priori": riley,
            "events_per_parameter": epp}


def unusable_reason(metrics: dict[str, Any]) -> str | None:
    """Why a binary model's risks must not be given to individual patients, or None: a bootstrap-corrected
    calibration slope (the uniform shrinkage factor) at or below 0 says that, on new patients of this
    study, its linear predictor carries no information or ranks them the wrong way round; no shrunken
    version of it exists (multiplying every coefficient by a factor <= 0 leaves the intercept alone or
    reverses the model)."""
    slope = (metrics.get("validate") or {}).get("calibration_slope", {}).get("corrected")
    factor = metrics.get("shrinkage")
    value = slope if isinstance(slope, int | float) else factor
    if isinstance(value, int | float) and value <= 0:
        return (f"its bootstrap-corrected calibration slope (shrinkage factor) is {value:.2f}, at or below 0: "
                "on new patients its predictions carry no information about the outcome or point the wrong "
                "way; fit a smaller or penalized model on more patients")
    return None


OVER_SHRUNK_SLOPE = 1.2  # a corrected calibration slope above it: risks well less extreme than the outcomes
DISAGREEING_CV_SLOPE = 0.8  # a cross-validated slope below it beside an over-shrunk bootstrap one: no consensus


def calibration_caution(metrics: dict[str, Any]) -> str | None:
    """What the validated calibration slopes say that the shrinkage factor shown does not, or None.

    The shrinkage factor is the bootstrap-corrected calibration slope capped at 1: a model whose penalty shrank
    its coefficients more than new patients of the study support has a corrected slope above 1, shown as a
    factor of 1, and nothing else on the summary says its risks are pulled toward the average. When the
    cross-validated slope of the same fit lies well below 1 (held-out risks too extreme) the two validations
    point opposite ways: the sample is too small to say how far the model's risks hold."""
    slope = (metrics.get("validate") or {}).get("calibration_slope", {}).get("corrected")
    if not isinstance(slope, int | float) or not np.isfinite(slope) or slope <= OVER_SHRUNK_SLOPE:
        return None
    text = (f"Its bootstrap-corrected calibration slope is {slope:.2f}, above 1: on new patients of this study its "
            f"risks are less extreme than the outcomes (its coefficients about {slope:.1f} times too small), and "
            "the shrinkage factor, capped at 1, does not enlarge them")
    cv_slope = metrics.get("cv_calibration_slope")
    if isinstance(cv_slope, int | float) and np.isfinite(cv_slope) and cv_slope < DISAGREEING_CV_SLOPE:
        held_out = ("at or below 0 (held-out risks unrelated to the outcomes, or against them)" if cv_slope <= 0
                    else "below 1 (held-out risks more extreme than the outcomes)")
        text += (f"; its cross-validated calibration slope is {cv_slope:.2f}, {held_out}: the two validations "
                 "disagree, so this sample cannot tell how far its risks hold")
    return text


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
    # EPV counts the smaller outcome class (the survivors, when most patients die).
    epv = events_per_variable(result.n_patients, result.n_events,
                              n_parameters(result.variables, result.spec.get("age_spline_knots")))
    result.metrics["events_per_variable"] = epv["events_per_variable"]
    result.metrics["smaller_class"] = epv["smaller_class"]
    if result.metrics["events_per_variable"] < MIN_EVENTS_PER_VARIABLE:
        riley = result.metrics.get("riley")
        result.extra["caution"] = (
            f"{epv['smaller_class']} patients in the smaller outcome class for "
            f"{n_parameters(result.variables, result.spec.get('age_spline_knots'))} parameters "
            f"({result.metrics['events_per_variable']:.1f} per variable, fewer than {MIN_EVENTS_PER_VARIABLE}): "
            "estimates are unstable and CIs wide"
            + (f"; Riley's criteria ask for at least {riley['n_required']} patients "
               f"({riley['events_required']} events) for this model" if riley else "")
            + (f"; {len(optimizer)} optimizer warnings (non-convergence or separation) in the refits"
               if optimizer else "")
            + ("; fitted by ridge penalized likelihood, its penalty chosen by cross-validation, which pulls the "
               "coefficients toward 0" if (result.metrics.get("estimation") or {}).get("penalty_chosen_by") == "cv"
               else ""))
    return result


@single_threaded_blas
def _fit_outcome_model(table: pd.DataFrame, outcome: str, feature_set: str, model_kind: str | None = None,
                       cv: str | None = "kfold", imputation: str = "mice", m: int = 5, n_splits: int = 5,
                       n_repeats: int = 2, n_boot: int = 200, seed: int = 0,
                       age_spline_knots: int | None = None, tables: list[pd.DataFrame] | None = None,
                       imputations: ImputationCache | None = None, penalty: str = "auto") -> FitResult:
    """Fit one outcome model on the analysis table and validate it.

    Binary outcomes: coefficients pooled over the m imputations; apparent metrics, bootstrap
    (n_boot) AUC CI and Harrell optimism-corrected AUC, and cross-validated metrics (`cv` kfold =
    repeated stratified k-fold, center = leave-one-center-out) on the first imputed data set.
    GOS (ordinal) and survival (Cox) report the AUCs of death / unfavourable or Harrell's C.
    `tables` may pass already imputed data sets; `imputations` (an `ImputationCache` over this table)
    shares the imputed data sets, CV folds and bootstrap replicates between the models of a study
    that impute the same rows, with the same results as without it.
    """
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome must be one of {OUTCOMES}, got {outcome!r}")
    model_kind = model_kind or MODEL_KINDS[outcome][0]
    terms = terms_of(feature_set)
    outcome_cols = {"mortality": ["died"], "unfavourable": ["unfavourable"], "gos": ["gos_6m"],
                    "survival": ["days_to_death_or_censor", "died"]}[outcome]
    knots = fixed_spline_knots(table, outcome_cols, terms, imputation, age_spline_knots)
    data = tables if tables is not None else analysis_tables(table, outcome_cols, terms, imputation, m, seed,
                                                             imputations)
    if not len(data[0]):
        raise ValueError(f"no patients with {outcome_cols} and {imputation} predictors to fit {outcome}")
    decision = None
    if outcome in BINARY_COLUMN and model_kind == "logistic":
        decision = penalty_decision(data[0], BINARY_COLUMN[outcome], n_parameters(terms, age_spline_knots), penalty)
    make = model_factory(outcome, model_kind, terms, knots,
                         penalty="cv" if decision and decision["penalized"] else None)
    # Validation repeats the whole model building, imputation included, inside each fold and each
    # bootstrap replicate: it starts from the raw rows (with their gaps) and the in-fold imputer.
    if imputation == "mice":
        raw = model_rows(table, outcome_cols, terms)
        impute = imputer_for(terms, imputations, imputed_columns(raw, terms))
    else:
        raw, impute = data[0], None
    fits = [make().fit(d) for d in data]
    model = fits[0]
    if isinstance(model, CoefficientModel) and len(fits) > 1:
        model = make().pool_from(fits)
    d0 = data[0]
    metrics: dict[str, Any] = {}
    if decision:
        metrics["estimation_choice"] = {k: v for k, v in decision.items() if k != "riley_a_priori"}
        metrics["riley_a_priori"] = decision["riley_a_priori"]
    curves: dict[str, pd.DataFrame] = {}
    if imputation == "mice" and tables is None:  # mice's trace and observed-against-imputed plots
        curves.update(imputation_diagnostics(raw, len(data), seed, tuple(raw_columns_of(terms)), imputations,
                                             columns=imputed_columns(raw, terms)))
    extra: dict[str, Any] = {}
    n_events = int(d0[outcome_cols[-1] if outcome != "gos" else "died"].sum())
    m_cv = len(data)
    if outcome in BINARY_COLUMN:
        col = BINARY_COLUMN[outcome]
        y = d0[col].astype(float).to_numpy()
        p = model.predict_proba(d0)
        # Apparent performance of the pooled model, averaged over the m completed data sets.
        apparent = pd.DataFrame([binary_metrics(d[col].astype(float), model.predict_proba(d)) for d in data]).mean()
        metrics.update({k: float(v) for k, v in apparent.items()})
        boot = bootstrap_aucs(y, p, stratified_bootstrap_indices(y, n_boot, seed))
        metrics["auc_boot_lower"], metrics["auc_boot_upper"] = (float(v) for v in np.percentile(boot, [2.5, 97.5]))
        if model_kind != "boosting":
            # Refitting boosted trees n_boot times costs minutes; their validation is the CV below.
            optimism = bootstrap_optimism(make, raw, col, n_boot, seed, impute=impute, originals=data, model=model)
            if "calibrate" in optimism:
                curves["calibrate"] = optimism.pop("calibrate")
            metrics.update({k: v for k, v in optimism.items() if k != "apparent_auc"})
        curves["roc"] = roc_curve_data(y, p)
        curves["calibration"] = calibration_curve_data(y, p)
        if cv:
            oof = cross_validated_predictions(make, raw, col, cv, n_splits, n_repeats, seed, impute=impute, m=m_cv)
            y_raw = raw[col].astype(float).to_numpy()
            metrics.update(cross_validated_metrics(y_raw, oof, raw["center"] if cv == "center" else None))
            risk = oof.mean(axis=1).to_numpy()
            ok = np.isfinite(risk)
            curves["cv_calibration"] = calibration_curve_data(y_raw[ok], risk[ok])
            curves["cv_calibration_smooth"] = loess_calibration(y_raw[ok], risk[ok], n_boot=50, seed=seed)
            curves["cv_roc"] = roc_curve_data(y_raw[ok], risk[ok])
            curves["cv_risk"] = pd.DataFrame({"patient_id": raw["patient_id"].astype(str).to_numpy(),
                                              "center": raw["center"].astype(str).to_numpy(),
                                              "outcome": y_raw, "cv_risk": risk})
            if cv == "center":
                centers, meta = per_center_validation(y_raw, risk, raw["center"].to_numpy())
                curves["per_center"] = centers
                metrics["center_meta"] = meta
                if isinstance(model, LogisticModel) and d0["center"].nunique() >= 3:
                    try:
                        metrics["random_intercept"] = random_intercept_model(data, terms, col, model.params_)
                    except (ValueError, np.linalg.LinAlgError) as exc:
                        extra["random_intercept_note"] = f"random-intercept model not estimable ({exc})"
        calibration = calibration_caution(metrics)
        if calibration:
            extra["calibration_caution"] = calibration
        reason = unusable_reason(metrics)
        if reason:
            metrics["not_usable_for_individual_risks"] = reason
        elif isinstance(model, LogisticModel) and "shrinkage" in metrics:
            extra["shrunk_model"] = model.shrunk(metrics["shrinkage"], data)
        if isinstance(model, LogisticModel):
            extra["nonlinearity"] = pooled_over_imputations(data, lambda d: nonlinearity_tests(d, terms, col))
            validated_r2 = metrics.get("validate", {}).get("r2_nagelkerke", {}).get("corrected")
            prevalence = float(y.mean())
            max_r2 = 1 - np.exp(2 * (prevalence * np.log(prevalence) + (1 - prevalence) * np.log(1 - prevalence)))
            # Riley's anticipated R²: the bootstrap-corrected one, else 15 % of the maximum (their default).
            r2_cs = (validated_r2 * max_r2 if validated_r2 and validated_r2 > 0 else 0.15 * max_r2)
            metrics["riley"] = riley_sample_size(len(model.params_) - 1, prevalence, r2_cs)
    elif outcome == "gos":
        for name, col, fn in (("death", "died", model.predict_death), ("unfavourable", "unfavourable",
                                                                          model.predict_unfavourable)):
            d = auc_delong(d0[col].astype(float), fn(d0))
            metrics[f"auc_{name}"], metrics[f"auc_{name}_lower"], metrics[f"auc_{name}_upper"] = (
                d["auc"], d["lower"], d["upper"])
        metrics["cutpoints"] = [float(c) for c in model.cutpoints_]
        metrics["cutpoint_table"] = model.cutpoint_table.to_dict("records")
        metrics["cutpoints_by_imputation"] = [[float(c) for c in f.cutpoints_] for f in fits]
        try:
            extra["brant"] = pooled_over_imputations(data, lambda d: brant_test(d, terms))
            metrics["brant_omnibus_p"] = float(extra["brant"].iloc[0]["p"])
        except (np.linalg.LinAlgError, ValueError) as exc:
            extra["brant_note"] = f"{BRANT_NOT_ESTIMABLE} ({exc})"
        if cv:
            # Every fold imputed m times and evaluated on each, as for the binary models (Wood et al. 2015).
            metrics.update(_cv_ordinal(make, raw, cv, n_splits, n_repeats, seed, impute, m_cv))
    else:
        metrics["harrell_c"] = harrell_c(d0["days_to_death_or_censor"], d0["died"], model.risk_score(d0))
        per_term = [f.proportional_hazards_test() for f in fits]
        # D2 pools the m chi-squares of each term on its df into an F statistic (reported per df).
        pooled_terms = {term: d2_pooled_chisq([t.loc[term, "test_statistic"] for t in per_term],
                                              int(per_term[0].loc[term, "df"])) for term in per_term[0].index}
        ph = pd.DataFrame({"test_statistic": [d["statistic"] for d in pooled_terms.values()],
                           "df": [d["df1"] for d in pooled_terms.values()],
                           "p": [d["p"] for d in pooled_terms.values()]}, index=per_term[0].index)
        extra["ph_test"] = ph
        global_tests = [f.global_ph_test() for f in fits]
        glob = d2_pooled_chisq([g["statistic"] for g in global_tests], global_tests[0]["df"])
        metrics["ph_global_p"] = glob["p"]
        metrics["ph_global_statistic"] = glob["statistic"]
        metrics["ph_min_p"] = float(ph["p"].min())
        if glob["p"] < 0.05:
            worst = ph["p"].idxmin()
            extra["ph_caution"] = (
                f"proportional hazards doubtful (Grambsch-Therneau global p = {glob['p']:.3g}; strongest for "
                f"{worst}, p = {ph.loc[worst, 'p']:.3g}): its hazard ratio is an average over follow-up. Remedy: "
                f"stratify on {worst} (if categorical) or add a {worst} x log(time) interaction; the 6-month "
                "mortality logistic model does not assume proportional hazards.")
        if cv:
            # Every fold evaluated on all m in-fold imputations, as the binary and ordinal models are
            # (validation pools over the m data sets); m lifelines refits per fold cost
            # about 10 s of bench/prognosis_bench.py's CPU time.
            metrics.update(_cv_cox(make, raw, cv, n_splits, n_repeats, seed, impute, m_cv))
    spec = {**fit_settings(outcome, feature_set, model_kind, cv, imputation, len(data) if imputation == "mice" else 1,
                           n_splits, n_repeats, n_boot, seed, age_spline_knots, penalty), "terms": terms}
    n_without_scan = int((~has_admission_scan(d0)).sum())
    spec["rows"] = rows_description(terms, int(len(d0)), n_without_scan)
    spec["n_without_scan"] = n_without_scan
    spec["provenance"] = provenance()
    if imputation == "mice":
        spec["imputation_settings"] = imputation_settings(len(data), seed)
    if hasattr(model, "to_spec"):
        spec["model"] = model.to_spec()
    if "shrunk_model" in extra:
        spec["model_shrunk"] = extra["shrunk_model"].to_spec()
        spec["model_shrunk"]["shrinkage"] = metrics["shrinkage"]
    estimation = getattr(model, "estimation_", None) or {}
    if estimation.get("penalty_chosen_by") == "cv":
        metrics["estimation"] = estimation
    elif estimation.get("method") == "firth":
        where = (f" on imputed data set(s) {', '.join(map(str, estimation['data_sets']))} of "
                 f"{estimation['n_data_sets']}" if estimation.get("data_sets") else "")
        terms = ", ".join(estimation.get("terms") or []) or "the terms together"
        extra["estimation_note"] = (f"the outcome is separated ({terms}){where}: the maximum-likelihood estimate is "
                                    "infinite there, so those fits used Firth's penalized likelihood (Jeffreys "
                                    "prior), finite and less biased; estimates pooled by Rubin's rules and "
                                    "validated with Firth refits where a refit separates")
        metrics["estimation"] = estimation
    elif estimation.get("method", "maximum likelihood") != "maximum likelihood":
        extra["estimation_note"] = (f"the maximum-likelihood fit does not exist on these data "
                                    f"({estimation.get('reason')}); coefficients are from a "
                                    f"{estimation['method']} fit (penalty {estimation.get('penalty')}), "
                                    "shrunk toward 0")
        metrics["estimation"] = estimation
    summary = model.summary if isinstance(model, CoefficientModel) else None
    if summary is not None and hasattr(model, "fmi_"):
        # mice's per-term diagnostics of the pooling: lambda, riv and FMI (van Buuren 2018, 2.3.5-2.3.6).
        summary = summary.assign(fmi=model.fmi_, riv=getattr(model, "riv_", np.nan),
                                 **{"lambda": getattr(model, "lambda_", np.nan)})
    return FitResult(outcome=outcome, feature_set=feature_set, model_kind=model_kind, cv=cv, imputation=imputation,
                     model=model, summary=summary, metrics=metrics, curves=curves, n_patients=int(len(d0)),
                     n_events=n_events, variables=terms, data_hash=analysis_table_hash(table), spec=spec, extra=extra)


def provenance() -> dict[str, Any]:
    """What made a fit, for its record: ctstudy version and git commit, Python and package versions."""
    import platform
    import subprocess
    from importlib import metadata
    from pathlib import Path

    def version(name: str) -> str | None:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent, capture_output=True,
                                text=True, timeout=5, check=False).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {"ctstudy": version("ctstudy"), "git_commit": commit, "python": platform.python_version(),
            "packages": {n: version(n) for n in ("numpy", "pandas", "scipy", "statsmodels", "scikit-learn",
                                                  "lifelines")}}


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


def _cv_ordinal(make, d0: pd.DataFrame, cv: str, n_splits: int, n_repeats: int, seed: int,  # noqa: ANN001
                impute=None, m: int = 1) -> dict[str, Any]:  # noqa: ANN001
    def predict(model, test):  # noqa: ANN001, ANN202
        probs = model.predict_proba(test)
        return {"death": probs["gos_1"].to_numpy(),
                "unfavourable": probs[["gos_1", "gos_2", "gos_3"]].sum(axis=1).to_numpy()}

    res = cv_refit_predictions(make, d0, "died", predict, cv, n_splits, n_repeats, seed, impute=impute, m=m)
    if not res.values:
        return fold_note_metrics(res.notes)
    died, unfav = d0["died"].to_numpy(float), d0["unfavourable"].to_numpy(float)
    return {"cv_auc_death": _mean_over_repeats(lambda ok, p: auc(died[ok], p), res.values["death"]),
            "cv_auc_unfavourable": _mean_over_repeats(lambda ok, p: auc(unfav[ok], p), res.values["unfavourable"]),
            **fold_note_metrics(res.notes)}


def _cv_cox(make, d0: pd.DataFrame, cv: str, n_splits: int, n_repeats: int, seed: int,  # noqa: ANN001
            impute=None, m: int = 1) -> dict[str, Any]:  # noqa: ANN001
    res = cv_refit_predictions(make, d0, "died", lambda model, test: {"risk": model.risk_score(test)}, cv, n_splits,
                               n_repeats, seed, impute=impute, m=m)
    if not res.values:
        return fold_note_metrics(res.notes)
    t, e = d0["days_to_death_or_censor"].to_numpy(float), d0["died"].to_numpy(float)
    return {"cv_harrell_c": _mean_over_repeats(lambda ok, p: harrell_c(t[ok], e[ok], p), res.values["risk"]),
            **fold_note_metrics(res.notes)}


@single_threaded_blas
def compare_feature_sets(table: pd.DataFrame, outcomes: tuple[str, ...] = ("mortality", "unfavourable"),
                         base: str = "clinical", full: str = "clinical+imaging", cv: str = "kfold",
                         imputation: str = "mice", m: int = 5, n_splits: int = 5, n_repeats: int = 2,
                         n_boot: int = 200, seed: int = 0, imputations: ImputationCache | None = None
                         ) -> tuple[pd.DataFrame, dict[str, dict[str, pd.DataFrame]]]:
    """Clinical-only vs clinical+imaging logistic models per binary outcome, over all m imputations.

    The test that imaging adds: D1 (Li, Raghunathan & Rubin 1991), the multivariate Wald test of the
    imaging coefficients pooled over the m fits of the full model, with the range of the per-imputation
    likelihood-ratio statistics beside it. ΔAUC (bootstrap CI) and continuous NRI from out-of-fold
    risks with the imputation inside each fold, m times, averaged over repeats and imputations.
    Returns the table (one row per outcome) and cross-validated ROC curves for the plots. Both
    models are validated on the same imputed folds, imputed once (`imputations`, or a cache of its own).
    """
    imputations = imputations if imputations is not None else ImputationCache()
    rows, curves = [], {}
    extra_terms = [t for t in terms_of(full) if t not in terms_of(base)]
    for outcome in outcomes:
        col = BINARY_COLUMN[outcome]
        data = analysis_tables(table, [col], terms_of(full), imputation, m, seed, imputations)
        raw = model_rows(table, [col], terms_of(full)) if imputation == "mice" else data[0]
        impute = (imputer_for(terms_of(full), imputations, imputed_columns(raw, terms_of(full)))
                  if imputation == "mice" else None)
        make_b = model_factory(outcome, "logistic", terms_of(base))
        make_f = model_factory(outcome, "logistic", terms_of(full))
        with optimizer_warnings_counted() as optimizer:
            fits_b, fits_f = [make_b().fit(d) for d in data], [make_f().fit(d) for d in data]
            res = compare_nested(make_b, make_f, raw, col, cv, n_splits, n_repeats, n_boot, seed,
                                 impute=impute, m=len(data), originals=data)
        lr = [2 * (f.llf_ - b.llf_) for b, f in zip(fits_b, fits_f, strict=True)]
        res.update(d1_pooled_wald(np.stack([f.params_[extra_terms].to_numpy() for f in fits_f]),
                                  np.stack([f.cov_params_.loc[extra_terms, extra_terms].to_numpy() for f in fits_f])))
        res["lr_statistic_min"], res["lr_statistic_max"] = float(min(lr)), float(max(lr))
        res["m"] = len(data)
        res["optimizer_warnings"] = len(optimizer)
        y = res.pop("_y")
        oof_b, oof_f = res.pop("_oof_base"), res.pop("_oof_full")
        curves[outcome] = {f"{base} (AUC {res['auc_base']:.3f})": roc_curve_data(y, oof_b),
                           f"{full} (AUC {res['auc_full']:.3f})": roc_curve_data(y, oof_f)}
        risks = {"y": y, base: oof_b, full: oof_f}
        if imputation == "mice" and len(raw) == len(y):
            # IMPACT core+CT on the same completed rows (mean risk over the m), missing motor untestable.
            untestable = raw["gcs_motor"].isna().to_numpy()
            risks["IMPACT core+CT"] = np.nanmean([impact_risk(d, "core+ct", outcome, untestable).to_numpy()
                                                  for d in data], axis=0)
        curves[f"{outcome}_risks"] = risks
        rows.append({"outcome": outcome, "base": base, "full": full, **res})
    return pd.DataFrame(rows), curves
