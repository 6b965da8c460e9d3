"""Repeated-simulation checks (slow): 95 % CI coverage rate and the false-positive rate of the null
biomarker `adm_lesion_left` over 200 independent synthetic studies of 2,000 patients."""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor

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


def _one_study(rep: int) -> list[tuple[np.ndarray, bool]]:
    """For each outcome of study `rep`: which true coefficients the 95 % CIs cover, and whether the null
    biomarker comes out significant."""
    study = simulate_tabular(2000, seed=1000 + rep)
    truth = pd.Series(study.model["terms"])[ALL]
    table = complete_table(study)
    fits = []
    for col in ("died", "unfavourable"):
        s = LogisticModel(ALL, col).fit(table.dropna(subset=[col])).summary.loc[ALL]
        fits.append((((s["coef_lower"] <= truth) & (truth <= s["coef_upper"])).to_numpy(),
                     bool(s.loc["adm_lesion_left", "p"] < 0.05)))
    return fits


@pytest.mark.slow
def test_coverage_and_null_biomarker_rejection_rates() -> None:
    # The studies are independent: simulated on every core (fresh processes, not forks of this one).
    with ProcessPoolExecutor(max_workers=max(1, min(2, os.cpu_count() or 1)),
                             mp_context=multiprocessing.get_context("spawn")) as pool:
        fits = [fit for study in pool.map(_one_study, range(REPS)) for fit in study]
    covered = [c for c, _ in fits]
    rejected = [r for _, r in fits]
    coverage = np.mean(covered)
    # Per-CI coverage pooled over 6,400 CIs: a 99.9 % binomial band around 0.95 is about +-0.009
    # (wider in truth since CIs of one fit are correlated; 0.015 allows for that).
    assert abs(coverage - 0.95) < 0.015, coverage
    n_rej, n = int(np.sum(rejected)), len(rejected)
    lo, hi = stats.binom.ppf([0.0005, 0.9995], n, 0.05)
    assert lo <= n_rej <= hi, f"null biomarker significant in {n_rej}/{n} fits (expected about {0.05 * n:.0f})"
