"""Internal and internal-external validation: repeated stratified k-fold and leave-one-center-out
cross-validation, Harrell's bootstrap optimism correction, and the nested comparison of a base
model (clinical) with an extended one (clinical + imaging).

A model here is anything with `fit(df) -> self` and `predict_proba(df) -> array` (LogisticModel,
PenalizedLogisticModel, GradientBoostingModel); `make_model` builds a fresh unfitted one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

import numpy as np
import pandas as pd
from lifelines.exceptions import ConvergenceError
from scipy import stats
from sklearn.model_selection import LeaveOneGroupOut, RepeatedStratifiedKFold
from statsmodels.tools.sm_exceptions import PerfectSeparationError

from prognosis.calibrate import corrected_calibration_curve
from prognosis.metrics import (
    auc,
    auc_delong,
    binary_metrics,
    bootstrap_aucs,
    calibration_intercept_slope,
    net_reclassification,
    random_effects_meta,
    stratified_bootstrap_indices,
)
from prognosis.threads import single_threaded_blas
from prognosis.validate_indexes import INDEX_RANGES, VALIDATE_INDEXES, emax, validate_indexes

CV_KINDS = ("kfold", "center")


class BinaryModel(Protocol):
    def fit(self, df: pd.DataFrame) -> Any: ...
    def predict_proba(self, df: pd.DataFrame) -> np.ndarray: ...


def cv_splits(df: pd.DataFrame, outcome: str, cv: str = "kfold", n_splits: int = 5, n_repeats: int = 2,
              seed: int = 0, group_col: str = "center") -> list[tuple[int, np.ndarray, np.ndarray]]:
    """(repeat, train rows, test rows) positions: repeated stratified k-fold, or one fold per center."""
    if cv == "kfold":
        splitter = RepeatedStratifiedKFold(n_splits=n_splits, n_repeats=n_repeats, random_state=seed)
        return [(i // n_splits, tr, te) for i, (tr, te) in enumerate(splitter.split(df, df[outcome].astype(int)))]
    if cv == "center":
        groups = df[group_col].astype(str).to_numpy()
        if len(np.unique(groups)) < 2:
            raise ValueError(f"leave-one-center-out CV needs at least two centers in {group_col!r}")
        return [(0, tr, te) for tr, te in LeaveOneGroupOut().split(df, groups=groups)]
    raise ValueError(f"cv must be one of {CV_KINDS}, got {cv!r}")


# What a refit can raise when a fold's data cannot estimate the model: a single outcome class, a
# singular design or information matrix, a Cox fit that does not converge. Anything else is a bug.
NOT_ESTIMABLE_ERRORS: tuple[type[BaseException], ...] = (ValueError, np.linalg.LinAlgError, ConvergenceError)


def fit_fold(make_model: Callable[[], Any], train: pd.DataFrame, where: str) -> tuple[Any | None, dict | None]:
    """Fit one cross-validation (or bootstrap) refit: (model or None, note or None).

    A refit that needed the penalized fallback (a category absent from the fold, separation) is
    kept and noted with the terms concerned; one that cannot be estimated at all is noted as not
    estimable and returns None, so that its test rows are left out instead of ending the run.
    """
    try:
        model = make_model().fit(train)
    except NOT_ESTIMABLE_ERRORS as exc:
        return None, {"where": where, "n_train": int(len(train)), "status": "not estimable",
                      "reason": f"{type(exc).__name__}: {exc}"}
    estimation = getattr(model, "estimation_", None) or {}
    if estimation.get("penalty_chosen_by"):  # penalized by design, not a fallback
        return model, None
    if estimation.get("method", "maximum likelihood") != "maximum likelihood":
        return model, {"where": where, "n_train": int(len(train)), "status": f"{estimation['method']} refit",
                       "terms": list(estimation.get("terms", [])), "reason": estimation.get("reason", "")}
    return model, None


def fold_note_metrics(notes: list[dict], prefix: str = "cv") -> dict[str, Any]:
    """Counts and details of the refits that needed help, for the fit record."""
    return {f"{prefix}_refits_penalized": sum(n["status"] != "not estimable" for n in notes),
            f"{prefix}_folds_not_estimable": sum(n["status"] == "not estimable" for n in notes),
            f"{prefix}_refit_notes": notes}


# Imputes rows (a DataFrame with gaps) into m complete copies; the bool array marks the rows whose
# outcome the imputation may use (training rows), the int is the seed. prognosis.imputation's
# `multiply_imputed_tables` with those arguments bound.
Imputer = Callable[[pd.DataFrame, np.ndarray, int, int], list[pd.DataFrame]]


def fold_data(df: pd.DataFrame, train: np.ndarray, test: np.ndarray, impute: Imputer | None, m: int,
              seed: int) -> list[tuple[pd.DataFrame, pd.DataFrame]]:
    """(training rows, test rows) of one split, once per imputation: imputed together with the test
    rows' outcomes hidden from the imputation model, so a held-out patient's own outcome never
    informs their imputed predictors. Without `impute` (complete data), the rows as they are."""
    if impute is None:
        return [(df.iloc[train], df.iloc[test])]
    rows = pd.concat([df.iloc[train], df.iloc[test]], ignore_index=True)
    known = np.r_[np.ones(len(train), bool), np.zeros(len(test), bool)]
    tables = impute(rows, known, seed, m)
    return [(t.iloc[:len(train)], t.iloc[len(train):]) for t in tables]


class CVPredictions(NamedTuple):
    """Out-of-fold predictions by name, each (rows, n_repeats * m): column `repeat * m + imputation`,
    NaN where the refit could not be estimated; and the notes of refits that needed the penalized
    fallback or could not be estimated (`fit_fold`), naming the repeat and fold (or held-out center)
    and the imputation."""

    values: dict[str, np.ndarray]
    notes: list[dict]
    n_repeats: int
    m: int


@single_threaded_blas
def cv_refit_predictions(make_model: Callable[[], Any], df: pd.DataFrame, strata: str,
                         predict: Callable[[Any, pd.DataFrame], dict[str, np.ndarray]], cv: str = "kfold",
                         n_splits: int = 5, n_repeats: int = 2, seed: int = 0, group_col: str = "center",
                         impute: Imputer | None = None, m: int = 1) -> CVPredictions:
    """The cross-validation loop of every model kind (binary, ordinal, Cox): refit on each split's
    training rows (imputed inside the fold, m times, with `impute`; `fold_data`) and collect
    `predict(model, test rows) -> {name: values}` for the held-out rows.

    Splits are stratified on `strata` (k-fold) or by `group_col` (leave-one-center-out).
    """
    splits = cv_splits(df, strata, cv, n_splits, n_repeats, seed, group_col)
    n_rep = max(r for r, _, _ in splits) + 1
    m = m if impute is not None else 1
    out: dict[str, np.ndarray] = {}
    notes: list[dict] = []
    fold_in_repeat: dict[int, int] = {}
    for i, (r, train, test) in enumerate(splits):
        k = fold_in_repeat[r] = fold_in_repeat.get(r, -1) + 1
        where = (f"held-out center {df[group_col].iloc[test[0]]}" if cv == "center"
                 else f"repeat {r + 1}, fold {k + 1} of {n_splits}")
        for j, (tr, te) in enumerate(fold_data(df, train, test, impute, m, seed * 1000 + i)):
            model, note = fit_fold(make_model, tr, where + (f", imputation {j + 1}" if m > 1 else ""))
            if note:
                notes.append(note)
            if model is None:
                continue
            for name, values in predict(model, te).items():
                out.setdefault(name, np.full((len(df), n_rep * m), np.nan))[test, r * m + j] = values
    return CVPredictions(out, notes, n_rep, m)


def cross_validated_predictions(make_model: Callable[[], BinaryModel], df: pd.DataFrame, outcome: str,
                                cv: str = "kfold", n_splits: int = 5, n_repeats: int = 2, seed: int = 0,
                                group_col: str = "center", impute: Imputer | None = None,
                                m: int = 1) -> pd.DataFrame:
    """Out-of-fold predicted risks of a binary model: one column per repeat and imputation
    (`repeat_0_imp_0`...), rows as in df (`cv_refit_predictions`).

    With `impute`, df holds the raw rows (with gaps) and each fold is imputed m times inside the
    fold (`fold_data`); performance is then evaluated on each of the m completed data sets and
    averaged (Wood et al. 2015). Refits that needed the penalized fallback, or could not be
    estimated (their test rows stay NaN), are listed in `.attrs["refit_notes"]` with the repeat,
    fold and terms concerned.
    """
    res = cv_refit_predictions(make_model, df, outcome, lambda model, test: {"risk": model.predict_proba(test)},
                               cv, n_splits, n_repeats, seed, group_col, impute, m)
    columns = [f"repeat_{r}_imp_{j}" for r in range(res.n_repeats) for j in range(res.m)]
    risk = res.values.get("risk", np.full((len(df), len(columns)), np.nan))
    frame = pd.DataFrame(risk, index=df.index, columns=columns)
    frame.attrs["refit_notes"] = res.notes
    return frame


def cross_validated_metrics(y: np.ndarray | pd.Series, oof: pd.DataFrame, centers: pd.Series | None = None
                            ) -> dict[str, Any]:
    """CV metrics: per-repeat AUC / Brier / calibration averaged over repeats (with the AUC's spread),
    plus, for leave-one-center-out, the AUC within each held-out center of the risks averaged over the
    imputations (as `per_center_validation`)."""
    y = np.asarray(y, dtype=float)
    per = []
    for c in oof.columns:
        # Rows of a fold that could not be estimated have no prediction: the repeat is scored on the
        # others (and left out if too few remain to have both outcome classes).
        ok = oof[c].notna().to_numpy()
        if ok.any() and 0 < y[ok].sum() < ok.sum():
            per.append(binary_metrics(y[ok], oof[c].to_numpy()[ok]))
    if not per:
        raise ValueError("cross-validation: no fold could be estimated on these data "
                         f"({len(y)} patients, {int(y.sum())} events); fit with --cv none or add patients")
    frame = pd.DataFrame(per)
    out: dict[str, Any] = {f"cv_{k}": float(v) for k, v in frame.mean().items()}
    out["cv_auc_sd_repeats"] = float(frame["auc"].std(ddof=1)) if len(frame) > 1 else 0.0
    out["cv_repeats"] = len(frame)
    if centers is not None:
        # Each patient's out-of-fold risk averaged over repeats and imputations, as the per-center
        # table (`per_center_validation`) scores it: one definition of a center's AUC.
        c = np.asarray(centers).astype(str)
        risk = oof.mean(axis=1).to_numpy()
        out["cv_auc_by_center"] = {
            name: auc(y[c == name], risk[c == name])
            for name in np.unique(c)
            if 0 < y[c == name].sum() < (c == name).sum() and np.isfinite(risk[c == name]).all()
        }
    out.update(fold_note_metrics(list(oof.attrs.get("refit_notes", []))))
    return out


# A replicate's refit separates the outcome when it predicts some resampled patient's risk within
# this distance of 0 or 1 (a linear predictor beyond about ±18.4): the maximum-likelihood estimate
# does not exist and the coefficients run off toward infinity.
SEPARATION_RISK = 1e-8


@single_threaded_blas
def bootstrap_optimism(make_model: Callable[[], BinaryModel], df: pd.DataFrame, outcome: str, n_boot: int = 200,
                       seed: int = 0, impute: Imputer | None = None, originals: list[pd.DataFrame] | None = None,
                       model: BinaryModel | None = None) -> dict[str, Any]:
    """Harrell's bootstrap validation (Harrell, Lee & Mark, Stat Med 1996) with the indexes of rms
    `validate` as rms defines them (`prognosis.validate_indexes`): AUC, Nagelkerke R², intercept and
    slope (after recalibration on the test sample), Emax, D, U, Q, Brier score and g.

    Each replicate refits on a resample; optimism = mean(index on its resample - index on the
    original data). With `impute`, df holds the raw rows and each resample is imputed afresh before
    its refit (the imputation is part of the model building that the bootstrap repeats), and the
    original data are the m completed `originals`, used in turn; `model` is the fitted (pooled)
    model whose apparent performance is corrected. The corrected slope is the uniform shrinkage
    factor (van Houwelingen & le Cessie 1990). `calibrate` holds the optimism-corrected calibration
    curve from the same refits (`prognosis.calibrate`). A corrected index with a fixed range (AUC, R², Brier)
    is held inside it (`corrected_unbounded` keeps the raw difference). A replicate whose
    maximum-likelihood refit separates the outcome is refitted by Firth's penalized likelihood, as the
    fit itself is (`n_boot_penalized_refits`); replicates whose risks still reach 0 or 1 are counted
    (`n_boot_separated`) and kept, as rms keeps them.
    """
    originals = originals if originals is not None else [df]
    full = model if model is not None else make_model().fit(originals[0])
    y = originals[0][outcome].astype(float).to_numpy()
    apparent_rows = [validate_indexes(o[outcome].astype(float).to_numpy(), full.predict_proba(o), recalibrate=False)
                     for o in originals]
    apparent = {k: float(np.mean([a[k][0] for a in apparent_rows])) for k in VALIDATE_INDEXES}
    idx = stratified_bootstrap_indices(y, n_boot, seed)
    penalized_refits = 0
    if impute is None and hasattr(full, "bootstrap_risks"):
        p_boot, p_orig = full.bootstrap_risks(df, idx)
        penalized_refits = int(getattr(full, "bootstrap_firth_refits_", 0))
        y_orig = np.broadcast_to(y, p_orig.shape)
    else:
        p_orig, p_boot = np.full((n_boot, len(df)), np.nan), np.full((n_boot, len(df)), np.nan)
        y_orig = np.empty((n_boot, len(df)))
        keep = np.ones(n_boot, dtype=bool)
        for b in range(n_boot):
            sample = df.iloc[idx[b]].reset_index(drop=True)
            if impute is not None:
                sample = impute(sample, np.ones(len(sample), bool), seed * 100_003 + b, 1)[0]
            refit, note = fit_fold(make_model, sample, f"bootstrap replicate {b + 1}")
            if refit is None:
                keep[b] = False
                continue
            penalized_refits += note is not None
            original = originals[b % len(originals)]
            p_orig[b] = refit.predict_proba(original)
            y_orig[b] = original[outcome].astype(float).to_numpy()
            p_boot[b] = refit.predict_proba(sample)
        idx, p_orig, p_boot, y_orig = idx[keep], p_orig[keep], p_boot[keep], y_orig[keep]
    separated = (np.minimum(p_boot, 1 - p_boot) < SEPARATION_RISK).any(axis=1)
    on_boot = validate_indexes(y[idx], p_boot, recalibrate=False)
    on_orig = validate_indexes(y_orig, p_orig, recalibrate=True)
    table = {}
    for k in VALIDATE_INDEXES:
        optimism = float(np.nanmean(on_boot[k] - on_orig[k]))
        table[k] = bounded({"apparent": apparent[k], "optimism": optimism, "corrected": apparent[k] - optimism}, k)
    # rms's Emax row: 0 apparent, and the calibration error of the corrected intercept and slope.
    e = emax(table["calibration_intercept"]["corrected"], table["calibration_slope"]["corrected"])
    table["emax"] = {"apparent": 0.0, "optimism": e, "corrected": e}
    out: dict[str, Any] = {}
    with contextlib.suppress(ValueError):  # predictions with too few distinct values: no curve
        apparent_pairs = [(o[outcome].astype(float).to_numpy(), full.predict_proba(o)) for o in originals]
        out["calibrate"] = corrected_calibration_curve(apparent_pairs, y[idx], p_boot, y_orig, p_orig)
    return {**out, "apparent_auc": apparent["auc"], "optimism": table["auc"]["optimism"],
            "corrected_auc": table["auc"]["corrected"], "n_boot": int(len(idx)), "validate": table,
            "n_boot_separated": int(separated.sum()), "n_boot_penalized_refits": int(penalized_refits),
            "n_boot_not_estimable": int(n_boot - len(idx)),
            "shrinkage": float(min(1.0, table["calibration_slope"]["corrected"]))}


def bounded(row: dict[str, float], index: str) -> dict[str, Any]:
    """A validate row with its corrected value held inside the index's range (`INDEX_RANGES`)."""
    low, high = INDEX_RANGES.get(index, (-np.inf, np.inf))
    if low <= row["corrected"] <= high:
        return row
    return {**row, "corrected": float(np.clip(row["corrected"], low, high)), "corrected_unbounded": row["corrected"]}


def d1_pooled_wald(estimates: np.ndarray, covariances: np.ndarray) -> dict[str, float]:
    """Multivariate Wald test of k parameters = 0 pooled over m imputations: the D1 statistic of
    Li, Raghunathan & Rubin (JASA 1991), with its F reference distribution (van Buuren 2018, 5.3.1).
    With m = 1 it is the ordinary Wald chi-square."""
    q = np.asarray(estimates, dtype=float)
    u = np.asarray(covariances, dtype=float)
    m, k = q.shape
    q_bar, w = q.mean(0), u.mean(0)
    if m == 1:
        stat = float(q_bar @ np.linalg.solve(w, q_bar))
        return {"d1_statistic": stat / k, "d1_df1": k, "d1_df2": float("inf"), "d1_p": float(stats.chi2.sf(stat, k)),
                "d1_riv": 0.0, "m": 1}
    b = np.cov(q, rowvar=False, ddof=1).reshape(k, k)
    r1 = (1 + 1 / m) * np.trace(b @ np.linalg.inv(w)) / k
    d1 = float(q_bar @ np.linalg.solve(w, q_bar)) / (k * (1 + r1))
    t = k * (m - 1)
    v1 = 4 + (t - 4) * (1 + (1 - 2 / t) / r1) ** 2 if t > 4 else t * (1 + 1 / k) * (1 + 1 / r1) ** 2 / 2
    return {"d1_statistic": d1, "d1_df1": k, "d1_df2": float(v1), "d1_p": float(stats.f.sf(d1, k, v1)),
            "d1_riv": float(r1), "m": m}


def per_center_validation(y: np.ndarray, p: np.ndarray, centers: np.ndarray) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Internal-external validation per center (Steyerberg & Harrell, J Clin Epidemiol 2016): n, events,
    AUC with DeLong 95% CI, calibration intercept and slope of each held-out center, and their
    random-effects (DerSimonian-Laird) pooling with τ² and a 95% prediction interval. AUCs are pooled
    on the logit scale (delta-method variance) and back-transformed, with the Hartung-Knapp CI beside the
    normal one; calibration intercepts and slopes are pooled likewise (Hartung-Knapp CI)."""
    from scipy.special import expit as _expit

    y, p, c = np.asarray(y, float), np.asarray(p, float), np.asarray(centers).astype(str)
    rows = []
    for name in np.unique(c):
        sel = (c == name) & np.isfinite(p)
        yy, pp = y[sel], p[sel]
        row: dict[str, Any] = {"center": name, "n": int(sel.sum()), "events": int(yy.sum())}
        if 0 < yy.sum() < len(yy) and len(yy) >= 4:
            d = auc_delong(yy, pp)
            row.update(auc=d["auc"], auc_lower=d["lower"], auc_upper=d["upper"], auc_se=d["se"])
            # A tiny center whose recalibration fit fails: its intercept and slope are left blank.
            with contextlib.suppress(ValueError, np.linalg.LinAlgError, PerfectSeparationError):
                row.update(calibration_intercept_slope(yy, pp, with_se=True))
        rows.append(row)
    table = pd.DataFrame(rows)
    meta: dict[str, Any] = {}
    ok = table.dropna(subset=["auc"]) if "auc" in table else table.iloc[0:0]
    ok = ok[(ok["auc"] > 0) & (ok["auc"] < 1) & (ok["auc_se"] > 0)] if len(ok) else ok
    if len(ok) >= 2:
        a = ok["auc"].to_numpy()
        est, var = np.log(a / (1 - a)), (ok["auc_se"].to_numpy() / (a * (1 - a))) ** 2
        res = random_effects_meta(est, var)
        meta["auc"] = {"pooled": float(_expit(res["pooled"])), "lower": float(_expit(res["lower"])),
                       "upper": float(_expit(res["upper"])), "pi_lower": float(_expit(res["pi_lower"])),
                       "pi_upper": float(_expit(res["pi_upper"])), "tau2_logit": res["tau2"], "i2": res["i2"],
                       "k": res["k"]}
        hk = random_effects_meta(est, var, hartung_knapp=True)
        meta["auc"].update(hk_lower=float(_expit(hk["lower"])), hk_upper=float(_expit(hk["upper"])))
    # Calibration intercept and slope pooled across centers (random effects, Hartung-Knapp CI: few centers).
    for name in ("calibration_intercept", "calibration_slope"):
        if f"{name}_se" not in table:
            continue
        cal = table.dropna(subset=[name, f"{name}_se"])
        cal = cal[cal[f"{name}_se"] > 0]
        if len(cal) >= 2:
            res = random_effects_meta(cal[name].to_numpy(), cal[f"{name}_se"].to_numpy() ** 2, hartung_knapp=True)
            meta[name] = {k: res[k] for k in ("pooled", "se", "lower", "upper", "tau2", "i2", "pi_lower", "pi_upper",
                                              "k", "ci_method")}
    return table, meta


def likelihood_ratio_test(llf_base: float, llf_full: float, df_diff: int) -> dict[str, float]:
    """LR test of nested models fitted on the same rows."""
    stat = max(0.0, 2.0 * (llf_full - llf_base))
    return {"lr_statistic": stat, "lr_df": int(df_diff), "lr_p": float(stats.chi2.sf(stat, df_diff))}


@single_threaded_blas
def compare_nested(base: Callable[[], BinaryModel], full: Callable[[], BinaryModel], df: pd.DataFrame, outcome: str,
                   cv: str = "kfold", n_splits: int = 5, n_repeats: int = 2, n_boot: int = 200, seed: int = 0,
                   nri_cutoffs: tuple[float, ...] | None = None, impute: Imputer | None = None, m: int = 1,
                   originals: list[pd.DataFrame] | None = None) -> dict[str, Any]:
    """Does `full` add to `base`? LR test (apparent fits, same rows), cross-validated AUCs and their
    difference with a bootstrap 95% CI, and the NRI (continuous unless cutoffs are given).

    ΔAUC and NRI use each patient's out-of-fold risk averaged over the CV repeats, so that neither
    model is credited with its own optimism; the bootstrap resamples patients (stratified by outcome)
    and evaluates both models on the same resamples.
    """
    y = df[outcome].astype(float).to_numpy()
    first = originals[0] if originals else df
    fb, ff = base().fit(first), full().fit(first)
    out: dict[str, Any] = {"n": int(len(df)), "n_events": int(y.sum()), "cv": cv}
    if hasattr(fb, "llf_") and hasattr(ff, "llf_"):
        out.update(likelihood_ratio_test(fb.llf_, ff.llf_, len(ff.params_) - len(fb.params_)))
    cv_b = cross_validated_predictions(base, df, outcome, cv, n_splits, n_repeats, seed, impute=impute, m=m)
    cv_f = cross_validated_predictions(full, df, outcome, cv, n_splits, n_repeats, seed, impute=impute, m=m)
    oof_b, oof_f = cv_b.mean(axis=1).to_numpy(), cv_f.mean(axis=1).to_numpy()  # NaN-skipping mean
    out.update(fold_note_metrics(cv_b.attrs["refit_notes"] + cv_f.attrs["refit_notes"]))
    scored = np.isfinite(oof_b) & np.isfinite(oof_f)
    if not scored.all():
        # Patients whose every out-of-fold prediction failed (folds not estimable) are left out of
        # both models' comparison alike.
        y, oof_b, oof_f = y[scored], oof_b[scored], oof_f[scored]
        out["n_compared"] = int(scored.sum())
    idx = stratified_bootstrap_indices(y, n_boot, seed)
    auc_b, auc_f = bootstrap_aucs(y, oof_b, idx), bootstrap_aucs(y, oof_f, idx)
    out["auc_base"], out["auc_full"] = auc(y, oof_b), auc(y, oof_f)
    out["delta_auc"] = out["auc_full"] - out["auc_base"]
    out["delta_auc_lower"], out["delta_auc_upper"] = (float(v) for v in np.percentile(auc_f - auc_b, [2.5, 97.5]))
    y_all = first[outcome].astype(float).to_numpy()
    out["apparent_auc_base"] = auc(y_all, fb.predict_proba(first))
    out["apparent_auc_full"] = auc(y_all, ff.predict_proba(first))
    out.update(net_reclassification(y, oof_b, oof_f, cutoffs=nri_cutoffs, n_boot=n_boot, seed=seed))
    out["_y"], out["_oof_base"], out["_oof_full"] = y, oof_b, oof_f
    return out
