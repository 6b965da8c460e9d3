"""Maximum-likelihood logistic model with a normal random intercept per center, as lme4's `glmer(nAGQ = 1)`.

The model: logit P(y_ij = 1) = x_ij'beta + sigma * u_j, u_j ~ N(0, 1) for patient i of center j. Its
likelihood integrates each center's u_j out; with the Laplace approximation (adaptive Gauss-Hermite
quadrature with one node, glmer's default) center j contributes

    h_j(u_hat) - log(1 + sigma^2 S_j) / 2,   h_j(u) = sum_i log p(y_ij | x_ij'beta + sigma u) - u^2 / 2,

with u_hat the conditional mode (Newton on each center, vectorized over centers) and S_j the sum of
mu (1 - mu) at the mode. The spherical form (u = b / sigma, as lme4 writes it) keeps sigma = 0 a
regular point, so the estimate may sit on that boundary and a profile interval may start at 0.

Hand-written because the Python libraries do not fit this model by maximum likelihood:
statsmodels' BinomialBayesMixedGLM is a variational-Bayes fit with priors (it shrinks the center SD
toward its prior and under-states the standard errors), and its MixedLM is for continuous outcomes.
The gradient below is exact (envelope theorem at the conditional mode plus the derivative of the
log-determinant through u_hat), so L-BFGS converges to glmer's optimum; standard errors are from the
observed information of (sigma, beta), the Hessian obtained by central differences of that gradient,
inverted whole and read at the fixed effects, which is how `vcov(glmer fit)` reports them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize, stats
from scipy.special import expit


def _log1pexp(eta: np.ndarray) -> np.ndarray:
    """log(1 + exp(eta)) without overflow."""
    return np.logaddexp(0.0, eta)


@dataclass(frozen=True)
class RandomInterceptFit:
    params: np.ndarray  # fixed effects beta, in the columns' order
    cov: np.ndarray  # their covariance (observed information of sigma and beta, beta block of its inverse)
    sigma: float  # between-center SD of the log-odds
    sigma_lower: float  # profile-likelihood 95% interval of sigma (lower may be 0)
    sigma_upper: float
    modes: np.ndarray  # conditional modes of the center effects, b_j = sigma * u_j (log-odds)
    loglik: float  # Laplace log-likelihood at the optimum
    converged: bool


class _Problem:
    """The Laplace log-likelihood of one data set and its gradient in (beta, sigma)."""

    def __init__(self, x: np.ndarray, y: np.ndarray, group: np.ndarray) -> None:
        self.x, self.y, self.group = x, y, group
        self.n_groups = int(group.max()) + 1
        self._u = np.zeros(self.n_groups)

    def _sum(self, v: np.ndarray) -> np.ndarray:
        return np.bincount(self.group, weights=v, minlength=self.n_groups)

    def modes(self, beta: np.ndarray, sigma: float) -> np.ndarray:
        """Conditional modes u_hat of every center (Newton from the last modes; h_j is strictly concave)."""
        eta0 = self.x @ beta
        u = self._u.copy() if np.isfinite(self._u).all() else np.zeros(self.n_groups)
        # Newton steps, each center's log-odds shift capped at 1 (a full step can overshoot far from the mode).
        cap = 1.0 / max(sigma, 1e-8)
        for _ in range(200):
            mu = expit(eta0 + sigma * u[self.group])
            grad = sigma * self._sum(self.y - mu) - u
            curv = sigma**2 * self._sum(mu * (1 - mu)) + 1.0
            step = np.clip(grad / curv, -cap, cap)
            u += step
            if np.max(np.abs(step)) < 1e-12:
                break
        self._u = u
        return u

    def value_and_grad(self, beta: np.ndarray, sigma: float) -> tuple[float, np.ndarray, float]:
        """Laplace log-likelihood, its gradient in beta and its derivative in sigma."""
        x, y, g = self.x, self.y, self.group
        u = self.modes(beta, sigma)
        ug = u[g]
        eta = x @ beta + sigma * ug
        mu = expit(eta)
        w = mu * (1 - mu)
        w1 = w * (1 - 2 * mu)  # d w / d eta
        s = self._sum(w)
        h = sigma**2 * s + 1.0  # -h_uu at the mode
        value = float(np.sum(y * eta - _log1pexp(eta)) - 0.5 * np.sum(u**2) - 0.5 * np.sum(np.log(h)))
        # d u_hat / d beta = -sigma sum_i w_i x_i / h_j;  d eta_i / d beta = x_i + sigma d u_hat_j / d beta.
        wx = np.stack([self._sum(w * x[:, c]) for c in range(x.shape[1])], axis=1)  # (groups, k)
        du_db = -sigma * wx / h[:, None]
        deta_db = x + sigma * du_db[g]
        ds_db = np.stack([self._sum(w1 * deta_db[:, c]) for c in range(x.shape[1])], axis=1)
        grad_beta = x.T @ (y - mu) - 0.5 * np.sum((sigma**2 * ds_db) / h[:, None], axis=0)
        # sigma: d h_j(u_hat) / d sigma = u_j sum_i (y - mu) (envelope); d u_hat / d sigma from h_u = 0.
        resid = self._sum(y - mu)
        du_ds = (resid - sigma * u * s) / h
        ds_ds = self._sum(w1 * (ug + sigma * du_ds[g]))
        grad_sigma = float(np.sum(u * resid) - 0.5 * np.sum((2 * sigma * s + sigma**2 * ds_ds) / h))
        return value, grad_beta, grad_sigma


def _maximize(problem: _Problem, start: np.ndarray, sigma: float | None) -> tuple[np.ndarray, float, bool]:
    """Maximize over (beta, sigma >= 0), or over beta alone at a given sigma. Returns (beta, sigma, converged)."""
    k = len(start) - 1

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        s = theta[k] if sigma is None else sigma
        value, gb, gs = problem.value_and_grad(theta[:k], s)
        return -value, -np.r_[gb, gs if sigma is None else 0.0]

    bounds = [(None, None)] * k + [(0.0, None) if sigma is None else (sigma, sigma)]
    theta0 = start.copy()
    if sigma is not None:
        theta0[k] = sigma
    res = optimize.minimize(objective, theta0, jac=True, method="L-BFGS-B", bounds=bounds,
                            options={"maxiter": 2000, "ftol": 1e-15, "gtol": 1e-8, "maxcor": 30})
    return res.x[:k], float(res.x[k]), bool(res.success)


def fit_random_intercept(x: np.ndarray, y: np.ndarray, group: np.ndarray, beta_start: np.ndarray | None = None,
                         level: float = 0.95) -> RandomInterceptFit:
    """Fit y ~ x + (1 | group) by maximum likelihood (Laplace). `x` includes the intercept column;
    `group` holds integer codes 0..J-1. The interval of sigma is the profile-likelihood one: where
    twice the drop of the log-likelihood, beta re-maximized, reaches the chi-square(1) quantile."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    group = np.asarray(group, dtype=int)
    # Optimize on centered and scaled columns (the ML estimate is equivariant), then map back.
    mean = x.mean(axis=0)
    sd = x.std(axis=0)
    const = sd == 0
    mean[const], sd[const] = 0.0, 1.0
    intercept = np.flatnonzero(const & (x[0] != 0))
    xs = (x - mean) / sd
    # Back-transform: beta = A beta_s with A from x_s = (x - mean) / sd (intercept absorbs the means).
    a = np.diag(1.0 / sd)
    if len(intercept):
        i0 = intercept[0]
        a[i0, :] = -mean / sd
        a[i0, i0] = 1.0 / sd[i0]
    problem = _Problem(xs, y, group)
    k = x.shape[1]
    start = np.zeros(k + 1)
    if beta_start is not None:
        start[:k] = np.linalg.solve(a, beta_start)
    start[k] = 0.5
    beta_s, sigma, converged = _maximize(problem, start, None)
    loglik = problem.value_and_grad(beta_s, sigma)[0]

    # Observed information of (beta_s, sigma) by central differences of the exact gradient.
    theta = np.r_[beta_s, sigma]
    boundary = sigma < 1e-6
    dim = k if boundary else k + 1
    hess = np.zeros((dim, dim))
    for c in range(dim):
        step = 1e-5 * max(1.0, abs(theta[c]))
        grads = []
        for sign in (1, -1):
            t = theta.copy()
            t[c] += sign * step
            _, gb, gs = problem.value_and_grad(t[:k], t[k])
            grads.append(np.r_[gb, gs][:dim])
        hess[:, c] = (grads[0] - grads[1]) / (2 * step)
    hess = (hess + hess.T) / 2
    cov_s = np.linalg.inv(-hess)[:k, :k]
    problem.modes(beta_s, sigma)

    def profile_drop(s: float) -> float:
        b, _, _ = _maximize(problem, np.r_[beta_s, s], s)
        return 2 * (loglik - problem.value_and_grad(b, s)[0]) - stats.chi2.ppf(level, 1)

    lower = 0.0
    if sigma > 1e-6 and profile_drop(0.0) > 0:
        lower = optimize.brentq(profile_drop, 0.0, sigma, xtol=1e-4)
    hi = max(2 * sigma, 0.5)
    while profile_drop(hi) < 0 and hi < 64:
        hi *= 2
    # A likelihood still flat at an SD of 64 on the log-odds scale (centers with all or no events) has no
    # finite upper bound.
    upper = optimize.brentq(profile_drop, sigma, hi, xtol=1e-4) if profile_drop(hi) >= 0 else float("inf")
    modes = sigma * problem.modes(beta_s, sigma)
    return RandomInterceptFit(params=a @ beta_s, cov=a @ cov_s @ a.T, sigma=sigma, sigma_lower=float(lower),
                              sigma_upper=float(upper), modes=modes, loglik=float(loglik), converged=converged)
