"""The ridge penalty of a penalized logistic model, chosen by cross-validation: the penalty, from a
log-spaced grid, whose fits on k - 1 folds give the smallest deviance on the held-out fold, summed
over the k folds of a stratified split (Steyerberg, Clinical Prediction Models, 2nd ed., 13.4;
le Cessie & van Houwelingen, Appl Stat 1992).

Hand-written beside `prognosis.logistic.ridge_logit` rather than with scikit-learn's
LogisticRegressionCV because the model must keep ridge_logit's penalty scale (per-SD coefficients,
unpenalized intercept) and its covariance, which scikit-learn does not give; each grid point starts
from the previous one's estimate, so the whole path costs a few Newton steps per penalty.
"""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import StratifiedKFold

from prognosis.logistic import ridge_logit

# Penalties tried, on standardized terms (a N(0, 1/penalty) prior on each per-SD log-odds ratio):
# from almost maximum likelihood to strong shrinkage.
PENALTY_GRID = tuple(float(v) for v in np.logspace(-2, 3, 11))
CV_FOLDS = 5


def held_out_deviance(x: np.ndarray, y: np.ndarray, penalties: tuple[float, ...] = PENALTY_GRID,
                      folds: int = CV_FOLDS, seed: int = 0) -> np.ndarray:
    """Deviance (-2 log-likelihood) on the held-out folds, summed over the folds, for each penalty."""
    k = int(min(folds, np.bincount(y.astype(int)).min()))
    if k < 2:
        raise ValueError(f"choosing a ridge penalty by cross-validation needs at least 2 patients in each outcome "
                         f"class, got {int(y.sum())} events in {len(y)}")
    if not np.all(np.diff(penalties) > 0):
        raise ValueError(f"penalty grid must be strictly increasing, got {penalties}")
    out = np.zeros(len(penalties))
    for train, test in StratifiedKFold(k, shuffle=True, random_state=seed).split(x, y.astype(int)):
        start = None
        for j, penalty in enumerate(sorted(penalties, reverse=True)):  # strong to weak: each warm-starts the next
            beta = ridge_logit(x[train], y[train], penalty, max_iter=30, tol=1e-6, start=start)[0]
            start = beta
            lp = np.clip(x[test] @ beta, -30, 30)
            out[len(penalties) - 1 - j] += -2 * float(np.sum(y[test] * lp - np.logaddexp(0.0, lp)))
    return out


def choose_ridge_penalty(x: np.ndarray, y: np.ndarray, penalties: tuple[float, ...] = PENALTY_GRID,
                         folds: int = CV_FOLDS, seed: int = 0) -> float:
    """The penalty of `penalties` with the smallest cross-validated deviance (`held_out_deviance`)."""
    return float(penalties[int(np.argmin(held_out_deviance(x, y, penalties, folds, seed)))])
