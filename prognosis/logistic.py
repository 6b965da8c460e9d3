"""Logistic regression for a binary 6-month outcome (death, unfavourable GOS 1-3), via statsmodels.

Odds ratios with Wald 95% CIs; `predict_interval` gives a patient's risk with an interval from the
coefficient covariance on the logit scale (delta method), which is what the dashboard's risk
calculator shows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import stats
from scipy.special import expit

from prognosis.coefficients import CoefficientModel
from prognosis.design import check_complete, design_matrix, spline_knots_for

OUTCOME_COLUMNS = {"mortality": "died", "unfavourable": "unfavourable"}


class LogisticModel(CoefficientModel):
    """Binary logistic model on named terms.

    Parameters: `terms` (design-term names of prognosis.terms), `outcome` (a 0/1 column of the
    analysis table, e.g. `died` or `unfavourable`), `age_spline_knots` (None for linear age, or 3-5
    for a restricted cubic spline of age with knots at Harrell's quantiles), `alpha` for the CIs.
    """

    ratio_name = "odds_ratio"

    def __init__(self, terms: Sequence[str], outcome: str = "died", age_spline_knots: int | None = None,
                 alpha: float = 0.05) -> None:
        self.terms = list(terms)
        self.outcome = outcome
        self.age_spline_knots = age_spline_knots
        self.alpha = alpha

    def design(self, df: pd.DataFrame) -> pd.DataFrame:
        """The design matrix with intercept (`const`) for rows of df, using the fitted spline knots."""
        x = design_matrix(df, self.terms, getattr(self, "knots_", None), f"{type(self).__name__}({self.outcome})")
        x.insert(0, "const", 1.0)
        return x

    def fit(self, df: pd.DataFrame, start_params: np.ndarray | None = None) -> LogisticModel:
        check_complete(df, [self.outcome], f"LogisticModel outcome {self.outcome!r}")
        y = df[self.outcome].astype(float).to_numpy()
        if not np.isin(y, (0.0, 1.0)).all():
            raise ValueError(f"LogisticModel: outcome column {self.outcome!r} must be 0/1")
        if y.min() == y.max():
            raise ValueError(f"LogisticModel: outcome column {self.outcome!r} has a single class in {len(y)} rows")
        self.knots_ = spline_knots_for(df, self.terms, self.age_spline_knots)
        x = self.design(df)
        result = sm.Logit(y, x).fit(method="newton", disp=0, maxiter=50, start_params=start_params)
        self._set_coefficients(result.params, result.cov_params())
        self.llf_ = float(result.llf)
        self.n_ = int(len(y))
        self.n_events_ = int(y.sum())
        self.converged_ = bool(result.mle_retvals.get("converged", True))
        return self

    def linear_predictor(self, df: pd.DataFrame) -> np.ndarray:
        self._check_fitted()
        return self.design(df).to_numpy() @ self.params_.to_numpy()

    def predict_proba(self, df: pd.DataFrame) -> np.ndarray:
        """Predicted probability of the outcome for each row."""
        return expit(self.linear_predictor(df))

    def predict_interval(self, df: pd.DataFrame, alpha: float | None = None) -> pd.DataFrame:
        """Risk with its (1-alpha) interval per row: Wald on the logit scale from the coefficient covariance."""
        self._check_fitted()
        x = self.design(df).to_numpy()
        lp = x @ self.params_.to_numpy()
        se = np.sqrt(np.einsum("ij,jk,ik->i", x, self.cov_params_.to_numpy(), x))
        z = stats.norm.ppf(1 - (alpha or self.alpha) / 2)
        return pd.DataFrame({"risk": expit(lp), "lower": expit(lp - z * se), "upper": expit(lp + z * se)},
                            index=df.index)

    def bootstrap_risks(self, df: pd.DataFrame, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Refit on each resample (rows of `indices`) and return the risks it predicts on its resample
        and on all rows of df: (n_boot, n) arrays each. Fast path of Harrell's optimism bootstrap."""
        self._check_fitted()
        x = self.design(df).to_numpy()
        y = df[self.outcome].astype(float).to_numpy()
        start = self.params_.to_numpy()
        on_sample, on_all = np.empty(indices.shape), np.empty((len(indices), len(y)))
        for b, rows in enumerate(indices):
            beta = newton_logit(x[rows], y[rows], start)
            on_sample[b] = expit(x[rows] @ beta)
            on_all[b] = expit(x @ beta)
        return on_sample, on_all

    def to_spec(self) -> dict[str, Any]:
        """Everything needed to predict again without the data (stored in ModelFit.spec)."""
        self._check_fitted()
        return {
            "model_kind": "logistic", "terms": self.terms, "outcome": self.outcome,
            "age_spline_knots": self.age_spline_knots, "knots": self.knots_,
            "params": self.params_.to_dict(), "cov": self.cov_params_.to_numpy().tolist(),
            "dof": [None if np.isinf(v) else float(v) for v in self.dof_], "alpha": self.alpha,
        }

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> LogisticModel:
        """The fitted model stored by `to_spec` (e.g. from a ModelFit row), ready to predict."""
        model = cls(spec["terms"], spec["outcome"], spec.get("age_spline_knots"), spec.get("alpha", 0.05))
        model.knots_ = spec.get("knots")
        index = pd.Index(list(spec["params"]))
        dof = pd.Series([np.inf if v is None else v for v in spec.get("dof", [None] * len(index))], index=index)
        model._set_coefficients(pd.Series(spec["params"], dtype=float).reindex(index),
                                pd.DataFrame(spec["cov"], index=index, columns=index), dof)
        return model


def newton_logit(x: np.ndarray, y: np.ndarray, start: np.ndarray, max_iter: int = 25, tol: float = 1e-8) -> np.ndarray:
    """Maximum-likelihood logistic coefficients by Newton-Raphson from `start`.

    Hand-written for the bootstrap only: from the full-data estimate a resample converges in 3-4
    steps of one small linear solve each, while each statsmodels fit also pays its model set-up
    (a rank-revealing QR, wrappers), several times the cost of the steps themselves.
    """
    beta = start.astype(float).copy()
    for _ in range(max_iter):
        p = expit(x @ beta)
        w = p * (1 - p)
        hessian, score = (x * w[:, None]).T @ x, x.T @ (y - p)
        try:
            step = np.linalg.solve(hessian, score)
        except np.linalg.LinAlgError:
            # A resample of a small study can miss a rare category entirely (say GCS motor 2): that
            # coefficient is then not identified. The least-squares step leaves it where it started
            # and still fits the others, instead of failing the whole bootstrap.
            step = np.linalg.lstsq(hessian, score, rcond=None)[0]
        beta += step
        if np.max(np.abs(step)) < tol:
            break
    return beta


def predict_patient(model_spec: dict[str, Any], patient: dict[str, Any], alpha: float = 0.05) -> dict[str, float]:
    """Risk of one patient with its (1-alpha) interval from a stored fit (`ModelFit.spec["model"]`).

    `patient` holds raw values by analysis-table name (age, gcs_motor, pupils_unreactive, hypoxia, ...,
    adm_hematoma_ml, peak_edema_ml, ...); the design terms are derived as for fitting.
    """
    from prognosis.terms import design_terms

    model = LogisticModel.from_spec(model_spec)
    terms = design_terms(pd.DataFrame([patient]))
    row = model.predict_interval(terms, alpha).iloc[0]
    return {"risk": float(row["risk"]), "lower": float(row["lower"]), "upper": float(row["upper"])}
