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

import hashlib

import numpy as np
import pandas as pd

from prognosis.terms import CLINICAL_RAW, IMAGING_RAW, design_term_arrays

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
               snapshots: list[np.ndarray] | None = None) -> np.ndarray:
    """Fill the NaNs of `work` (n, p) by chained PMM on the other columns and `fixed` (n, q), complete.
    The chain starts from random observed values. With `snapshots`, a copy of the filled columns after
    each iteration is appended to it (what mice's trace plots are drawn from); the draws are the same.

    Each step regresses one column on all the others over its observed rows. Rather than building
    that design and its cross-products anew (n x p^2 per step, with the copies), the cross-products
    of the whole design [1, x, fixed] are kept and updated: a step subtracts its gaps' rows and, after
    filling them, recomputes the one column that changed (this runs in every CV fold and bootstrap
    replicate, hundreds of times a fit)."""
    x = work.copy()
    gaps = np.isnan(x)
    cols = [j for j in range(x.shape[1]) if gaps[:, j].any() and (~gaps[:, j]).sum() >= 2]
    for j in cols:
        observed = x[~gaps[:, j], j]
        x[gaps[:, j], j] = rng.choice(observed, gaps[:, j].sum())
    leftover = np.isnan(x)
    if leftover.any():  # a column with fewer than two observed values: not modelled, held at its mean (or 0)
        counts = (~leftover).sum(axis=0)
        means = np.where(leftover, 0.0, x).sum(axis=0) / np.maximum(counts, 1)
        x[leftover] = np.take(means, np.nonzero(leftover)[1])
    if not cols or n_iter < 1:
        return x
    n = len(x)
    a = np.column_stack([np.ones(n), x, fixed])  # column 1 + j of `a` is x[:, j]
    cross, sums = a.T @ a, a.sum(axis=0)
    ridge = 1e-4 * np.eye(a.shape[1] - 1)
    steps = []
    for j in cols:
        miss = np.flatnonzero(gaps[:, j])
        obs = np.flatnonzero(~gaps[:, j])
        steps.append((j, 1 + j, miss, obs, np.delete(np.arange(a.shape[1]), 1 + j)))
    for _ in range(n_iter):
        for j, c, miss, obs, keep in steps:
            a_mis = a[miss]
            # Cross-products and sums over the observed rows of column j: all rows minus its gaps.
            g = cross - a_mis.T @ a_mis
            s = sums - a_mis.sum(axis=0)
            n_obs = len(obs)
            mean = s[keep] / n_obs
            var = np.diag(g)[keep] / n_obs - mean**2
            # Standardize for a scale-free ridge (keeps collinear outcome columns solvable).
            scale = np.sqrt(np.clip(var, 0.0, None))
            scale[var <= 1e-12 * (1.0 + mean**2)] = 1.0  # constant columns (the intercept) stay as they are
            gram = g[np.ix_(keep, keep)] / np.outer(scale, scale) + ridge
            chol_inv = np.linalg.cholesky(np.linalg.inv(gram))
            beta_hat = np.linalg.solve(gram, g[keep, c] / scale)
            coef = np.zeros(a.shape[1])
            coef[keep] = beta_hat / scale
            y_obs = x[obs, j]
            pred_obs = (a @ coef)[obs]
            rss = float(np.sum((y_obs - pred_obs) ** 2))
            dof = max(1, n_obs - len(keep))
            sigma = np.sqrt(rss / rng.chisquare(dof))
            coef[keep] = (beta_hat + sigma * (chol_inv @ rng.standard_normal(len(keep)))) / scale
            pred_mis = a_mis @ coef
            order = np.argsort(pred_obs)
            sorted_pred = pred_obs[order]
            # The DONORS nearest observed predictions: a window around each insertion point.
            pos = np.searchsorted(sorted_pred, pred_mis)
            window = np.clip(pos[:, None] + np.arange(-DONORS, DONORS)[None, :], 0, len(order) - 1)
            dist = np.abs(sorted_pred[window] - pred_mis[:, None])
            nearest = np.take_along_axis(window, np.argsort(dist, axis=1)[:, :DONORS], axis=1)
            pick = nearest[np.arange(len(pred_mis)), rng.integers(0, DONORS, len(pred_mis))]
            x[miss, j] = a[miss, c] = y_obs[order[pick]]
            cross[:, c] = cross[c, :] = a.T @ a[:, c]
            sums[c] = a[:, c].sum()
        if snapshots is not None:
            snapshots.append(x.copy())
    return x


