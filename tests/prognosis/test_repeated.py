"""Repeated-simulation checks (slow): 95 % CI coverage rate and the false-positive rate of the null
biomarker `adm_lesion_left` over 200 independent synthetic studies of 2,000 patients."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from prognosis_study import complete_table
from scipy import stats

from prognosis.logistic import LogisticModel
from prognosis.terms import terms_of
from synthetic.outcomes import simulate_tabular

ALL = terms_of("clinical+imaging")
REPS = 200


@pytest.mark.slow
def test_coverage_and_null_biomarker_rejection_rates() -> None:
    covered, rejected = [], []
    for rep in range(REPS):
        study = simulate_tabular(2000, seed=1000 + rep)
        truth = pd.Series(study.model["terms"])[ALL]
        table = complete_table(study)
        for col in ("died", "unfavourable"):
            s = LogisticModel(ALL, col).fit(table.dropna(subset=[col])).summary.loc[ALL]
            covered.append(((s["coef_lower"] <= truth) & (truth <= s["coef_upper"])).to_numpy())
            rejected.append(s.loc["adm_lesion_left", "p"] < 0.05)
    coverage = np.mean(covered)
    # Per-CI coverage pooled over 6,400 CIs: a 99.9 % binomial band around 0.95 is about +-0.009
    # (wider in truth since CIs of one fit are correlated; 0.015 allows for that).
    assert abs(coverage - 0.95) < 0.015, coverage
    n_rej, n = int(np.sum(rejected)), len(rejected)
    lo, hi = stats.binom.ppf([0.0005, 0.9995], n, 0.05)
    assert lo <= n_rej <= hi, f"null biomarker significant in {n_rej}/{n} fits (expected about {0.05 * n:.0f})"
