"""Brant's and the non-linearity tests pooled over all m imputed data sets by D2."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from prognosis.assumptions import nonlinearity_tests, pooled_over_imputations
from prognosis.rubin import d2_pooled_chisq


def _curved(seed: int, n: int = 800) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    glucose = rng.uniform(3, 20, n)
    age = rng.uniform(18, 80, n)
    lp = -1 + 0.04 * (age - 50) + 0.05 * (glucose - 10) ** 2 - 0.5
    return pd.DataFrame({"age": age, "glucose_mmol_l": glucose, "died": (rng.uniform(size=n) < 1 / (1 + np.exp(-lp)))
                         .astype(float)})


def test_each_imputation_is_tested_and_the_statistics_pooled_by_d2() -> None:
    terms = ["age", "glucose_mmol_l"]
    tables = [_curved(seed) for seed in (1, 2, 3)]  # three data sets that differ, as imputations do

    def test(d: pd.DataFrame) -> pd.DataFrame:
        return nonlinearity_tests(d, terms, "died")

    pooled = pooled_over_imputations(tables, test).set_index("term")
    per = [test(t).set_index("term") for t in tables]
    for term in terms:
        chi2 = [p.loc[term, "chi2"] for p in per]
        expected = d2_pooled_chisq(chi2, int(per[0].loc[term, "df"]))
        assert pooled.loc[term, "chi2"] == pytest.approx(expected["statistic"])
        assert pooled.loc[term, "p"] == pytest.approx(expected["p"])
        assert pooled.loc[term, "m"] == 3 and pooled.loc[term, "chi2_min"] == min(chi2)
    assert pooled.loc["glucose_mmol_l", "p"] < 0.01 < pooled.loc["age", "p"]  # the curved term is found


def test_one_data_set_passes_through_and_identical_ones_pool_to_it() -> None:
    table = _curved(4)
    one = nonlinearity_tests(table, ["glucose_mmol_l"], "died").set_index("term").loc["glucose_mmol_l"]
    same = pooled_over_imputations([table] * 3, lambda d: nonlinearity_tests(d, ["glucose_mmol_l"], "died"))
    row = same.set_index("term").loc["glucose_mmol_l"]
    # No between-imputation variance: D2 is the chi-square over its df, with the chi-square's p.
    assert row["chi2"] == pytest.approx(one["chi2"] / one["df"])
    assert row["p"] == pytest.approx(stats.chi2.sf(one["chi2"], one["df"]))


def test_the_spline_wald_test_matches_statsmodels() -> None:
    import statsmodels.api as sm

    from prognosis.terms import age_spline_basis, age_spline_knots

    table = _curved(5)
    ours = nonlinearity_tests(table, ["age", "glucose_mmol_l"], "died").set_index("term").loc["glucose_mmol_l"]
    spline = age_spline_basis(table["glucose_mmol_l"], age_spline_knots(table["glucose_mmol_l"], 4)).drop(
        columns="age")
    x = sm.add_constant(pd.concat([table[["age", "glucose_mmol_l"]], spline], axis=1))
    res = sm.Logit(table["died"], x).fit(disp=0, method="newton")
    test = res.wald_test(np.eye(x.shape[1])[[x.columns.get_loc(c) for c in spline.columns]], scalar=True)
    assert ours["chi2"] == pytest.approx(float(test.statistic), rel=1e-6)
    assert ours["p"] == pytest.approx(float(test.pvalue), rel=1e-6)
