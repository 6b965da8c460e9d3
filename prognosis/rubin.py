"""Rubin's rules: pooling estimates from m multiply imputed data sets.

Rubin DB. Multiple Imputation for Nonresponse in Surveys. Wiley, 1987 (pp. 76-77). Hand-written
because it is a few lines and neither statsmodels nor scikit-learn pools arbitrary fitted
models (statsmodels' MICE pools only its own OLS/GLM fits, not OrderedModel or lifelines Cox).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats as _stats


@dataclass(frozen=True)
class PooledEstimates:
    params: np.ndarray  # Q-bar, the mean of the m estimates
    cov: np.ndarray  # T = W + (1 + 1/m) B, the total (co)variance
    dof: np.ndarray  # Rubin's degrees of freedom per parameter (Barnard-Rubin when the complete-data df is known)
    fmi: np.ndarray  # fraction of missing information per parameter, (r + 2/(df + 3)) / (r + 1)
    m: int
    riv: np.ndarray | None = None  # relative increase in variance due to nonresponse, (1 + 1/m) B / W (mice `riv`)
    lam: np.ndarray | None = None  # proportion of the total variance due to nonresponse, (1 + 1/m) B / T (`lambda`)


def rubin_pool(estimates: np.ndarray, covariances: np.ndarray, dof_complete: float | None = None) -> PooledEstimates:
    """Pool m parameter vectors (m, k) and their covariance matrices (m, k, k) by Rubin's rules.

    With `dof_complete` (the complete-data degrees of freedom, n - k), the degrees of freedom take
    the Barnard-Rubin small-sample correction (Biometrika 1999), which keeps them below n - k, and
    the fraction of missing information is `(r + 2 / (df + 3)) / (r + 1)` (van Buuren 2018, 2.3.6);
    without it, the large-sample forms."""
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
        if dof_complete is not None and dof_complete > 0:
            lam = np.where(t_diag > 0, (1.0 + 1.0 / m) * b_diag / t_diag, 0.0)
            dof_obs = (dof_complete + 1) / (dof_complete + 3) * dof_complete * (1 - lam)
            dof = np.where(b_diag > 0, 1.0 / (1.0 / dof + 1.0 / dof_obs), dof_obs)
        finite = np.where(np.isfinite(dof), dof, 1e12)
        fmi = np.where(b_diag > 0, (r + 2.0 / (finite + 3.0)) / (r + 1.0), 0.0)
        lam_all = np.where(t_diag > 0, (1.0 + 1.0 / m) * b_diag / t_diag, 0.0)
    return PooledEstimates(params=q_bar, cov=t, dof=dof, fmi=fmi, m=m, riv=np.where(b_diag > 0, r, 0.0), lam=lam_all)


def d2_pooled_chisq(statistics: np.ndarray | list[float], df: int) -> dict[str, float]:
    """Pool m chi-square statistics of the same test on m imputed data sets: D2 of Li, Meng,
    Raghunathan & Rubin (Stat Sinica 1991), with its F reference (van Buuren 2018, 5.3.3).
    Used where only the statistics exist (the proportional-hazards test); one statistic passes through."""
    d = np.asarray(statistics, dtype=float)
    m = len(d)
    if m == 1:
        return {"statistic": float(d[0]), "df1": df, "df2": float("inf"), "p": float(_stats.chi2.sf(d[0], df)), "m": 1}
    root = np.sqrt(np.clip(d, 0, None))
    r2 = (1 + 1 / m) * root.var(ddof=1)
    stat = (d.mean() / df - (m + 1) / (m - 1) * r2) / (1 + r2)
    stat = max(0.0, float(stat))
    df2 = df ** (-3 / m) * (m - 1) * (1 + 1 / r2) ** 2 if r2 > 0 else float("inf")
    p = float(_stats.f.sf(stat, df, df2)) if np.isfinite(df2) else float(_stats.chi2.sf(stat * df, df))
    return {"statistic": stat, "df1": df, "df2": float(df2), "p": p, "m": m}
