"""Center-level pooling: calibration across centers (random effects, Hartung-Knapp) and the random-intercept
model over m imputed data sets."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.special import expit

from prognosis.centers import random_intercept_model
from prognosis.metrics import calibration_intercept_slope
from prognosis.validation import per_center_validation


def test_calibration_slopes_and_intercepts_are_pooled_across_centers_with_a_hartung_knapp_ci() -> None:
    rng = np.random.default_rng(9)
    ys, ps, cs = [], [], []
    # Each center's predictions are miscalibrated by its own slope (true logit = slope * predicted logit).
    for name, n, slope in (("A", 400, 0.6), ("B", 300, 1.0), ("C", 500, 1.4), ("D", 350, 0.9), ("E", 250, 1.2)):
        lp = rng.normal(-1.0, 1.2, n)
        ys.append((rng.uniform(size=n) < expit(slope * lp)).astype(float))
        ps.append(expit(lp))
        cs += [name] * n
    y, p, c = np.concatenate(ys), np.concatenate(ps), np.array(cs)
    table, meta = per_center_validation(y, p, c)
    slopes = table.set_index("center")["calibration_slope"]
    sel = c == "C"
    assert slopes["C"] == pytest.approx(calibration_intercept_slope(y[sel], p[sel])["calibration_slope"])
    pooled = meta["calibration_slope"]
    assert pooled["k"] == 5 and pooled["ci_method"] == "hartung-knapp"
    assert slopes.min() < pooled["pooled"] < slopes.max() and pooled["tau2"] > 0  # the slopes differ
    # Hartung-Knapp by hand: weighted residual spread, t on k - 1 df.
    est, var = slopes.to_numpy(), table["calibration_slope_se"].to_numpy() ** 2
    w = 1 / (var + pooled["tau2"])
    mu = (w * est).sum() / w.sum()
    se = np.sqrt((w * (est - mu) ** 2).sum() / (4 * w.sum()))
    assert pooled["pooled"] == pytest.approx(mu)
    assert (pooled["lower"], pooled["upper"]) == pytest.approx((mu - stats.t.ppf(0.975, 4) * se,
                                                                mu + stats.t.ppf(0.975, 4) * se))
    assert "calibration_intercept" in meta and meta["auc"]["hk_lower"] < meta["auc"]["pooled"] < meta["auc"]["hk_upper"]


def _centers_data(seed: int, n: int = 1200) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    center = rng.integers(0, 5, n)
    x = rng.normal(size=n)
    shift = np.array([-0.8, -0.4, 0.0, 0.4, 0.8])
    y = rng.uniform(size=n) < expit(-1.0 + 0.8 * x + shift[center])
    return pd.DataFrame({"center": [f"c{k}" for k in center], "x": x, "died": y.astype(float)})


def test_random_intercept_model_pools_the_fixed_effects_over_the_imputed_data_sets() -> None:
    base = _centers_data(4)
    rng = np.random.default_rng(1)
    gap = rng.uniform(size=len(base)) < 0.3
    tables = []
    for _ in range(3):  # x 'imputed' differently in each data set
        d = base.copy()
        d.loc[gap, "x"] = rng.normal(size=gap.sum())
        tables.append(d)
    single = [random_intercept_model(d, ["x"], "died") for d in tables]
    pooled = random_intercept_model(tables, ["x"], "died")
    coefs = np.stack([s["fixed_effects"]["coef_random_intercept"].to_numpy() for s in single])
    ses = np.stack([s["fixed_effects"]["se_random_intercept"].to_numpy() for s in single])
    fe = pooled["fixed_effects"]
    assert pooled["m"] == 3
    np.testing.assert_allclose(fe["coef_random_intercept"], coefs.mean(axis=0))
    # Rubin's total variance: within plus (1 + 1/m) between.
    total = (ses**2).mean(axis=0) + (1 + 1 / 3) * coefs.var(axis=0, ddof=1)
    np.testing.assert_allclose(fe["se_random_intercept"], np.sqrt(total))
    assert np.isfinite(fe["dof"]).all()
    assert pooled["center_sd"] == pytest.approx(np.mean([s["center_sd"] for s in single]))
    assert pooled["center_sd_lower"] == min(s["center_sd_lower"] for s in single)
    assert pooled["center_sd_lower"] > 0  # the generated centers differ
