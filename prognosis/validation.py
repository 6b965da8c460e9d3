"""Internal and internal-external validation: repeated stratified k-fold and leave-one-center-out
cross-validation, Harrell's bootstrap optimism correction, and the nested comparison of a base
model (clinical) with an extended one (clinical + imaging).

A model here is anything with `fit(df) -> self` and `predict_proba(df) -> array` (LogisticModel,
PenalizedLogisticModel, GradientBoostingModel); `make_model` builds a fresh unfitted one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
import pandas as pd
from lifelines.exceptions import ConvergenceError
from scipy import stats
from sklearn.model_selection import LeaveOneGroupOut, RepeatedStratifiedKFold

from prognosis.metrics import (
    auc,
    binary_metrics,
    bootstrap_aucs,
    net_reclassification,
    rowwise_aucs,
    stratified_bootstrap_indices,
)
from prognosis.threads import single_threaded_blas

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
    if estimation.get("method", "maximum likelihood") != "maximum likelihood":
        return model, {"where": where, "n_train": int(len(train)), "status": f"{estimation['method']} refit",
                       "terms": list(estimation.get("terms", [])), "reason": estimation.get("reason", "")}
    return model, None


def fold_note_metrics(notes: list[dict], prefix: str = "cv") -> dict[str, Any]:
    """Counts and details of the refits that needed help, for the fit record."""
    return {f"{prefix}_refits_penalized": sum(n["status"] != "not estimable" for n in notes),
            f"{prefix}_folds_not_estimable": sum(n["status"] == "not estimable" for n in notes),
            f"{prefix}_refit_notes": notes}


@single_threaded_blas
def cross_validated_predictions(make_model: Callable[[], BinaryModel], df: pd.DataFrame, outcome: str,
                                cv: str = "kfold", n_splits: int = 5, n_repeats: int = 2, seed: int = 0,
                                group_col: str = "center") -> pd.DataFrame:
    """Out-of-fold predicted risks: one column per repeat (`repeat_0`...), rows as in df.

    Refits that needed the penalized fallback, or could not be estimated (their test rows stay
    NaN), are listed in `.attrs["refit_notes"]` with the repeat, fold and terms concerned.
    """
    splits = cv_splits(df, outcome, cv, n_splits, n_repeats, seed, group_col)
    n_rep = max(r for r, _, _ in splits) + 1
    out = np.full((len(df), n_rep), np.nan)
    notes: list[dict] = []
    fold_in_repeat: dict[int, int] = {}
    for r, train, test in splits:
        k = fold_in_repeat[r] = fold_in_repeat.get(r, -1) + 1
        where = (f"held-out center {df.iloc[test][group_col].iloc[0]}" if cv == "center"
                 else f"repeat {r + 1}, fold {k + 1} of {n_splits}")
        model, note = fit_fold(make_model, df.iloc[train], where)
        if note:
            notes.append(note)
        if model is not None:
            out[test, r] = model.predict_proba(df.iloc[test])
    frame = pd.DataFrame(out, index=df.index, columns=[f"repeat_{r}" for r in range(n_rep)])
    frame.attrs["refit_notes"] = notes
    return frame


def cross_validated_metrics(y: np.ndarray | pd.Series, oof: pd.DataFrame, centers: pd.Series | None = None
                            ) -> dict[str, Any]:
    """CV metrics: per-repeat AUC / Brier / calibration averaged over repeats (with the AUC's spread),
    plus, for leave-one-center-out, the AUC within each held-out center."""
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
        c = np.asarray(centers).astype(str)
        first = oof.iloc[:, 0].to_numpy()
        out["cv_auc_by_center"] = {
            name: auc(y[c == name], first[c == name])
            for name in np.unique(c)
            if 0 < y[c == name].sum() < (c == name).sum() and np.isfinite(first[c == name]).all()
        }
    out.update(fold_note_metrics(list(oof.attrs.get("refit_notes", []))))
    return out


@single_threaded_blas
def bootstrap_optimism(make_model: Callable[[], BinaryModel], df: pd.DataFrame, outcome: str, n_boot: int = 200,
                       seed: int = 0) -> dict[str, float]:
    """Harrell's bootstrap optimism-corrected AUC (Harrell, Lee & Mark, Stat Med 1996; Steyerberg ch. 17).

    Each replicate refits on a resample; optimism = mean(AUC on its resample - AUC on the original
    data). The test-side AUCs of all replicates are computed in one vectorized call.
    """
    y = df[outcome].astype(float).to_numpy()
    full = make_model().fit(df)
    apparent = auc(y, full.predict_proba(df))
    idx = stratified_bootstrap_indices(y, n_boot, seed)
    if hasattr(full, "bootstrap_risks"):
        p_boot, p_orig = full.bootstrap_risks(df, idx)
    else:
        p_orig, p_boot = np.empty((n_boot, len(df))), np.empty((n_boot, len(df)))
        keep = np.ones(n_boot, dtype=bool)
        for b in range(n_boot):
            sample = df.iloc[idx[b]]
            model, _ = fit_fold(make_model, sample, f"bootstrap replicate {b + 1}")
            if model is None:
                keep[b] = False
                continue
            p_orig[b] = model.predict_proba(df)
            p_boot[b] = model.predict_proba(sample)
        idx, p_orig, p_boot = idx[keep], p_orig[keep], p_boot[keep]
    # AUC of each replicate's model on its own resample, and on the original rows: both as row-wise ranks.
    boot_auc = rowwise_aucs(y[idx], p_boot)
    test_auc = rowwise_aucs(np.broadcast_to(y, p_orig.shape), p_orig)
    optimism = float(np.mean(boot_auc - test_auc))
    return {"apparent_auc": apparent, "optimism": optimism, "corrected_auc": apparent - optimism, "n_boot": n_boot}


def likelihood_ratio_test(llf_base: float, llf_full: float, df_diff: int) -> dict[str, float]:
    """LR test of nested models fitted on the same rows."""
    stat = max(0.0, 2.0 * (llf_full - llf_base))
    return {"lr_statistic": stat, "lr_df": int(df_diff), "lr_p": float(stats.chi2.sf(stat, df_diff))}


@single_threaded_blas
def compare_nested(base: Callable[[], BinaryModel], full: Callable[[], BinaryModel], df: pd.DataFrame, outcome: str,
                   cv: str = "kfold", n_splits: int = 5, n_repeats: int = 2, n_boot: int = 200, seed: int = 0,
                   nri_cutoffs: tuple[float, ...] | None = None) -> dict[str, Any]:
    """Does `full` add to `base`? LR test (apparent fits, same rows), cross-validated AUCs and their
    difference with a bootstrap 95% CI, and the NRI (continuous unless cutoffs are given).

    ΔAUC and NRI use each patient's out-of-fold risk averaged over the CV repeats, so that neither
    model is credited with its own optimism; the bootstrap resamples patients (stratified by outcome)
    and evaluates both models on the same resamples.
    """
    y = df[outcome].astype(float).to_numpy()
    fb, ff = base().fit(df), full().fit(df)
    out: dict[str, Any] = {"n": int(len(df)), "n_events": int(y.sum()), "cv": cv}
    if hasattr(fb, "llf_") and hasattr(ff, "llf_"):
        out.update(likelihood_ratio_test(fb.llf_, ff.llf_, len(ff.params_) - len(fb.params_)))
    cv_b = cross_validated_predictions(base, df, outcome, cv, n_splits, n_repeats, seed)
    cv_f = cross_validated_predictions(full, df, outcome, cv, n_splits, n_repeats, seed)
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
    y_all = df[outcome].astype(float).to_numpy()
    out["apparent_auc_base"] = auc(y_all, fb.predict_proba(df))
    out["apparent_auc_full"] = auc(y_all, ff.predict_proba(df))
    out.update(net_reclassification(y, oof_b, oof_f, cutoffs=nri_cutoffs, n_boot=n_boot, seed=seed))
    out["_y"], out["_oof_base"], out["_oof_full"] = y, oof_b, oof_f
    return out
