"""The age spline under multiple imputation: one set of knots, from the observed ages, for all m fits."""

from __future__ import annotations

import numpy as np
import pytest
from prognosis_study import observed_table

from prognosis.fitting import fit_outcome_model
from prognosis.logistic import LogisticModel
from prognosis.terms import age_spline_knots, terms_of
from synthetic.outcomes import simulate_tabular

CLIN = terms_of("clinical")


def test_imputed_fits_share_the_knots_of_the_observed_ages() -> None:
    table = observed_table(simulate_tabular(500, seed=7))
    gap = np.random.default_rng(0).uniform(size=len(table)) < 0.2
    table.loc[gap, "age"] = np.nan  # a fifth of ages imputed: per-imputation knots would differ
    rows = table.dropna(subset=["died"])
    res = fit_outcome_model(table, "mortality", "clinical", cv=None, m=3, n_boot=10, age_spline_knots=4)
    expected = age_spline_knots(rows["age"].dropna(), 4)
    assert res.model.knots_ == pytest.approx(expected)
    assert res.spec["model"]["knots"] == pytest.approx(expected)
    assert "age_rcs2" in res.model.params_.index


def test_pooling_fits_with_different_knots_is_refused() -> None:
    table = observed_table(simulate_tabular(400, seed=8)).dropna(subset=["died"] + CLIN).reset_index(drop=True)
    a = LogisticModel(CLIN, "died", 3).fit(table)
    b = LogisticModel(CLIN, "died", 3).fit(table.iloc[: len(table) // 2])
    assert a.knots_ != b.knots_
    with pytest.raises(ValueError, match="different spline knots"):
        LogisticModel(CLIN, "died", 3).pool_from([a, b])
    fixed = [LogisticModel(CLIN, "died", a.knots_).fit(d) for d in (table, table.iloc[: len(table) // 2])]
    pooled = LogisticModel(CLIN, "died", a.knots_).pool_from(fixed)
    np.testing.assert_allclose(pooled.params_, np.mean([f.params_ for f in fixed], axis=0))
