"""Logistic regression for a binary 6-month outcome (death, unfavourable GOS 1-3): maximum likelihood
by Newton-Raphson exactly as statsmodels' Logit fits it (`ml_logit`); under separation, where the
maximum-likelihood estimate is infinite, Firth's penalized likelihood (`firth_logit`); where a term cannot
be estimated at all (a category nobody in the rows has), a weak ridge.

Odds ratios with Wald 95% CIs; `predict_interval` gives a patient's risk with an interval from the
coefficient covariance on the logit scale (delta method), which is what the dashboard's risk
calculator shows.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from scipy.special import expit
from statsmodels.tools.sm_exceptions import ConvergenceWarning, PerfectSeparationWarning

from prognosis.coefficients import CoefficientModel
from prognosis.design import check_complete, design_matrix, spline_knots_for

OUTCOME_COLUMNS = {"mortality": "died", "unfavourable": "unfavourable"}


class LogisticModel(CoefficientModel):
    """Binary logistic model on named terms.

    Parameters: `terms` (design-term names of prognosis.terms), `outcome` (a 0/1 column of the
    analysis table, e.g. `died` or `unfavourable`), `age_spline_knots` (None for linear age, 3-5 for a
    restricted cubic spline of age with knots at Harrell's quantiles of the fitted data, or the knot
    values themselves), `alpha` for the CIs,
    `penalty` None for maximum likelihood, "cv" for ridge (L2) penalized likelihood with its penalty
    chosen by cross-validation (`prognosis.ridge_penalty`), what a model with few events per
    parameter is fitted with, or a number: ridge with that penalty (how the validation refits such a
    model, with the penalty chosen on the data held fixed, as rms `validate` refits a penalized `lrm`).
    """

    ratio_name = "odds_ratio"

    def __init__(self, terms: Sequence[str], outcome: str = "died", age_spline_knots: int | None = None,
                 alpha: float = 0.05, penalty: str | float | None = None) -> None:
        if not (penalty is None or penalty == "cv" or (isinstance(penalty, int | float) and penalty >= 0)):
            raise ValueError(f"LogisticModel: penalty must be None, 'cv' or a number >= 0, got {penalty!r}")
        self.terms = list(terms)
        self.outcome = outcome
        self.age_spline_knots = age_spline_knots
        self.alpha = alpha
        self.penalty = penalty

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
        self.n_ = int(len(y))
        self.n_events_ = int(y.sum())
        unidentified = unidentified_terms(x)
        self.estimation_ = {"method": "maximum likelihood"}
        if self.penalty is not None:
            from prognosis.ridge_penalty import choose_ridge_penalty  # it builds on ridge_logit below

            chosen = self.penalty == "cv"
            penalty = choose_ridge_penalty(x.to_numpy(), y) if chosen else float(self.penalty)
            params, cov, llf = ridge_logit(x.to_numpy(), y, penalty)
            self._set_coefficients(pd.Series(params, index=x.columns),
                                   pd.DataFrame(cov, index=x.columns, columns=x.columns))
            self.llf_, self.converged_ = llf, True
            self.estimation_ = {"method": "ridge", "penalty": penalty, "terms": [],
                                "penalty_chosen_by": "cv" if chosen else "fixed",
                                "reason": "penalty chosen by cross-validation" if chosen else "penalty given"}
            return self
        if not unidentified:
            try:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    params, cov, llf, converged = ml_logit(x.to_numpy(), y, start_params)
                separated = any(issubclass(w.category, PerfectSeparationWarning) for w in caught) or not converged
                for w in caught:  # passed on to the fit record's optimizer-warning count, unless Firth takes over
                    if not separated:
                        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
                if separated:
                    reason = ("maximum likelihood does not converge: the estimate is infinite (separation)"
                              if not converged else "perfect prediction (separation)")
                elif np.isfinite(cov).all() and np.isfinite(params).all():
                    self._set_coefficients(pd.Series(params, index=x.columns),
                                           pd.DataFrame(cov, index=x.columns, columns=x.columns))
                    self.llf_ = llf
                    self.converged_ = converged
                    return self
                else:
                    reason = "the information matrix is not invertible (separation or collinearity)"
            except np.linalg.LinAlgError as exc:
                reason = f"maximum likelihood failed ({type(exc).__name__}: {exc})"
            separating = separating_terms(x, y)
            reason += "; " + ("; ".join(f"{t}: {why}" for t, why in separating.items()) if separating
                              else "separation or near-collinearity")
            return self._fit_firth(x, y, list(separating), reason)
        else:
            reason = "; ".join(f"{term}: {why}" for term, why in unidentified.items())
        # A small sample (a 60-patient study, one cross-validation fold of it) can lack a category
        # entirely (no patient with GCS motor 2): that coefficient is not identified by any likelihood,
        # Firth's included (its information matrix is singular). A weak ridge penalty on the
        # standardized terms (what a N(0, 1) prior on each per-SD log-odds ratio does) still gives
        # finite estimates, holds the unidentified terms at 0 and leaves the others nearly as they were.
        params, cov, llf = ridge_logit(x.to_numpy(), y, RIDGE_PENALTY)
        self._set_coefficients(pd.Series(params, index=x.columns),
                               pd.DataFrame(cov, index=x.columns, columns=x.columns))
        self.llf_ = llf
        self.converged_ = True
        self.estimation_ = {"method": "ridge", "penalty": RIDGE_PENALTY, "terms": list(unidentified),
                            "reason": reason}
        return self

    def _fit_firth(self, x: pd.DataFrame, y: np.ndarray, terms: list[str], reason: str) -> LogisticModel:
        """Firth's penalized-likelihood fit, for data that separate the outcome (Heinze & Schemper 2002);
        where even that information matrix is singular (near-collinear terms), the weak ridge."""
        try:
            params, cov, llf, converged = firth_logit(x.to_numpy(), y)
        except np.linalg.LinAlgError as exc:
            params, cov, llf = ridge_logit(x.to_numpy(), y, RIDGE_PENALTY)
            self._set_coefficients(pd.Series(params, index=x.columns),
                                   pd.DataFrame(cov, index=x.columns, columns=x.columns))
            self.llf_, self.converged_ = llf, True
            self.estimation_ = {"method": "ridge", "penalty": RIDGE_PENALTY, "terms": terms,
                                "reason": f"{reason}; Firth's fit failed ({exc})"}
            return self
        self._set_coefficients(pd.Series(params, index=x.columns),
                               pd.DataFrame(cov, index=x.columns, columns=x.columns))
        self.llf_, self.converged_ = llf, converged
        self.estimation_ = {"method": "firth", "terms": terms, "reason": reason}
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

    def shrunk(self, factor: float, data: list[pd.DataFrame]) -> LogisticModel:
        """A copy with every coefficient but the intercept multiplied by the uniform shrinkage factor
        (the bootstrap-corrected calibration slope; van Houwelingen & le Cessie 1990, Steyerberg ch. 13)
        and the intercept re-estimated with the shrunk linear predictor as offset, averaged over the
        completed data sets, so that mean predicted risk still equals the observed rate. What the risk
        calculator uses: its risks are less extreme than the raw fit's, as they should be on a small sample.
        """
        self._check_fitted()
        if not factor > 0:
            raise ValueError(f"shrinkage factor {factor:.3g} is not positive: a model whose corrected calibration "
                             "slope is <= 0 has no shrunken version to give individual risks from")
        factor = float(min(factor, 1.0))
        out = LogisticModel(self.terms, self.outcome, self.age_spline_knots, self.alpha)
        out.knots_ = self.knots_
        params = self.params_.copy()
        params.loc[params.index != "const"] *= factor
        intercepts = []
        for d in data:
            x = self.design(d)
            offset = x.drop(columns="const").to_numpy() @ params.drop("const").to_numpy()
            y = d[self.outcome].astype(float).to_numpy()
            # From the observed log-odds, not the fitted intercept: a fit that separated has an
            # intercept far out on the flat part of the logistic curve, from where Newton diverges.
            rate = float(np.clip(y.mean(), 1e-6, 1 - 1e-6))
            a = float(np.log(rate / (1 - rate)) - offset.mean())
            for _ in range(50):
                q = expit(a + offset)
                step = float((y - q).sum() / max((q * (1 - q)).sum(), 1e-12))
                a += step
                if abs(step) < 1e-10:
                    break
            intercepts.append(a)
        if intercepts:  # without data the fitted intercept is kept
            params["const"] = float(np.mean(intercepts))
        scale = pd.Series(np.where(params.index == "const", 1.0, factor), index=params.index)
        cov = self.cov_params_ * np.outer(scale, scale)
        out._set_coefficients(params, cov, self.dof_)
        out.n_, out.n_events_ = getattr(self, "n_", None), getattr(self, "n_events_", None)
        out.estimation_ = {"method": "uniform shrinkage", "factor": factor,
                           "reason": "bootstrap-corrected calibration slope (Harrell's validate)"}
        return out

    def bootstrap_risks(self, df: pd.DataFrame, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Refit on each resample (rows of `indices`) and return the risks it predicts on its resample
        and on all rows of df: (n_boot, n) arrays each. Fast path of Harrell's optimism bootstrap."""
        self._check_fitted()
        x = self.design(df).to_numpy()
        y = df[self.outcome].astype(float).to_numpy()
        start = self.params_.to_numpy()
        on_sample, on_all = np.empty(indices.shape), np.empty((len(indices), len(y)))
        if isinstance(self.penalty, int | float):  # the same penalty on each resample, from this fit's estimate
            for b, rows in enumerate(indices):
                beta = ridge_logit(x[rows], y[rows], float(self.penalty), start=start)[0]
                on_sample[b], on_all[b] = expit(x[rows] @ beta), expit(x @ beta)
            return on_sample, on_all
        if self.penalty is not None:  # the penalty is chosen afresh on each resample, as on the data
            for b, rows in enumerate(indices):
                sample = df.iloc[rows]
                refit = LogisticModel(self.terms, self.outcome, self.age_spline_knots, self.alpha,
                                      self.penalty).fit(sample)
                on_sample[b], on_all[b] = refit.predict_proba(sample), refit.predict_proba(df)
            return on_sample, on_all
        self.bootstrap_firth_refits_ = 0
        for b, rows in enumerate(indices):
            beta, converged = newton_logit(x[rows], y[rows], start, report_convergence=True)
            if not converged:  # the resample separates: Firth's fit, as the fit itself would use
                try:
                    beta = firth_logit(x[rows], y[rows])[0]
                    self.bootstrap_firth_refits_ += 1
                except np.linalg.LinAlgError:  # a category absent from the resample: the Newton estimate stays
                    pass
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
            "estimation": getattr(self, "estimation_", {"method": "maximum likelihood"}),
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


