"""Proportional-odds (cumulative logit) model of the Glasgow Outcome Scale 1-5 (statsmodels OrderedModel).

Coded so that its coefficients read like the binary models': a positive coefficient (odds ratio
> 1) means a worse outcome. The model is fitted on `6 - GOS` (1 good recovery ... 5 dead); with the
generator's `P(GOS <= k) = expit(cutpoint_k + LP)` the fitted coefficients estimate LP's terms and
the thresholds are `-cutpoint_k`, in reverse order.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from scipy.special import expit
from statsmodels.miscmodels.ordinal_model import OrderedModel

from prognosis.coefficients import CoefficientModel
from prognosis.design import check_complete, design_matrix, spline_knots_for
from prognosis.rubin import rubin_pool

GOS_LEVELS = (1, 2, 3, 4, 5)


class LogitOrderedModel(OrderedModel):
    """statsmodels' proportional-odds model (logit link) with the exact score and Hessian.

    statsmodels differentiates its likelihood numerically: each gradient costs k + 4 likelihood
    evaluations and the Hessian for the standard errors about (k + 4)^2, which made an ordinal fit
    about 20 times slower than a logistic one (and the cross-validation refits the slowest part of a
    fit). The derivatives below are those of the same log-likelihood, `log(p + 1e-20)` of the
    observed category's probability, in the same parametrization (coefficients, first threshold,
    log increments of the others), so the optimizer, its start and its results are statsmodels'.
    """

    def _derivatives(self, params: np.ndarray, hessian: bool) -> tuple[np.ndarray, np.ndarray | None]:
        params = np.asarray(params, dtype=float)
        x, y = self.exog, np.asarray(self.endog, dtype=int)
        k, n_thresh = x.shape[1], self.k_levels - 1
        thresh = self.transform_threshold_params(params)  # -inf, theta_1..theta_K-1, +inf
        eta = x @ params[:k]
        upp, low = thresh[y + 1] - eta, thresh[y] - eta
        f_upp, f_low = expit(upp), expit(low)  # 1 at +inf, 0 at -inf
        d_upp, d_low = f_upp * (1 - f_upp), f_low * (1 - f_low)  # densities, 0 at +-inf
        q = np.maximum(f_upp - f_low, 0) + 1e-20
        a, b = d_upp / q, d_low / q
        # Threshold index (0-based) bounding each patient's category from above / below, if any.
        has_upp, has_low = y < n_thresh, y > 0
        u_idx, l_idx = np.where(has_upp, y, 0), np.where(has_low, y - 1, 0)
        a, b = np.where(has_upp, a, 0.0), np.where(has_low, b, 0.0)
        g_theta = (np.bincount(u_idx, weights=a, minlength=n_thresh)
                   - np.bincount(l_idx, weights=b, minlength=n_thresh))
        g_beta = x.T @ (b - a)
        # d theta / d (first threshold, log increments): theta_t = phi_0 + sum_{1 <= s <= t} exp(phi_s).
        inc = np.exp(params[k + 1:])
        jac = np.tril(np.ones((n_thresh, n_thresh))) * np.r_[1.0, inc][None, :]
        score = np.r_[g_beta, jac.T @ g_theta]
        if not hessian:
            return score, None
        # Second derivatives of log q (density derivative f' = f (1 - 2F)).
        dd_upp = np.where(has_upp, d_upp * (1 - 2 * f_upp) / q, 0.0)
        dd_low = np.where(has_low, d_low * (1 - 2 * f_low) / q, 0.0)
        h_uu, h_ll, h_ul = dd_upp - a**2, -dd_low - b**2, a * b
        h_ee = dd_upp - dd_low - (a - b) ** 2
        h_ue, h_le = -dd_upp + a * (a - b), dd_low - b * (a - b)
        one_u = (u_idx[:, None] == np.arange(n_thresh)[None, :]) & has_upp[:, None]
        one_l = (l_idx[:, None] == np.arange(n_thresh)[None, :]) & has_low[:, None]
        one_u, one_l = one_u.astype(float), one_l.astype(float)
        h_bb = x.T @ (x * h_ee[:, None])
        h_bt = x.T @ (one_u * h_ue[:, None] + one_l * h_le[:, None])
        cross = one_u.T @ (one_l * h_ul[:, None])
        h_tt = one_u.T @ (one_u * h_uu[:, None]) + one_l.T @ (one_l * h_ll[:, None]) + cross + cross.T
        h_pp = jac.T @ h_tt @ jac
        h_pp[1:, 1:] += np.diag(inc * np.cumsum(g_theta[::-1])[::-1][1:])
        h_bp = h_bt @ jac
        return score, np.block([[h_bb, h_bp], [h_bp.T, h_pp]])

    def score(self, params: np.ndarray) -> np.ndarray:
        return self._derivatives(params, hessian=False)[0]

    def hessian(self, params: np.ndarray) -> np.ndarray:
        return self._derivatives(params, hessian=True)[1]


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
        model = LogitOrderedModel(worse, x, distr="logit")
        # Start from zero coefficients and the marginal cumulative logits. Newton-Raphson on the exact
        # derivatives converges in a handful of steps (and more tightly than BFGS's gradient tolerance);
        # where it does not (a small sample lacking a level, whose threshold increment heads to 0),
        # BFGS from the same start, with its warnings counted as usual.
        start = np.zeros(x.shape[1] + 4)
        cum = np.clip(np.cumsum(np.bincount(worse.cat.codes, minlength=5))[:4] / len(worse), 1e-3, 1 - 1e-3)
        thresholds = np.log(cum / (1 - cum))
        start[x.shape[1]] = thresholds[0]
        start[x.shape[1] + 1:] = np.log(np.maximum(np.diff(thresholds), 1e-3))
        result = None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                result = model.fit(start_params=start, method="newton", disp=0, maxiter=50)
            if not (result.mle_retvals["converged"] and np.isfinite(result.params).all()
                    and np.isfinite(result.bse).all()):
                result = None
        except np.linalg.LinAlgError:
            result = None
        if result is None:
            result = model.fit(start_params=start, method="bfgs", disp=0, maxiter=1000)
        k = x.shape[1]
        self._set_coefficients(result.params.iloc[:k], result.cov_params().iloc[:k, :k])
        self._raw_params = result.params.to_numpy()
        self.thresholds_ = np.asarray(model.transform_threshold_params(result.params.to_numpy()))[1:-1]
        # statsmodels estimates (first threshold, log increments of the others); their covariance is
        # carried to the thresholds themselves by the delta method, theta = J phi with the Jacobian
        # J[t, s] = d theta_t / d phi_s (1 for the first threshold, exp(phi_s) for s <= t).
        inc = np.exp(result.params.to_numpy()[k + 1:])
        jac = np.tril(np.ones((len(inc) + 1, len(inc) + 1))) * np.r_[1.0, inc][None, :]
        self.threshold_cov_ = pd.DataFrame(jac @ result.cov_params().to_numpy()[k:, k:] @ jac.T)
        self.threshold_dof_ = np.full(len(self.thresholds_), np.inf)
        self.llf_ = float(result.llf)
        self.n_ = int(len(gos))
        self.converged_ = bool(result.mle_retvals.get("converged", True))
        return self

    def _pool_extra(self, fits: list[CoefficientModel]) -> None:
        """Cutpoints pooled like the coefficients: Rubin means, with their total (co)variance."""
        super()._pool_extra(fits)
        n = getattr(fits[0], "n_", None)
        pooled = rubin_pool(np.stack([f.thresholds_ for f in fits]),
                            np.stack([np.asarray(f.threshold_cov_) for f in fits]),
                            dof_complete=(n - len(self.params_) - len(fits[0].thresholds_)) if n else None)
        self.thresholds_ = pooled.params
        self.threshold_cov_ = pd.DataFrame(pooled.cov)
        self.threshold_dof_ = pooled.dof

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
    def cutpoint_table(self) -> pd.DataFrame:
        """The cutpoints (`cutpoint_k` of P(GOS <= k) = expit(cutpoint_k + LP), k = 1..4) with their SE and
        (1 - alpha) CI: Wald on one data set, Rubin's total variance and Barnard-Rubin df when pooled."""
        self._check_fitted()
        if not hasattr(self, "threshold_cov_"):
            raise RuntimeError("OrdinalGOSModel: cutpoint SEs are known only for a fitted model, not one read from "
                               "a spec")
        se = np.sqrt(np.diag(np.asarray(self.threshold_cov_, dtype=float)))[::-1]
        dof = np.asarray(getattr(self, "threshold_dof_", np.full(len(se), np.inf)), dtype=float)[::-1]
        crit = np.where(np.isinf(dof), stats.norm.ppf(1 - self.alpha / 2),
                        stats.t.ppf(1 - self.alpha / 2, np.where(np.isinf(dof), 1.0, dof)))
        cut = self.cutpoints_
        return pd.DataFrame({"cutpoint": [f"GOS <= {k}" for k in range(1, len(cut) + 1)], "estimate": cut,
                             "se": se, "lower": cut - crit * se, "upper": cut + crit * se, "dof": dof})

    @property
    def cutpoints_(self) -> np.ndarray:
        """The generator's parametrisation: P(GOS <= k) = expit(cutpoint_k + LP), k = 1..4."""
        return -self.thresholds_[::-1]