class ImputationCache:
    """Completed data sets already drawn, for models that impute the same rows the same way.

    A draw is a function of the imputation model's inputs (the columns imputed and used, their values
    with the gaps and hidden outcomes, the centers), the seed, the draw's number and the iterations:
    that is its key, and
    only its imputed values are kept (a few kB each). Every model of one outcome's rows (the feature
    sets, the model kinds, the clinical-vs-imaging comparison, the ordinal and Cox models on the same
    rows) then imputes each CV fold and bootstrap replicate once instead of once per model; the
    results are the same as without the cache, draw for draw. Scope one to one analysis table.
    """

    def __init__(self) -> None:
        self._draws: dict[tuple, np.ndarray] = {}
        self.diagnostics: dict[tuple, dict[str, pd.DataFrame]] = {}  # prognosis.imputation_diagnostics's, by rows
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(cols: list[str], aux: list[str], values: np.ndarray, fixed: np.ndarray, max_iter: int) -> tuple:
        digest = hashlib.blake2b(digest_size=16)
        digest.update(("|".join(cols) + "||" + "|".join(aux)).encode())
        for part in (values, fixed):
            digest.update(str(part.shape).encode())
            digest.update(np.ascontiguousarray(part).tobytes())
        return digest.digest(), max_iter

    def get(self, key: tuple, seed: int, i: int) -> np.ndarray | None:
        found = self._draws.get((*key, seed, i))
        if found is None:
            self.misses += 1
        else:
            self.hits += 1
        return found

    def put(self, key: tuple, seed: int, i: int, imputed: np.ndarray) -> None:
        self._draws[(*key, seed, i)] = imputed


