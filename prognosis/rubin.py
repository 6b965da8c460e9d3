"""Rubin's rules: pooling estimates from m multiply imputed data sets.

Rubin DB. Multiple Imputation for Nonresponse in Surveys. Wiley, 1987 (pp. 76-77). Hand-written
because it is a few lines and neither statsmodels nor scikit-learn pools arbitrary fitted
models (statsmodels' MICE pools only its own OLS/GLM fits, not OrderedModel or lifelines Cox).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PooledEstimates:
    params: np.ndarray  # Q-bar, the mean of the m estimates
    cov: np.ndarray  # T = W + (1 + 1/m) B, the total (co)variance
    dof: np.ndarray  # Rubin's degrees of freedom per parameter (inf when there is no between-imputation variance)
    fmi: np.ndarray  # fraction of missing information per parameter (large-sample form: (1 + 1/m) B / T)
    m: int


def rubin_pool(estimates: np.ndarray, covariances: np.ndarray) -> PooledEstimates:
    """Pool m parameter vectors (m, k) and their covariance matrices (m, k, k) by Rubin's rules."""
    q = np.asarray(estimates, dtype=float)
    u = np.asarray(covariances, dtype=float)
    if q.ndim != 2 or u.shape != (q.shape[0], q.shape[1], q.shape[1]):
        raise ValueError(f"rubin_pool: estimates (m, k) and covariances (m, k, k) expected, got {q.shape}, {u.shape}")
    m = q.shape[0]
    q_bar = q.mean(axis=0)
    w = u.mean(axis=0)
    b = np.cov(q, rowvar=False, ddof=1).reshape(q.shape[1], q.shape[1]) if m > 1 else np.zeros_like(w)
    t = w + (1.0 + 1.0 / m) * b
    b_diag, t_diag = np.diag(b), np.diag(t)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = (1.0 + 1.0 / m) * b_diag / np.diag(w)  # relative increase in variance due to nonresponse
        dof = np.where(b_diag > 0, (m - 1) * (1.0 + 1.0 / r) ** 2, np.inf)
        fmi = np.where(t_diag > 0, (1.0 + 1.0 / m) * b_diag / t_diag, 0.0)
    return PooledEstimates(params=q_bar, cov=t, dof=dof, fmi=fmi, m=m)
