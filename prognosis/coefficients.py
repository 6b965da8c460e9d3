"""What every regression model here shares: a coefficient table with ratios, 95% CIs and p values.

A model sets `params_` (Series), `cov_params_` (DataFrame) and `dof_` (Series; inf for the
Wald normal reference, Rubin's degrees of freedom after multiple imputation) when it is fitted;
`summary` is then the statistician's table, as in lifelines' `summary`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from prognosis.rubin import rubin_pool


class CoefficientModel:
    """Mixin: the summary table of a fitted coefficient model and Rubin pooling of several fits."""

    ratio_name = "ratio"
    alpha: float = 0.05
    params_: pd.Series
    cov_params_: pd.DataFrame
    dof_: pd.Series

    def _check_fitted(self) -> None:
        if not hasattr(self, "params_"):
            raise RuntimeError(f"{type(self).__name__} is not fitted: call fit(df) first")

    @property
    def standard_errors_(self) -> pd.Series:
        self._check_fitted()
        return pd.Series(np.sqrt(np.diag(self.cov_params_.to_numpy())), index=self.params_.index)

    @property
    def summary(self) -> pd.DataFrame:
        """One row per term: coef, se, exp(coef) as `<ratio>`, its (1-alpha) CI, statistic and p value."""
        self._check_fitted()
        coef = self.params_
        se = self.standard_errors_
        dof = self.dof_.reindex(coef.index).fillna(np.inf).to_numpy()
        crit = np.where(np.isinf(dof), stats.norm.ppf(1 - self.alpha / 2), stats.t.ppf(1 - self.alpha / 2, dof))
        stat = (coef / se).to_numpy()
        p = np.where(np.isinf(dof), 2 * stats.norm.sf(np.abs(stat)), 2 * stats.t.sf(np.abs(stat), dof))
        lower, upper = coef.to_numpy() - crit * se.to_numpy(), coef.to_numpy() + crit * se.to_numpy()
        lo, hi = f"{self.ratio_name}_lower", f"{self.ratio_name}_upper"
        table = pd.DataFrame(
            {
                "coef": coef.to_numpy(), "se": se.to_numpy(), "coef_lower": lower, "coef_upper": upper,
                self.ratio_name: np.exp(coef.to_numpy()), lo: np.exp(lower), hi: np.exp(upper),
                "statistic": stat, "p": p, "dof": dof,
            },
            index=coef.index,
        )
        table.index.name = "term"
        return table

    def _set_coefficients(self, params: pd.Series, cov: pd.DataFrame, dof: pd.Series | None = None) -> None:
        self.params_ = params
        self.cov_params_ = cov
        self.dof_ = dof if dof is not None else pd.Series(np.inf, index=params.index)

    def pool_from(self, fits: list[CoefficientModel]) -> CoefficientModel:
        """Make this model the Rubin-pooled combination of fits on m imputed data sets; returns self.

        The fits' other learned attributes (terms, knots, thresholds layout) are taken from the first.
        """
        if not fits:
            raise ValueError("pool_from: no fits to pool")
        index = fits[0].params_.index
        for f in fits[1:]:
            if not f.params_.index.equals(index):
                raise ValueError("pool_from: the fits do not have the same parameters")
        knots = getattr(fits[0], "knots_", None)
        if any(getattr(f, "knots_", None) != knots for f in fits[1:]):
            raise ValueError("pool_from: the fits have different spline knots, so their coefficients belong to "
                             "different bases; fit every imputed data set with the same knots (pass the knot "
                             "values as age_spline_knots)")
        n = getattr(fits[0], "n_", None)
        pooled = rubin_pool(
            np.stack([f.params_.to_numpy() for f in fits]), np.stack([f.cov_params_.to_numpy() for f in fits]),
            dof_complete=(n - len(index)) if n else None,
        )
        # Structural attributes (terms, spline knots: the same in every fit) come from the first fit;
        # every estimated quantity is pooled below or by the subclass's `_pool_extra`, never copied.
        for key, value in vars(fits[0]).items():
            if key.endswith("_") and not key.startswith("_") and key not in self._per_imputation:
                setattr(self, key, value)
        for key in ("llf_", "concordance_"):
            if all(hasattr(f, key) for f in fits):
                setattr(self, key, float(np.mean([getattr(f, key) for f in fits])))  # mean over imputations
        self._set_coefficients(
            pd.Series(pooled.params, index=index),
            pd.DataFrame(pooled.cov, index=index, columns=index),
            pd.Series(pooled.dof, index=index),
        )
        self.fmi_ = pd.Series(pooled.fmi, index=index)
        self.riv_ = pd.Series(pooled.riv, index=index)
        self.lambda_ = pd.Series(pooled.lam, index=index)
        self.n_imputations_ = pooled.m
        self._pool_extra(fits)
        return self

    # Attributes estimated separately on each imputed data set: never copied from the first fit.
    _per_imputation: tuple[str, ...] = ("params_", "cov_params_", "dof_", "llf_", "concordance_", "thresholds_",
                                        "threshold_cov_", "threshold_dof_", "fitter_", "baseline_", "estimation_",
                                        "converged_")

    def _pool_extra(self, fits: list[CoefficientModel]) -> None:
        """Pool the model's other estimated parameters (cutpoints, baseline hazard); none here."""
        self.converged_ = all(getattr(f, "converged_", True) for f in fits)
        notes = [f.estimation_ for f in fits if getattr(f, "estimation_", {}).get("method", "maximum likelihood")
                 != "maximum likelihood"]
        self.estimation_ = notes[0] if notes else {"method": "maximum likelihood"}
        if notes and notes[0].get("method") == "firth":
            # Which imputed data sets separated (numbered from 1) and on which terms: the others kept
            # maximum likelihood, and the pooled estimate combines both.
            firth = [i + 1 for i, f in enumerate(fits) if getattr(f, "estimation_", {}).get("method") == "firth"]
            terms = sorted({t for f in fits for t in getattr(f, "estimation_", {}).get("terms", [])})
            self.estimation_ = {**notes[0], "terms": terms, "data_sets": firth, "n_data_sets": len(fits)}
        penalties = [f.estimation_["penalty"] for f in fits if "penalty" in getattr(f, "estimation_", {})]
        if notes and len(penalties) == len(fits) and len(fits) > 1:
            self.estimation_ = {**notes[0], "penalty": float(np.median(penalties)),
                                "penalty_by_imputation": penalties}