def multiply_imputed_tables(table: pd.DataFrame, m: int = 5, seed: int = 0, max_iter: int = ITERATIONS,
                            columns: tuple[str, ...] = IMPUTED_COLUMNS, required: tuple[str, ...] = (),
                            outcome_known: np.ndarray | pd.Series | None = None,
                            cache: ImputationCache | None = None,
                            trace: list[dict[str, object]] | None = None) -> list[pd.DataFrame]:
    """m copies of the analysis table with the raw predictors imputed and the design terms recomputed.

    `required` raw columns (those of the model's terms) must have observed values; other columns
    with none (e.g. imaging not yet extracted, for a clinical-only model) are left out.
    `outcome_known` (bool per row, default all) marks the rows whose outcomes may inform the
    imputation; the others' outcomes are hidden from it (and kept unchanged in the output).
    Draw i of a seed is the same whatever m (a call with m = 1 gives the first of m = 5); `cache`
    keeps draws for other models imputing the same rows (`ImputationCache`). With `trace`, every
    draw is made afresh (the same draws) and one row per imputed variable, chain (imputation, from 1)
    and iteration (from 1) is appended to it: the mean and SD of that variable's imputed values on its
    own scale after that iteration (mice's `imp$chainMean`, `imp$chainVar`).
    """
    if m < 1:
        raise ValueError(f"multiple imputation: m must be >= 1, got {m}")
    absent = [c for c in required if c not in table.columns or table[c].isna().all()]
    if absent:
        raise ValueError(f"multiple imputation: column(s) {absent} have no observed value "
                         "(imaging features not extracted yet? see `ctstudy biomarkers extract`)")
    # Plain float arrays from here on: this runs in every CV fold and bootstrap replicate, where
    # pandas' per-column costs add up to more than the imputation's arithmetic.
    present = [c for c in columns if c in table.columns]
    present_aux = [c for c in AUXILIARY if c in table.columns]
    values = np.column_stack([table[c].to_numpy(dtype=float, na_value=np.nan) for c in present + present_aux]
                             ) if present + present_aux else np.empty((len(table), 0))
    some = ~np.isnan(values).all(axis=0)  # columns with no observed value are left out
    cols = [c for c, keep in zip(present, some, strict=False) if keep]
    aux = [c for c, keep in zip(present_aux, some[len(present):], strict=True) if keep]
    values = values[:, some]
    observed = values[:, :len(cols)].copy()
    gaps = np.isnan(observed)
    for j, c in enumerate(cols + aux):
        if c in LOG_SCALE:
            values[:, j] = np.log1p(values[:, j])
        elif c == "days_to_death_or_censor":
            values[:, j] = np.log(np.clip(values[:, j], 1e-3, None))
    if outcome_known is not None:
        values[~np.asarray(outcome_known, dtype=bool), len(cols):] = np.nan
    fixed = np.empty((len(table), 0))
    if "center" in table:
        levels, codes = np.unique(table["center"].astype(str).to_numpy(), return_inverse=True)
        fixed = (codes[:, None] == np.arange(1, len(levels))[None, :]).astype(float)  # dummies, first dropped
    key = ImputationCache.key(cols, aux, values, fixed, max_iter) if cache is not None else None
    tables = []
    for i in range(m):
        imputed = cache.get(key, seed, i) if cache is not None and trace is None else None
        if imputed is None:
            rng = np.random.default_rng(np.random.SeedSequence([seed, i]))
            snapshots: list[np.ndarray] | None = [] if trace is not None else None
            filled = _pmm_draws(values, fixed, rng, max_iter, snapshots)[:, :len(cols)]
            if trace is not None:
                trace.extend(_chain_trace(snapshots, cols, gaps, i + 1))
            for j, c in enumerate(cols):
                if c in LOG_SCALE:
                    filled[:, j] = np.clip(np.expm1(filled[:, j]), 0, None)
            imputed = filled[gaps]
            if cache is not None:
                cache.put(key, seed, i, imputed)
        tables.append(_completed_table(table, cols, observed, gaps, imputed))
    return tables


def _chain_trace(snapshots: list[np.ndarray], cols: list[str], gaps: np.ndarray,
                 chain: int) -> list[dict[str, object]]:
    """Mean and SD of each variable's imputed values after each iteration of one chain, on the
    variable's own scale (volumes back from log1p)."""
    rows: list[dict[str, object]] = []
    for iteration, x in enumerate(snapshots, start=1):
        for j, c in enumerate(cols):
            if not gaps[:, j].any():
                continue
            values = x[gaps[:, j], j]
            if c in LOG_SCALE:
                values = np.clip(np.expm1(values), 0, None)
            rows.append({"variable": c, "chain": chain, "iteration": iteration, "mean": float(values.mean()),
                         "sd": float(values.std(ddof=1)) if len(values) > 1 else 0.0})
    return rows


def _completed_table(table: pd.DataFrame, cols: list[str], observed: np.ndarray, gaps: np.ndarray,
                     imputed: np.ndarray) -> pd.DataFrame:
    """The table with its gaps in `cols` filled by `imputed` (observed values kept exactly) and the
    design terms recomputed, built in one go."""
    completed = observed.copy()
    completed[gaps] = imputed
    new = {c: completed[:, j] for j, c in enumerate(cols)}
    new.update(design_term_arrays(new))
    data = {c: new.pop(c) if c in new else table[c] for c in table.columns}
    data.update(new)
    return pd.DataFrame(data, index=table.index)


def complete_case_table(table: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Rows with every listed column present (the complete-case sensitivity analysis)."""
    return table.loc[table[columns].notna().all(axis=1)].reset_index(drop=True)