def fitted_and_information(x: np.ndarray, beta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fitted probabilities of a logistic model at `beta` and its Fisher information X'WX (W = p(1 - p)): what
    each Newton step below (maximum likelihood, bootstrap warm start, ridge) is built from."""
    p = expit(x @ beta)
    return p, (x * (p * (1 - p))[:, None]).T @ x


def ml_logit(x: np.ndarray, y: np.ndarray, start: np.ndarray | None = None, max_iter: int = 50,
             tol: float = 1e-8) -> tuple[np.ndarray, np.ndarray, float, bool]:
    """Maximum-likelihood logistic fit: (coefficients, covariance, log-likelihood, converged).

    statsmodels' `Logit(y, x).fit(method="newton", maxiter=max_iter)` step for step: the same start
    (zeros), Newton step on the per-patient information with its 1e-10 ridge, stopping rule (every
    coefficient moved less than `tol`), inverse-information covariance, and its warnings (perfect
    prediction, no convergence), which the fit records count. Written out because a fit runs
    thousands of times in a validated study (every CV fold and bootstrap replicate) and statsmodels'
    model set-up (a QR rank check of the design, its wrappers) cost 3x the Newton steps themselves.
    A singular information matrix raises LinAlgError.
    """
    n = len(y)
    beta = np.zeros(x.shape[1]) if start is None else np.asarray(start, dtype=float).copy()
    old = np.full_like(beta, np.inf)
    iterations = 0
    while iterations < max_iter and np.any(np.abs(beta - old) > tol):
        p, info = fitted_and_information(x, beta)
        info /= n
        info[np.diag_indices_from(info)] += 1e-10
        old, beta = beta, beta + np.linalg.solve(info, x.T @ (y - p) / n)
        iterations += 1
        if np.all(np.abs(expit(x @ beta) - y) <= 1e-8):  # statsmodels' np.allclose(fitted - y, 0)
            warnings.warn("Perfect separation or prediction detected, parameter may not be identified",
                          PerfectSeparationWarning, stacklevel=2)
    converged = iterations < max_iter
    if not converged:
        warnings.warn("Maximum Likelihood optimization failed to converge. Check mle_retvals", ConvergenceWarning,
                      stacklevel=2)
    cov = np.linalg.inv(fitted_and_information(x, beta)[1])
    llf = -float(np.sum(np.logaddexp(0.0, -(2 * y - 1) * (x @ beta))))
    return beta, cov, llf, converged


def newton_logit(x: np.ndarray, y: np.ndarray, start: np.ndarray, max_iter: int = 25, tol: float = 1e-8,
                 report_convergence: bool = False) -> np.ndarray | tuple[np.ndarray, bool]:
    """Maximum-likelihood logistic coefficients by Newton-Raphson from `start`.

    Hand-written for the bootstrap only: from the full-data estimate a resample converges in 3-4
    steps of one small linear solve each, while each statsmodels fit also pays its model set-up
    (a rank-revealing QR, wrappers), several times the cost of the steps themselves. With
    `report_convergence`, (coefficients, converged): a resample that separates the outcome never converges.
    """
    beta = start.astype(float).copy()
    for _ in range(max_iter):
        p, hessian = fitted_and_information(x, beta)
        score = x.T @ (y - p)
        try:
            step = np.linalg.solve(hessian, score)
        except np.linalg.LinAlgError:
            # A resample of a small study can miss a rare category entirely (say GCS motor 2): that
            # coefficient is then not identified. The least-squares step leaves it where it started
            # and still fits the others, instead of failing the whole bootstrap.
            step = np.linalg.lstsq(hessian, score, rcond=None)[0]
        beta += step
        if np.max(np.abs(step)) < tol:
            return (beta, True) if report_convergence else beta
    return (beta, False) if report_convergence else beta


def firth_logit(x: np.ndarray, y: np.ndarray, max_iter: int = 100,
                tol: float = 1e-9) -> tuple[np.ndarray, np.ndarray, float, bool]:
    """Firth's penalized-likelihood logistic fit: (coefficients, covariance, log-likelihood, converged).

    Maximizes log L(b) + 0.5 log det I(b), the Jeffreys-prior penalty (Firth 1993), which is finite
    where the outcome is separated and the maximum-likelihood estimate is infinite (Heinze & Schemper
    2002). Newton steps on the modified score X'(y - p + h (1/2 - p)), h the diagonal of the hat matrix
    W^1/2 X (X'WX)^-1 X' W^1/2, with logistf's step cap (5) and step halving on the penalized
    log-likelihood; the covariance is the inverse information at the estimate, as logistf and R's brglm2
    (`type = "AS_mean"`, the same estimates for logistic regression) report it. Hand-written because
    statsmodels has no Firth fit, and the fit is these few lines of linear algebra.
    A singular information matrix (a term that does not vary) raises LinAlgError.
    """

    def penalized(beta: np.ndarray) -> float:
        eta = x @ beta
        p = expit(eta)
        sign, logdet = np.linalg.slogdet((x * (p * (1 - p))[:, None]).T @ x)
        loglik = -float(np.sum(np.logaddexp(0.0, -(2 * y - 1) * eta)))
        return loglik + 0.5 * logdet if sign > 0 else -np.inf

    beta = np.zeros(x.shape[1])
    mean = np.clip(y.mean(), 1e-6, 1 - 1e-6)
    beta[0] = np.log(mean / (1 - mean))
    current = penalized(beta)
    converged = False
    for _ in range(max_iter):
        p, info = fitted_and_information(x, beta)
        cov = np.linalg.inv(info)
        hat = np.einsum("ij,jk,ik->i", x, cov, x) * p * (1 - p)
        step = cov @ (x.T @ (y - p + hat * (0.5 - p)))
        largest = np.max(np.abs(step))
        if largest > 5.0:
            step *= 5.0 / largest
        for _ in range(30):
            trial = penalized(beta + step)
            if trial >= current - 1e-12:
                break
            step /= 2
        beta, current = beta + step, trial
        if np.max(np.abs(step)) < tol:
            converged = True
            break
    cov = np.linalg.inv(fitted_and_information(x, beta)[1])
    llf = -float(np.sum(np.logaddexp(0.0, -(2 * y - 1) * (x @ beta))))
    return beta, cov, llf, converged


# Ridge penalty of the fallback fit, on standardized terms (a N(0, 1/penalty) prior on per-SD log-odds).
RIDGE_PENALTY = 1.0


def unidentified_terms(x: pd.DataFrame) -> dict[str, str]:
    """Design columns that the data cannot estimate, with why: no variation (a category nobody in
    these rows has), or an exact linear combination of the columns before it."""
    out: dict[str, str] = {}
    values = x.to_numpy(dtype=float)
    varies = [name == "const" or np.ptp(values[:, j]) > 0 for j, name in enumerate(x.columns)]
    if all(varies) and np.linalg.matrix_rank(values) == values.shape[1]:
        return out  # full column rank: every column is identified (the usual case, one SVD)
    kept: list[int] = []
    for j, name in enumerate(x.columns):
        col = values[:, j]
        if name != "const" and np.ptp(col) == 0:
            out[name] = f"no variation (every one of the {len(col)} rows has {col[0]:g})"
            continue
        trial = values[:, kept + [j]]
        if np.linalg.matrix_rank(trial) < len(kept) + 1:
            out[name] = "a linear combination of other terms in these rows"
            continue
        kept.append(j)
    return out


def separating_terms(x: pd.DataFrame, y: np.ndarray) -> dict[str, str]:
    """Terms that separate the outcome (why the maximum-likelihood estimate does not exist), with why.

    A 0/1 term is named when every patient with it has the same outcome. Otherwise the terms are
    read off the direction along which the likelihood keeps rising: after some Newton steps toward
    the (infinite) estimate, the smallest-eigenvalue direction of the information matrix on the
    standardized terms; the terms loading most on it are reported.
    """
    out: dict[str, str] = {}
    values = x.to_numpy(dtype=float)
    for j, name in enumerate(x.columns):
        col = values[:, j]
        if name == "const" or not np.isin(col, (0.0, 1.0)).all():
            continue
        for level in (1.0, 0.0):
            rows = col == level
            if 0 < rows.sum() < len(col) and np.ptp(y[rows]) == 0:
                out[name] = (f"all {int(rows.sum())} patients with {name}={level:g} have outcome {int(y[rows][0])} "
                             "(separation)")
                break
    if out:
        return out
    sd = values.std(axis=0)
    scaled = values / np.where(sd > 0, sd, 1.0)
    beta = newton_logit(scaled, y, np.zeros(values.shape[1]), max_iter=30)
    p = expit(scaled @ beta)
    info = (scaled * (p * (1 - p))[:, None]).T @ scaled
    _, vectors = np.linalg.eigh(info)
    direction = vectors[:, 0]
    for j in np.argsort(-np.abs(direction)):
        if x.columns[j] != "const" and abs(direction[j]) >= 0.3:
            out[x.columns[j]] = f"on the direction that separates the outcome (loading {direction[j]:+.2f})"
    return out


def ridge_logit(x: np.ndarray, y: np.ndarray, penalty: float, max_iter: int = 100,
                tol: float = 1e-8, start: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, float]:
    """L2-penalized logistic fit (intercept `x[:, 0]` unpenalized, other columns penalized on their SD
    scale): (coefficients, covariance = inverse penalized information, unpenalized log-likelihood).

    The penalized log-likelihood is rms `lrm`'s with `penalty`: log L - 0.5 x penalty x sum_j var(x_j) b_j^2,
    var with n - 1, i.e. a N(0, 1/penalty) prior on each per-SD log-odds ratio b_j sd(x_j); its covariance is
    lrm's default (`var.penalty = "simple"`), so `prognosis export-r` refits a penalized model in R exactly.
    Hand-written because statsmodels' `fit_regularized` gives no covariance and scikit-learn's
    LogisticRegression neither; the penalized Newton step is a few lines.
    """
    weights = x.var(axis=0, ddof=1) if len(x) > 1 else np.zeros(x.shape[1])
    weights[0] = 0.0
    pen = np.diag(penalty * weights)
    if start is None:
        beta = np.zeros(x.shape[1])
        mean = np.clip(y.mean(), 1e-6, 1 - 1e-6)
        beta[0] = np.log(mean / (1 - mean))
    else:
        beta = np.asarray(start, dtype=float).copy()
    for _ in range(max_iter):
        p, info = fitted_and_information(x, beta)
        info += pen
        gradient = x.T @ (y - p) - pen @ beta
        try:  # the penalized information is positive definite unless a column does not vary
            step = np.linalg.solve(info, gradient)
        except np.linalg.LinAlgError:
            step = np.linalg.lstsq(info, gradient, rcond=None)[0]
        beta += step
        if np.max(np.abs(step)) < tol:
            break
    p = np.clip(expit(x @ beta), 1e-12, 1 - 1e-12)
    info = (x * (p * (1 - p))[:, None]).T @ x + pen
    llf = float(np.sum(y * np.log(p) + (1 - y) * np.log(1 - p)))
    return beta, np.linalg.pinv(info), llf


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
