"""The optimism-corrected calibration curve of a logistic model (as rms `calibrate`, Harrell 2015,
10.11): the apparent curve of observed against predicted risk, minus the mean over bootstrap refits
of (curve on the refit's resample - curve on the original data), at a grid of predicted risks.

The curve is a flexible logistic recalibration, y ~ 1 + lp + a restricted cubic spline term of the
linear predictor (3 knots at the apparent predictions' 10th, 50th and 90th centiles; Austin &
Steyerberg, Stat Med 2014), where rms smooths with lowess: the spline form is fitted for all
replicates at once by batched Newton steps, from the risk matrices Harrell's bootstrap has already
computed (`validation.bootstrap_optimism`), so the curve costs no refit and one small solve per step.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import expit

from prognosis.validate_indexes import RISK_FLOOR

GRID_POINTS = 50


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, RISK_FLOOR, 1 - RISK_FLOOR)
    return np.log(p / (1 - p))


def _basis(lp: np.ndarray, knots: np.ndarray) -> np.ndarray:
    """[1, lp, rcs(lp)] with Harrell's one non-linear term for 3 knots, scaled like prognosis.terms'."""
    t = knots
    scale = (t[2] - t[0]) ** 2

    def cube(v: np.ndarray) -> np.ndarray:
        return np.maximum(v, 0.0) ** 3

    rcs = (cube(lp - t[0]) - cube(lp - t[1]) * (t[2] - t[0]) / (t[2] - t[1])
           + cube(lp - t[2]) * (t[1] - t[0]) / (t[2] - t[1])) / scale
    return np.stack([np.ones_like(lp), lp, rcs], axis=-1)


def calibration_curves(y: np.ndarray, p: np.ndarray, grid: np.ndarray, knots: np.ndarray,
                       ridge: float = 1e-6) -> np.ndarray:
    """Observed risk at each `grid` risk of each row of (outcome, risk) matrices: the spline
    recalibration fitted row by row by batched Newton steps (capped, as a separated replicate's
    extreme logits make the first steps overshoot); (rows, len(grid))."""
    y = np.atleast_2d(np.asarray(y, dtype=float))
    x = _basis(_logit(np.atleast_2d(p)), knots)  # (rows, n, 3)
    coef = np.zeros((len(y), 3))
    coef[:, 1] = 1.0
    for _ in range(100):
        q = expit(np.einsum("rnk,rk->rn", x, coef))
        w = np.maximum(q * (1 - q), 1e-12)
        gradient = np.einsum("rnk,rn->rk", x, y - q)
        info = np.einsum("rnk,rn,rnl->rkl", x, w, x) + ridge * np.eye(3)
        step = np.linalg.solve(info, gradient[..., None])[..., 0]
        step *= np.minimum(1.0, 2.0 / np.maximum(np.abs(step).max(axis=1, keepdims=True), 1e-300))
        coef += step
        if np.nanmax(np.abs(step)) < 1e-8:
            break
    return expit(np.einsum("gk,rk->rg", _basis(_logit(grid), knots), coef))


def corrected_calibration_curve(apparent: list[tuple[np.ndarray, np.ndarray]], y_boot: np.ndarray,
                                p_boot: np.ndarray, y_orig: np.ndarray, p_orig: np.ndarray) -> pd.DataFrame:
    """rms `calibrate`'s table: predicted risk (grid), apparent and bias-corrected observed risk, and the
    optimism, from the full model's (outcome, risk) on each completed data set (`apparent`) and the
    bootstrap refits' risks on their resamples and on the original data."""
    p_all = np.concatenate([p for _, p in apparent])
    knots = np.quantile(_logit(p_all), [0.1, 0.5, 0.9])
    if not np.all(np.diff(knots) > 0):
        raise ValueError("calibration curve: the predicted risks take too few distinct values for a spline")
    grid = np.linspace(*np.quantile(p_all, [0.01, 0.99]), GRID_POINTS)
    app = np.mean([calibration_curves(y, p, grid, knots)[0] for y, p in apparent], axis=0)
    optimism = np.nanmean(calibration_curves(y_boot, p_boot, grid, knots)
                          - calibration_curves(y_orig, p_orig, grid, knots), axis=0)
    return pd.DataFrame({"predicted": grid, "apparent": app, "optimism": optimism,
                         "corrected": np.clip(app - optimism, 0.0, 1.0)})
