"""Center effects as a sensitivity analysis: a logistic model with a random intercept per center.

statsmodels' BinomialBayesMixedGLM (variational Bayes fit, weakly informative normal priors:
fixed effects sd 2, log center SD sd 1) estimates how much baseline risk varies between centers
(the center SD on the log-odds scale, its median odds ratio) and whether the fixed effects move
once centers are allowed their own intercepts. A large center SD or moved effects say the pooled
model's risks need per-center recalibration before use elsewhere.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.genmod.bayes_mixed_glm import BinomialBayesMixedGLM

from prognosis.design import design_matrix


def random_intercept_model(df: pd.DataFrame, terms: Sequence[str], outcome: str,
                           fixed: pd.Series | None = None) -> dict[str, object]:
    """Fit outcome ~ terms + (1 | center). Returns the center SD (log-odds) with a 95% credible interval,
    the median odds ratio (Merlo et al. 2006: exp(0.6745 * sqrt(2) * SD)), per-center intercept
    deviations, and a table of fixed effects beside `fixed` (the ordinary model's coefficients)."""
    x = design_matrix(df, terms, None, "random-intercept model")
    x.insert(0, "const", 1.0)
    # Standardize the continuous columns for the variational fit (its priors are on that scale), then
    # transform back, so that the coefficients read like the ordinary model's.
    scale = x.std(ddof=0).replace(0, 1.0)
    scale["const"] = 1.0
    center = pd.get_dummies(df["center"].astype(str), dtype=float)
    y = df[outcome].astype(float).to_numpy()
    model = BinomialBayesMixedGLM(y, (x / scale).to_numpy(), center.to_numpy(), np.zeros(center.shape[1], dtype=int),
                                  vcp_p=1.0, fe_p=2.0, fep_names=list(x.columns), vcp_names=["center"],
                                  vc_names=list(center.columns))
    res = model.fit_vb()
    k = x.shape[1]
    fe = pd.Series(res.fe_mean, index=x.columns) / scale
    fe_sd = pd.Series(res.fe_sd, index=x.columns) / scale
    log_sd, log_sd_sd = float(res.vcp_mean[0]), float(res.vcp_sd[0])
    z = stats.norm.ppf(0.975)
    sd = float(np.exp(log_sd))
    table = pd.DataFrame({"coef_random_intercept": fe, "se_random_intercept": fe_sd})
    if fixed is not None:
        table["coef_ordinary"] = fixed.reindex(table.index)
        table["shift"] = table["coef_random_intercept"] - table["coef_ordinary"]
    table.index.name = "term"
    return {"center_sd": sd, "center_sd_lower": float(np.exp(log_sd - z * log_sd_sd)),
            "center_sd_upper": float(np.exp(log_sd + z * log_sd_sd)),
            "median_odds_ratio": float(np.exp(0.6745 * np.sqrt(2) * sd)),
            "center_effects": dict(zip(center.columns, (float(v) for v in res.vc_mean), strict=True)),
            "fixed_effects": table.reset_index(), "n_centers": int(center.shape[1]), "n_fixed": k}
