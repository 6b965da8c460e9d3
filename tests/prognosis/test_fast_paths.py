"""Each fast path of the validation (issue 12: everything within 2 minutes) against the straightforward
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

from prognosis.imputation import multiply_imputed_tables
from prognosis.logistic import LogisticModel, ml_logit
from prognosis.ordinal import LogitOrderedModel, OrdinalGOSModel
from prognosis.terms import terms_of
from synthetic.outcomes import simulate_tabular

ALL = terms_of("clinical+imaging")


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
