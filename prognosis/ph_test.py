"""The proportional-hazards test of R's `survival::cox.zph` (survival >= 3.0), per term and global.

For a fitted Cox model with coefficients beta, the test is the score test, at (beta, 0), of adding
the interactions x * g(t) with a transformed time g (Grambsch & Therneau, Biometrika 1994; Therneau
& Grambsch 2000, 6.2): the score of the interaction terms is U = sum over deaths of
g(t_i) (x_i - xbar(t_i)), and the statistic U' (I^-1)_22 U uses the full 2p x 2p information matrix
of (beta, interactions), not the approximation by the coefficient covariance times the number of
deaths that survival's versions before 3.0 used. Per term, the information is that of all p
coefficients and that term's interactions. Ties are handled as Efron's method (the Cox fit's),
each tied death entering the risk-set means with weight (k + 1) / d, k = 0..d-1.

Hand-written because lifelines' `proportional_hazard_test` is the older approximation (its
statistics differ from the current cox.zph by several percent and can move p values across 0.05).
The default time transform is R's: `km`, one minus the left-continuous Kaplan-Meier estimate.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

TRANSFORMS = ("km", "rank", "identity", "log")


def _transformed_time(time: np.ndarray, event: np.ndarray, transform: str) -> np.ndarray:
    if transform == "identity":
        return time.astype(float)
    if transform == "log":
        return np.log(time)
    if transform == "rank":
        return pd.Series(time).rank().to_numpy()
    if transform == "km":
        # 1 - S(t-), S the Kaplan-Meier estimate over all rows, left-continuous at each row's time.
        death_times, deaths = np.unique(time[event], return_counts=True)
        at_risk = len(time) - np.searchsorted(np.sort(time), death_times, side="left")
        surv = np.cumprod(1.0 - deaths / at_risk)
        before = np.searchsorted(death_times, time, side="left")  # death times strictly before t
        return 1.0 - np.r_[1.0, surv][before]
    raise ValueError(f"cox_zph: transform must be one of {TRANSFORMS}, got {transform!r}")


def term_groups(columns: Sequence[str]) -> dict[str, list[int]]:
    """Design columns grouped into model terms: the age spline's columns (`age`, `age_rcs1`, ...) are one term."""
    groups: dict[str, list[int]] = {}
    for j, col in enumerate(columns):
        groups.setdefault("age" if col.startswith("age_rcs") else col, []).append(j)
    return groups


def cox_zph(time: np.ndarray, event: np.ndarray, x: np.ndarray, beta: np.ndarray,
            terms: Mapping[str, Sequence[int]], transform: str = "km") -> tuple[pd.DataFrame, dict[str, float]]:
    """cox.zph's table: per term chi-square, df and p (DataFrame indexed by term), and the global test."""
    time = np.asarray(time, dtype=float)
    event = np.asarray(event, dtype=float) > 0
    x = np.asarray(x, dtype=float)
    x = x - x.mean(axis=0)
    n, p = x.shape
    eta = x @ np.asarray(beta, dtype=float)
    risk = np.exp(eta - eta.max())
    ttimes = _transformed_time(time, event, transform)
    gtime = ttimes - ttimes[event].mean()

    # Sums over the rows with time >= t, at each distinct time t (reverse cumulative sums by time).
    uniq, idx = np.unique(time, return_inverse=True)
    k = len(uniq)
    rx = risk[:, None] * x
    rxx = (rx[:, :, None] * x[:, None, :]).reshape(n, p * p)

    def by_time(values: np.ndarray, rows: np.ndarray) -> np.ndarray:
        out = np.zeros((k,) + values.shape[1:])
        np.add.at(out, idx[rows], values[rows])
        return out

    every = np.ones(n, dtype=bool)
    s0 = np.cumsum(by_time(risk, every)[::-1])[::-1]
    s1 = np.cumsum(by_time(rx, every)[::-1], axis=0)[::-1]
    s2 = np.cumsum(by_time(rxx, every)[::-1], axis=0)[::-1]
    d0, d1, d2 = by_time(risk, event), by_time(rx, event), by_time(rxx, event)
    ndead = by_time(event.astype(float), every)
    # Efron: the d deaths at t enter the risk-set sums with weights (j + 1) / d, j = 0..d-1 (one slot each).
    slot_time = np.repeat(np.arange(k), ndead.astype(int))
    counts = ndead[slot_time]
    order_in_time = np.arange(len(slot_time)) - np.searchsorted(slot_time, slot_time, side="left")
    frac = (order_in_time + 1) / counts
    base0, base1, base2 = (s0 - d0)[slot_time], (s1 - d1)[slot_time], (s2 - d2)[slot_time]
    denom = base0 + frac * d0[slot_time]
    mean = (base1 + frac[:, None] * d1[slot_time]) / denom[:, None]
    second = ((base2 + frac[:, None] * d2[slot_time]) / denom[:, None]).reshape(-1, p, p)
    var = second - mean[:, :, None] * mean[:, None, :]
    g_time = np.zeros(k)
    g_time[idx[event]] = gtime[event]
    g = g_time[slot_time]
    u2 = gtime[event] @ x[event] - g @ mean
    i11, i12, i22 = var.sum(axis=0), np.einsum("s,sij->ij", g, var), np.einsum("s,sij->ij", g**2, var)
    imat = np.block([[i11, i12], [i12.T, i22]])

    def score_test(cols: Sequence[int]) -> float:
        keep = np.r_[np.arange(p), p + np.asarray(cols, dtype=int)]
        u = np.r_[np.zeros(p), u2[list(cols)]]
        return float(u @ np.linalg.solve(imat[np.ix_(keep, keep)], u))

    rows = []
    for term, cols in terms.items():
        chisq = score_test(cols)
        rows.append({"term": term, "test_statistic": chisq, "df": len(cols),
                     "p": float(stats.chi2.sf(chisq, len(cols)))})
    table = pd.DataFrame(rows).set_index("term")
    chisq = score_test(range(p))
    return table, {"statistic": chisq, "df": p, "p": float(stats.chi2.sf(chisq, p))}
