"""The indexes of rms `validate` for a logistic model, row by row (one row per bootstrap replicate),
with rms's definitions (Harrell, rms `validate.lrm`, its `discrim` function):

- On the sample a model was fitted on (the apparent and the training indexes) the model is taken as
  it is: intercept 0, slope 1, R² from its likelihood-ratio statistic, U = -2/n.
- On a test sample (the original data, for a replicate's refit) the linear predictor is first
  recalibrated on that sample (y ~ a + b * lp): intercept a, slope b, R² and D from the
  recalibrated likelihood ratio, U from the deviance the recalibration removes, g from b * lp.

R² is therefore Nagelkerke's R² of a fitted logistic model on every sample, and stays within
[0, 1] however badly a separated replicate predicts the original data (its misfit shows in the
slope, U and Q instead). Hand-written and vectorized over replicates because the bootstrap scores
hundreds of replicates at once; tests/prognosis/test_r_parity_validate.py checks it against rms.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit

from prognosis.metrics import rowwise_aucs

VALIDATE_INDEXES = ("auc", "r2_nagelkerke", "calibration_intercept", "calibration_slope", "D", "U", "Q", "brier",
                    "g")
# Indexes with a fixed range: their optimism-corrected value is held inside it (rms leaves a corrected
# R² below 0 as it comes; a negative share of explained variation is reported as 0 and flagged).
INDEX_RANGES = {"auc": (0.0, 1.0), "r2_nagelkerke": (0.0, 1.0), "brier": (0.0, 1.0), "emax": (0.0, 1.0)}
# Risks are held within [1e-9, 1 - 1e-9] (a linear predictor within about ±20.7): a replicate that
# separates predicts risks of exactly 0 or 1, whose log-likelihood would otherwise be infinite.
RISK_FLOOR = 1e-9
LP_LIMIT = float(np.log((1 - RISK_FLOOR) / RISK_FLOOR))


def gini_mean_difference(x: np.ndarray) -> np.ndarray:
    """Gini's mean difference of each row (mean |x_i - x_j| over pairs; Hmisc `GiniMd`)."""
    s = np.sort(np.asarray(x, dtype=float), axis=1)
    n = s.shape[1]
    weights = 2 * np.arange(1, n + 1) - n - 1
    return 2 * (s * weights).sum(axis=1) / (n * (n - 1))


def _loglik(y: np.ndarray, lp: np.ndarray) -> np.ndarray:
    return (y * lp - np.logaddexp(0.0, lp)).sum(axis=1)


def recalibration(y: np.ndarray, lp: np.ndarray) -> np.ndarray:
    """(intercept, slope) of the logistic recalibration y ~ a + b * lp of each row, by batched Newton
    steps from (0, 1), each step capped at 1 in its largest component (from a separated replicate's
    extreme logits an undamped step overshoots)."""
    coef = np.tile(np.array([0.0, 1.0]), (len(y), 1))
    for _ in range(100):
        q = expit(coef[:, :1] + coef[:, 1:] * lp)
        w = np.maximum(q * (1 - q), 1e-12)
        g = np.stack([(y - q).sum(1), ((y - q) * lp).sum(1)], axis=1)
        wl = (w * lp).sum(1)
        h = np.stack([np.stack([w.sum(1), wl], 1), np.stack([wl, (w * lp * lp).sum(1)], 1)], 1)
        step = np.linalg.solve(h + 1e-10 * np.eye(2), g[..., None])[..., 0]
        step *= np.minimum(1.0, 1.0 / np.maximum(np.abs(step).max(axis=1, keepdims=True), 1e-300))
        coef += step
        if np.nanmax(np.abs(step)) < 1e-9:
            break
    return coef


def validate_indexes(y: np.ndarray, p: np.ndarray, recalibrate: bool) -> dict[str, np.ndarray]:
    """rms `validate` indexes of each row of (outcome, risk) matrices: AUC (= (Dxy + 1) / 2), Nagelkerke
    R², intercept, slope, discrimination D, unreliability U, quality Q = D - U, Brier score B and the
    g-index. `recalibrate` False scores the model on the sample it was fitted on (rms `evalfit`),
    True on a test sample (see the module docstring)."""
    y = np.atleast_2d(np.asarray(y, dtype=float))
    p = np.clip(np.atleast_2d(np.asarray(p, dtype=float)), RISK_FLOOR, 1 - RISK_FLOOR)
    lp = np.log(p / (1 - p))
    n = y.shape[1]
    ybar = np.clip(y.mean(axis=1), 1e-12, 1 - 1e-12)
    ll0 = n * (ybar * np.log(ybar) + (1 - ybar) * np.log(1 - ybar))
    ll_model = _loglik(y, lp)
    if recalibrate:
        coef = recalibration(y, lp)
        intercept, slope = coef[:, 0], coef[:, 1]
        ll_recal = _loglik(y, intercept[:, None] + slope[:, None] * lp)
        lr = np.maximum(2 * (ll_recal - ll0), 0.0)
        unreliability = (2 * (ll_recal - ll_model) - 2) / n
    else:
        intercept, slope = np.zeros(len(y)), np.ones(len(y))
        lr = 2 * (ll_model - ll0)
        unreliability = np.full(len(y), -2 / n)
    r2 = (1 - np.exp(-lr / n)) / (1 - np.exp(2 * ll0 / n))
    d = (lr - 1) / n
    return {"auc": rowwise_aucs(y, p), "r2_nagelkerke": r2, "calibration_intercept": intercept,
            "calibration_slope": slope, "D": d, "U": unreliability, "Q": d - unreliability,
            "brier": ((p - y) ** 2).mean(axis=1), "g": gini_mean_difference(slope[:, None] * lp)}


def emax(intercept: float, slope: float) -> float:
    """rms's Emax: the largest absolute difference, over predicted risks 0-1 (step 0.0005), between a
    risk and its value after the (optimism-corrected) recalibration intercept + slope * logit."""
    grid = np.linspace(0.0, 1.0, 2001)
    with np.errstate(divide="ignore"):
        logits = np.log(grid) - np.log1p(-grid)  # ±inf at 0 and 1, as in rms
        calibrated = expit(intercept + slope * logits)
    return float(np.nanmax(np.abs(grid - calibrated)))
