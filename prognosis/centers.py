"""Center effects as a sensitivity analysis: a logistic model with a random intercept per center.

The maximum-likelihood fit of `prognosis.random_intercept` (Laplace, as lme4's glmer) estimates how
much baseline risk varies between centers (the center SD on the log-odds scale, with a profile-
likelihood interval that may reach 0, and its median odds ratio) and whether the fixed effects move
once centers are allowed their own intercepts. A large center SD or moved effects say the pooled
model's risks need per-center recalibration before use elsewhere. Over m imputed data sets the fixed
effects are pooled by Rubin's rules and the center SD is their mean.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from prognosis.design import design_matrix
from prognosis.random_intercept import RandomInterceptFit, fit_random_intercept
from prognosis.rubin import rubin_pool

# Merlo et al., J Epidemiol Community Health 2006: MOR = exp(sqrt(2) * z_0.75 * SD).
_MOR_FACTOR = 0.6745 * np.sqrt(2)


def _fit_one(df: pd.DataFrame, terms: Sequence[str], outcome: str,
             centers: list[str]) -> tuple[pd.DataFrame, RandomInterceptFit]:
    x = design_matrix(df, terms, None, "random-intercept model")
    x.insert(0, "const", 1.0)
    y = df[outcome].astype(float).to_numpy()
    code = pd.Categorical(df["center"].astype(str), categories=centers).codes
    return x, fit_random_intercept(x.to_numpy(), y, code)


def random_intercept_model(df: pd.DataFrame | Sequence[pd.DataFrame], terms: Sequence[str], outcome: str,
                           fixed: pd.Series | None = None) -> dict[str, object]:
    """Fit outcome ~ terms + (1 | center) on one data set or on each of m imputed ones.

    Returns the center SD (log-odds) with its 95% profile-likelihood interval, the median odds ratio,
    per-center intercept deviations (conditional modes), and a table of fixed effects (coefficient,
    SE, Rubin df over m > 1) beside `fixed` (the ordinary model's coefficients). Over m data sets the
    SD is the mean of the m estimates and its interval runs from the smallest to the largest of the
    m profile bounds, which keeps the imputations' disagreement in it.
    """
    tables = [df] if isinstance(df, pd.DataFrame) else list(df)
    if not tables:
        raise ValueError("random_intercept_model: no data sets given")
    centers = sorted({str(c) for t in tables for c in t["center"].unique()})
    if len(centers) < 2:
        raise ValueError(f"random_intercept_model: needs at least 2 centers, got {centers}")
    fits, x = [], None
    for t in tables:
        x, fit = _fit_one(t, terms, outcome, centers)
        fits.append(fit)
    columns = x.columns  # type: ignore[union-attr]
    pooled = rubin_pool(np.stack([f.params for f in fits]), np.stack([f.cov for f in fits]),
                        dof_complete=len(tables[0]) - len(columns) - 1 if len(fits) > 1 else None)
    sd = float(np.mean([f.sigma for f in fits]))
    table = pd.DataFrame({"coef_random_intercept": pooled.params, "se_random_intercept": np.sqrt(np.diag(pooled.cov)),
                          "dof": pooled.dof}, index=columns)
    if fixed is not None:
        table["coef_ordinary"] = fixed.reindex(table.index)
        table["shift"] = table["coef_random_intercept"] - table["coef_ordinary"]
    table.index.name = "term"
    effects = np.mean([f.modes for f in fits], axis=0)
    return {"center_sd": sd, "center_sd_lower": float(min(f.sigma_lower for f in fits)),
            "center_sd_upper": float(max(f.sigma_upper for f in fits)),
            "center_sd_by_imputation": [float(f.sigma) for f in fits],
            "median_odds_ratio": float(np.exp(_MOR_FACTOR * sd)),
            "center_effects": dict(zip(centers, (float(v) for v in effects), strict=True)),
            "fixed_effects": table.reset_index(), "n_centers": len(centers), "n_fixed": len(columns),
            "m": len(fits), "method": "maximum likelihood (Laplace), profile-likelihood interval for the SD",
            "converged": all(f.converged for f in fits)}
