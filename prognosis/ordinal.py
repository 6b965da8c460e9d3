"""Proportional-odds (cumulative logit) model of the Glasgow Outcome Scale 1-5 (statsmodels OrderedModel).

Coded so that its coefficients read like the binary models': a positive coefficient (odds ratio
> 1) means a worse outcome. The model is fitted on `6 - GOS` (1 good recovery ... 5 dead); with the
generator's `P(GOS <= k) = expit(cutpoint_k + LP)` the fitted coefficients estimate LP's terms and
the thresholds are `-cutpoint_k`, in reverse order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from statsmodels.miscmodels.ordinal_model import OrderedModel

from prognosis.coefficients import CoefficientModel
from prognosis.design import check_complete, design_matrix, spline_knots_for
from prognosis.rubin import rubin_pool

GOS_LEVELS = (1, 2, 3, 4, 5)


class OrdinalGOSModel(CoefficientModel):
    """Proportional-odds model of `gos_6m` on named terms (parameters as in LogisticModel)."""

    ratio_name = "odds_ratio"

    def __init__(self, terms: Sequence[str], outcome: str = "gos_6m", age_spline_knots: int | None = None,
                 alpha: float = 0.05) -> None:
        self.terms = list(terms)
        self.outcome = outcome
        self.age_spline_knots = age_spline_knots
        self.alpha = alpha

    def design(self, df: pd.DataFrame) -> pd.DataFrame:
        return design_matrix(df, self.terms, getattr(self, "knots_", None), f"OrdinalGOSModel({self.outcome})")

    def fit(self, df: pd.DataFrame) -> OrdinalGOSModel:
        check_complete(df, [self.outcome], f"OrdinalGOSModel outcome {self.outcome!r}")
        gos = df[self.outcome].astype(int)
        if not gos.isin(GOS_LEVELS).all():
            raise ValueError(f"OrdinalGOSModel: {self.outcome!r} must be in 1-5, got {sorted(gos.unique())}")
        self.knots_ = spline_knots_for(df, self.terms, self.age_spline_knots)
        x = self.design(df)
        # All five levels are declared so that a sample lacking one still has four thresholds.
        worse = pd.Series(pd.Categorical(6 - gos.to_numpy(), categories=[1, 2, 3, 4, 5], ordered=True),
                          index=df.index)
        model = OrderedModel(worse, x, distr="logit")
        # Start from zero coefficients and the marginal cumulative logits; BFGS with the numerical
        # gradient is ~2x faster here than Newton, whose numerical Hessian dominates each step.
        start = np.zeros(x.shape[1] + 4)
        cum = np.clip(np.cumsum(np.bincount(worse.cat.codes, minlength=5))[:4] / len(worse), 1e-3, 1 - 1e-3)
        thresholds = np.log(cum / (1 - cum))
        start[x.shape[1]] = thresholds[0]
        start[x.shape[1] + 1:] = np.log(np.maximum(np.diff(thresholds), 1e-3))
        result = model.fit(start_params=start, method="bfgs", disp=0, maxiter=1000)
        k = x.shape[1]
        self._set_coefficients(result.params.iloc[:k], result.cov_params().iloc[:k, :k])
        self._raw_params = result.params.to_numpy()
        self.thresholds_ = np.asarray(model.transform_threshold_params(result.params.to_numpy()))[1:-1]
        self.threshold_cov_ = result.cov_params().iloc[k:, k:]
        self.llf_ = float(result.llf)
        self.n_ = int(len(gos))
        self.converged_ = bool(result.mle_retvals.get("converged", True))
        return self

    def _pool_extra(self, fits: list[CoefficientModel]) -> None:
        """Cutpoints pooled like the coefficients: Rubin means, with their total (co)variance."""
        super()._pool_extra(fits)
        pooled = rubin_pool(np.stack([f.thresholds_ for f in fits]),
                            np.stack([np.asarray(f.threshold_cov_) for f in fits]))
        self.thresholds_ = pooled.params
        self.threshold_cov_ = pd.DataFrame(pooled.cov)

    def to_spec(self) -> dict[str, Any]:
        """Everything needed to predict again without the data (stored in ModelFit.spec)."""
        self._check_fitted()
        return {"model_kind": "ordinal", "terms": self.terms, "outcome": self.outcome,
                "age_spline_knots": self.age_spline_knots, "knots": self.knots_, "params": self.params_.to_dict(),
                "cov": self.cov_params_.to_numpy().tolist(), "thresholds": [float(t) for t in self.thresholds_],
                "alpha": self.alpha}

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> OrdinalGOSModel:
        model = cls(spec["terms"], spec["outcome"], spec.get("age_spline_knots"), spec.get("alpha", 0.05))
        model.knots_ = spec.get("knots")
        index = pd.Index(list(spec["params"]))
        model._set_coefficients(pd.Series(spec["params"], dtype=float).reindex(index),
                                pd.DataFrame(spec["cov"], index=index, columns=index))
        model.thresholds_ = np.asarray(spec["thresholds"], dtype=float)
        return model

    def linear_predictor(self, df: pd.DataFrame) -> np.ndarray:
        self._check_fitted()
        return self.design(df).to_numpy() @ self.params_.to_numpy()

    def predict_proba(self, df: pd.DataFrame) -> pd.DataFrame:
        """Probabilities of GOS 1..5 per row (columns `gos_1`..`gos_5`)."""
        lp = self.linear_predictor(df)
        # P(worse <= j) = expit(threshold_j - LP); worse = 6 - GOS.
        cum = 1.0 / (1.0 + np.exp(-(self.thresholds_[None, :] - lp[:, None])))
        cum = np.hstack([np.zeros((len(lp), 1)), cum, np.ones((len(lp), 1))])
        p_worse = np.diff(cum, axis=1)  # worse = 1..5 -> GOS 5..1
        return pd.DataFrame(p_worse[:, ::-1], index=df.index, columns=[f"gos_{g}" for g in GOS_LEVELS])

    def predict_death(self, df: pd.DataFrame) -> np.ndarray:
        return self.predict_proba(df)["gos_1"].to_numpy()

    def predict_unfavourable(self, df: pd.DataFrame) -> np.ndarray:
        return self.predict_proba(df)[["gos_1", "gos_2", "gos_3"]].sum(axis=1).to_numpy()

    @property
    def cutpoints_(self) -> np.ndarray:
        """The generator's parametrisation: P(GOS <= k) = expit(cutpoint_k + LP), k = 1..4."""
        return -self.thresholds_[::-1]
