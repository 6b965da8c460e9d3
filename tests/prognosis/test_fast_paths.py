"""Each fast path of the validation (everything within 2 minutes) against the straightforward
computation it replaces: same numbers, so the speed costs no statistics."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from prognosis_study import observed_table
from statsmodels.miscmodels.ordinal_model import OrderedModel
from statsmodels.tools.numdiff import approx_fprime, approx_hess

from prognosis.analysis_table import rows_with_outcome
from prognosis.fitting import compare_feature_sets, fit_outcome_model
from prognosis.imputation import DONORS, ImputationCache, _pmm_draws, multiply_imputed_tables
from prognosis.logistic import LogisticModel, ml_logit
from prognosis.ordinal import LogitOrderedModel, OrdinalGOSModel
from prognosis.terms import terms_of
from synthetic.outcomes import simulate_tabular

ALL = terms_of("clinical+imaging")


def reference_pmm(work: np.ndarray, fixed: np.ndarray, rng: np.random.Generator, n_iter: int) -> np.ndarray:
    """Chained PMM written plainly: each step builds its design, standardizes it and regresses."""
    x = work.copy()
    gaps = np.isnan(x)
    cols = [j for j in range(x.shape[1]) if gaps[:, j].any() and (~gaps[:, j]).sum() >= 2]
    for j in cols:
        x[gaps[:, j], j] = rng.choice(x[~gaps[:, j], j], gaps[:, j].sum())
    for _ in range(n_iter):
        for j in cols:
            miss = gaps[:, j]
            design = np.column_stack([np.ones(len(x)), np.delete(x, j, axis=1), fixed])
            d_obs, y_obs = design[~miss], x[~miss, j]
            scale = d_obs.std(axis=0)
            scale[scale == 0] = 1.0
            d_obs_s, d_mis_s = d_obs / scale, design[miss] / scale
            gram = d_obs_s.T @ d_obs_s + 1e-4 * np.eye(design.shape[1])
            chol_inv = np.linalg.cholesky(np.linalg.inv(gram))
            beta_hat = np.linalg.solve(gram, d_obs_s.T @ y_obs)
            rss = float(np.sum((y_obs - d_obs_s @ beta_hat) ** 2))
            sigma = np.sqrt(rss / rng.chisquare(max(1, len(y_obs) - design.shape[1])))
            beta_draw = beta_hat + sigma * (chol_inv @ rng.standard_normal(design.shape[1]))
            pred_obs, pred_mis = d_obs_s @ beta_hat, d_mis_s @ beta_draw
            order = np.argsort(pred_obs)
            pos = np.searchsorted(pred_obs[order], pred_mis)
            window = np.clip(pos[:, None] + np.arange(-DONORS, DONORS)[None, :], 0, len(order) - 1)
            dist = np.abs(pred_obs[order][window] - pred_mis[:, None])
            nearest = np.take_along_axis(window, np.argsort(dist, axis=1)[:, :DONORS], axis=1)
            x[miss, j] = y_obs[order[nearest[np.arange(len(pred_mis)), rng.integers(0, DONORS, len(pred_mis))]]]
    return x


def test_pmm_with_updated_cross_products_draws_what_the_plain_regressions_draw() -> None:
    obs = observed_table(simulate_tabular(400, seed=21)).dropna(subset=["died"]).reset_index(drop=True)
    cols = ["age", "gcs_motor", "pupils_unreactive", "hypoxia", "glucose_mmol_l", "hemoglobin_g_dl", "died",
            "unfavourable"]
    work = obs[cols].to_numpy(dtype=float, na_value=np.nan)
    work[300:, -2:] = np.nan  # held-out rows' outcomes hidden
    fixed = pd.get_dummies(obs["center"], drop_first=True, dtype=float).to_numpy()
    assert np.isnan(work[:, 2:6]).any(axis=0).all()
    for seed in range(3):
        fast = _pmm_draws(work, fixed, np.random.default_rng(seed), 5)
        plain = reference_pmm(work, fixed, np.random.default_rng(seed), 5)
        np.testing.assert_array_equal(fast, plain)


def test_shared_imputations_give_the_same_fits_and_impute_each_fold_once() -> None:
    obs = observed_table(simulate_tabular(300, seed=13))
    cache = ImputationCache()
    plain = fit_outcome_model(obs, "mortality", "clinical", m=2, n_boot=20)
    shared = fit_outcome_model(obs, "mortality", "clinical", m=2, n_boot=20, imputations=cache)
    drawn = cache.misses
    assert drawn == 2 + 20 + 2 * 10  # m full-data sets, n_boot replicates, 5 folds x 2 repeats x m
    other = fit_outcome_model(obs, "mortality", "clinical+imaging", model_kind="penalized", m=2, n_boot=20,
                              imputations=cache)
    assert cache.misses == drawn  # another feature set and model kind on the same rows: nothing imputed again
    alone = fit_outcome_model(obs, "mortality", "clinical+imaging", model_kind="penalized", m=2, n_boot=20)
    for a, b in ((plain, shared), (alone, other)):
        for key in ("auc", "cv_auc", "cv_brier", "corrected_auc", "shrinkage"):
            assert a.metrics[key] == b.metrics[key], key
        pd.testing.assert_frame_equal(a.curves["cv_risk"], b.curves["cv_risk"])
    comparison, _ = compare_feature_sets(obs, outcomes=("mortality",), m=2, n_boot=20, imputations=cache)
    assert cache.misses == drawn  # the comparison's folds are the fits' folds
    alone_comparison, _ = compare_feature_sets(obs, outcomes=("mortality",), m=2, n_boot=20)
    pd.testing.assert_frame_equal(comparison, alone_comparison)


def test_a_draw_does_not_depend_on_how_many_are_asked_for() -> None:
    rows = rows_with_outcome(observed_table(simulate_tabular(200, seed=14)), ["died"])
    one = multiply_imputed_tables(rows, m=1, seed=3)[0]
    three = multiply_imputed_tables(rows, m=3, seed=3)
    pd.testing.assert_frame_equal(one, three[0])
    assert not three[0].equals(three[1])


def _worse(df: pd.DataFrame) -> pd.Series:
    return pd.Series(pd.Categorical(6 - df["gos_6m"].astype(int).to_numpy(), categories=[1, 2, 3, 4, 5],
                                    ordered=True), index=df.index)


@pytest.mark.parametrize("drop_level", [None, 3])
def test_ordinal_score_and_hessian_are_the_derivatives_of_the_likelihood(drop_level: int | None) -> None:
    table = observed_table(simulate_tabular(300, seed=5)).dropna(subset=["gos_6m"])
    table = multiply_imputed_tables(table, m=1, seed=0)[0]
    if drop_level is not None:  # a sample lacking a level still has four thresholds
        table = table[table["gos_6m"] != drop_level]
    model = OrdinalGOSModel(ALL).fit(table)
    exact = LogitOrderedModel(_worse(table), model.design(table), distr="logit")
    point = model._raw_params + np.random.default_rng(0).normal(0, 0.05, len(model._raw_params))
    numeric_score = approx_fprime(point, exact.loglike, centered=True)
    np.testing.assert_allclose(exact.score(point), numeric_score, rtol=1e-6, atol=1e-6 * np.abs(numeric_score).max())
    numeric_hessian = approx_hess(point, exact.loglike)
    np.testing.assert_allclose(exact.hessian(point), numeric_hessian, rtol=1e-4,
                               atol=1e-5 * np.abs(numeric_hessian).max())


def test_ordinal_fit_matches_statsmodels_numerical_fit() -> None:
    table = observed_table(simulate_tabular(500, seed=6)).dropna(subset=["gos_6m"])
    table = multiply_imputed_tables(table, m=1, seed=0)[0]
    model = OrdinalGOSModel(ALL).fit(table)
    x = model.design(table)
    numeric = OrderedModel(_worse(table), x, distr="logit").fit(start_params=model._raw_params, method="bfgs", disp=0,
                                                                 maxiter=1000)
    k = x.shape[1]
    np.testing.assert_allclose(model.params_.to_numpy(), numeric.params.to_numpy()[:k], atol=1e-5)
    np.testing.assert_allclose(model.standard_errors_.to_numpy(), numeric.bse.to_numpy()[:k], rtol=1e-3)
    assert model.llf_ == pytest.approx(numeric.llf, abs=1e-6)


def test_ml_logit_is_statsmodels_newton_fit() -> None:
    table = observed_table(simulate_tabular(400, seed=7)).dropna(subset=["died"])
    table = multiply_imputed_tables(table, m=1, seed=0)[0]
    x = LogisticModel(ALL, "died").fit(table).design(table)
    y = table["died"].to_numpy(float)
    ref = sm.Logit(y, x).fit(method="newton", disp=0, maxiter=50)
    params, cov, llf, converged = ml_logit(x.to_numpy(), y)
    np.testing.assert_allclose(params, ref.params.to_numpy(), rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(cov, ref.cov_params().to_numpy(), rtol=1e-7)
    assert llf == pytest.approx(ref.llf, abs=1e-9) and converged == ref.mle_retvals["converged"]
    with warnings.catch_warnings(record=True) as caught:  # statsmodels' warning when it stops short
        warnings.simplefilter("always")
        *_, converged = ml_logit(x.to_numpy(), y, max_iter=2)
    assert not converged and any("failed to converge" in str(w.message) for w in caught)
