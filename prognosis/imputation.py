"""Missing predictors: multiple imputation by chained equations with predictive mean matching, or
complete-case as a sensitivity analysis.

Each incomplete variable is regressed on all the others (current fills), the center (dummies) and
the outcomes; a coefficient vector is drawn from its posterior (Bayesian linear regression, as
mice's `norm.draw`), and each gap takes the observed value of one of the `DONORS` observed
patients whose predicted mean is closest (predictive mean matching, van Buuren 2018, ch. 3.4;
mice's default `pmm`). Because every imputed value is a value somebody actually has, codes stay
codes: GCS motor 1-6, pupils 0/1/2 and 0/1 flags are imputed with their observed frequencies
(under MAR given the model), not regressed linearly and rounded (which turned 9.6 % "one pupil
reactive" into 39 %). Volumes are modelled on the log1p scale.

Outcomes are predictors of the imputation model (leaving them out biases the imputed variables'
effects toward zero; Moons et al., J Clin Epidemiol 2006), but only for rows whose outcome may be
used: in cross-validation and the bootstrap the held-out rows' outcomes are hidden (`outcome_known`)
and imputed along like any gap, so a held-out patient is never imputed from their own outcome
(Wood et al., Stat Med 2015; Hoogland et al., Stat Med 2020).

Hand-written (about 60 lines of numpy) because scikit-learn's IterativeImputer has no predictive
mean matching (its rounded linear draws are the bug above) and statsmodels' MICEData, which has
PMM, is formula-based and about two orders of magnitude slower: in-fold imputation runs it
hundreds of times per fit (every CV fold and bootstrap replicate).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from prognosis.terms import CLINICAL_RAW, IMAGING_RAW, design_terms

# The models' predictors, and IMPACT's CT terms so that it is scored on the same completed rows.
IMPUTED_COLUMNS: tuple[str, ...] = (*CLINICAL_RAW, *IMAGING_RAW, "marshall_ct", "tsah", "edh")
LOG_SCALE = ("adm_hematoma_ml", "peak_edema_ml")
AUXILIARY = ("died", "unfavourable", "gos_6m", "days_to_death_or_censor")
DONORS = 5
ITERATIONS = 5  # mice's default maxit


def imputation_settings(m: int, seed: int) -> dict[str, object]:
    """What a fit record stores about its imputation (with the seed, enough to redo it)."""
    return {"method": "chained equations, predictive mean matching", "donors": DONORS, "iterations": ITERATIONS,
            "m": m, "seed": seed, "predictors": "all imputed variables, center, outcomes (training rows only)",
            "log_scale": list(LOG_SCALE), "in_fold": True}


def _pmm_draws(work: np.ndarray, fixed: np.ndarray, rng: np.random.Generator, n_iter: int,
               start: np.ndarray | None = None) -> np.ndarray:
    """Fill the NaNs of `work` (n, p) by chained PMM on the other columns and `fixed` (n, q), complete.
    The chain starts from random observed values, or from `start` (a completed copy) where given."""
    x = work.copy()
    gaps = np.isnan(x)
    cols = [j for j in range(x.shape[1]) if gaps[:, j].any() and (~gaps[:, j]).sum() >= 2]
    for j in cols:
        observed = x[~gaps[:, j], j]
        x[gaps[:, j], j] = rng.choice(observed, gaps[:, j].sum())
        if start is not None:
            warm = gaps[:, j] & np.isfinite(start[:, j])
            x[warm, j] = start[warm, j]
    leftover = np.isnan(x)
    if leftover.any():  # a column with fewer than two observed values: not modelled, held at its mean
        x[leftover] = np.take(np.nan_to_num(np.nanmean(np.where(leftover, np.nan, x), axis=0)),
                              np.nonzero(leftover)[1])
    for _ in range(n_iter if cols else 0):
        for j in cols:
            miss = gaps[:, j]
            design = np.column_stack([np.ones(len(x)), np.delete(x, j, axis=1), fixed])
            d_obs, y_obs = design[~miss], x[~miss, j]
            # Standardize for a scale-free ridge (keeps collinear outcome columns solvable).
            scale = d_obs.std(axis=0)
            scale[scale == 0] = 1.0
            d_obs_s, d_mis_s = d_obs / scale, design[miss] / scale
            gram = d_obs_s.T @ d_obs_s + 1e-4 * np.eye(design.shape[1])
            chol_inv = np.linalg.cholesky(np.linalg.inv(gram))
            beta_hat = np.linalg.solve(gram, d_obs_s.T @ y_obs)
            rss = float(np.sum((y_obs - d_obs_s @ beta_hat) ** 2))
            dof = max(1, len(y_obs) - design.shape[1])
            sigma = np.sqrt(rss / rng.chisquare(dof))
            beta_draw = beta_hat + sigma * (chol_inv @ rng.standard_normal(design.shape[1]))
            pred_obs, pred_mis = d_obs_s @ beta_hat, d_mis_s @ beta_draw
            order = np.argsort(pred_obs)
            sorted_pred = pred_obs[order]
            # The DONORS nearest observed predictions: a window around each insertion point.
            pos = np.searchsorted(sorted_pred, pred_mis)
            window = np.clip(pos[:, None] + np.arange(-DONORS, DONORS)[None, :], 0, len(order) - 1)
            dist = np.abs(sorted_pred[window] - pred_mis[:, None])
            nearest = np.take_along_axis(window, np.argsort(dist, axis=1)[:, :DONORS], axis=1)
            pick = nearest[np.arange(len(pred_mis)), rng.integers(0, DONORS, len(pred_mis))]
            x[miss, j] = y_obs[order[pick]]
    return x


def multiply_imputed_tables(table: pd.DataFrame, m: int = 5, seed: int = 0, max_iter: int = ITERATIONS,
                            columns: tuple[str, ...] = IMPUTED_COLUMNS, required: tuple[str, ...] = (),
                            outcome_known: np.ndarray | pd.Series | None = None,
                            start: pd.DataFrame | None = None) -> list[pd.DataFrame]:
    """m copies of the analysis table with the raw predictors imputed and the design terms recomputed.

    `required` raw columns (those of the model's terms) must have observed values; other columns
    with none (e.g. imaging not yet extracted, for a clinical-only model) are left out.
    `outcome_known` (bool per row, default all) marks the rows whose outcomes may inform the
    imputation; the others' outcomes are hidden from it (and kept unchanged in the output).
    `start` (a completed table with the same rows) warm-starts the chains: a bootstrap resample
    starts from the full data's imputation and needs only a couple of iterations to redraw.
    """
    if m < 1:
        raise ValueError(f"multiple imputation: m must be >= 1, got {m}")
    absent = [c for c in required if c not in table.columns or table[c].isna().all()]
    if absent:
        raise ValueError(f"multiple imputation: column(s) {absent} have no observed value "
                         "(imaging features not extracted yet? see `ctstudy biomarkers extract`)")
    cols = [c for c in columns if c in table.columns and table[c].notna().any()]
    aux = [c for c in AUXILIARY if c in table.columns and table[c].notna().any()]
    work = table[cols + aux].astype(float).copy()
    for c in LOG_SCALE:
        if c in work:
            work[c] = np.log1p(work[c])
    if "days_to_death_or_censor" in work:
        work["days_to_death_or_censor"] = np.log(work["days_to_death_or_censor"].clip(lower=1e-3))
    if outcome_known is not None:
        hidden = ~np.asarray(outcome_known, dtype=bool)
        work.loc[hidden, aux] = np.nan
    fixed = (pd.get_dummies(table["center"].astype(str), drop_first=True, dtype=float).to_numpy()
             if "center" in table and table["center"].nunique() > 1 else np.empty((len(table), 0)))
    values = work.to_numpy()
    observed = table[cols].astype(float).to_numpy()
    warm = None
    if start is not None:
        warm_frame = start.reindex(columns=work.columns).astype(float).copy()
        for c in LOG_SCALE:
            if c in warm_frame:
                warm_frame[c] = np.log1p(warm_frame[c])
        if "days_to_death_or_censor" in warm_frame:
            warm_frame["days_to_death_or_censor"] = np.log(warm_frame["days_to_death_or_censor"].clip(lower=1e-3))
        warm = warm_frame.to_numpy()
    tables = []
    for i in range(m):
        rng = np.random.default_rng(np.random.SeedSequence([seed, i]))
        filled = _pmm_draws(values, fixed, rng, max_iter, warm)[:, :len(cols)]
        for j, c in enumerate(cols):
            if c in LOG_SCALE:
                filled[:, j] = np.clip(np.expm1(filled[:, j]), 0, None)
        # Observed values are kept exactly; only the gaps take imputed values (one block assignment:
        # this runs in every CV fold and bootstrap replicate, where per-column pandas calls add up).
        completed = np.where(np.isnan(observed), filled, observed)
        out = table.copy()
        out[cols] = completed
        terms = design_terms(out[cols])
        out[terms.columns] = terms
        tables.append(out)
    return tables


def complete_case_table(table: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Rows with every listed column present (the complete-case sensitivity analysis)."""
    return table.loc[table[columns].notna().all(axis=1)].reset_index(drop=True)
