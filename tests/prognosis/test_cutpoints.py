"""The ordinal model's pooled cutpoints with SE and CI, as the fit records them for its summary."""

from __future__ import annotations

import numpy as np
from prognosis_study import observed_table

from prognosis.fitting import fit_outcome_model
from synthetic.outcomes import simulate_tabular


def test_gos_fit_records_pooled_cutpoints_with_rubin_se_and_ci() -> None:
    table = observed_table(simulate_tabular(600, seed=21))
    res = fit_outcome_model(table, "gos", "clinical", cv=None, m=3, n_boot=10)
    cuts = res.metrics["cutpoint_table"]
    assert [c["cutpoint"] for c in cuts] == ["GOS <= 1", "GOS <= 2", "GOS <= 3", "GOS <= 4"]
    est = np.array([c["estimate"] for c in cuts])
    se = np.array([c["se"] for c in cuts])
    np.testing.assert_allclose(est, res.model.cutpoints_)
    assert np.all(np.diff(est) > 0)
    # Rubin's total variance of the thresholds themselves (reversed: cutpoint_k = -threshold_(5-k)).
    np.testing.assert_allclose(se, np.sqrt(np.diag(res.model.threshold_cov_.to_numpy()))[::-1])
    assert all(c["lower"] < c["estimate"] < c["upper"] for c in cuts)
    assert all(np.isfinite(c["dof"]) and c["dof"] > 2 for c in cuts)
