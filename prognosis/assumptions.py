"""Model assumptions checked: proportional odds of the GOS model (Brant's test) and linearity of
continuous predictors (restricted cubic splines with Wald tests of the non-linear terms).

Hand-written: statsmodels' OrderedModel has no Brant test, and the spline tests need our own
knots and design (prognosis.terms' restricted cubic spline, Harrell's form).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import stats
from scipy.special import expit

from prognosis.design import design_matrix
from prognosis.logistic import ml_logit
from prognosis.rubin import d2_pooled_chisq
from prognosis.terms import age_spline_basis
from prognosis.validation import SEPARATION_RISK

# Continuous predictors checked for non-linearity, by the design term that enters the model.
SPLINE_CANDIDATES = ("log_adm_hematoma_ml", "log_peak_edema_ml", "adm_midline_shift_mm", "glucose_mmol_l",
                     "hemoglobin_g_dl", "age")


BRANT_NOT_ESTIMABLE = "Brant test not estimable on these data"  # how a fit's caution names it


def check_estimated(fitted: np.ndarray, converged: bool, fit: str) -> None:
    """ValueError naming `fit` when a logistic fit behind a Wald test separates its outcome (some fitted risk
    within `SEPARATION_RISK` of 0 or 1) or does not converge: its Newton steps run the coefficients off
    toward infinity, their variances with them, and the Wald statistic falls toward 0 (p near 1, a false
    all-clear on a small study)."""
    if converged and np.minimum(fitted, 1 - fitted).min() >= SEPARATION_RISK:
        return
    what = "separates the outcome (some fitted risk reaches 0 or 1)" if converged else "does not converge"
    raise ValueError(f"{fit} {what}, so its coefficients are not estimates to test; it needs more patients for "
                     "its terms")


def brant_test(df: pd.DataFrame, terms: Sequence[str], outcome: str = "gos_6m") -> pd.DataFrame:
    """Brant's Wald test of proportional odds (Biometrics 1990): the K-1 cumulative binary logits
    'GOS <= k' fitted separately, and the equality of each term's coefficients across them tested
    with their joint covariance (Cov(b_k, b_l) = I_k^-1 X'W_kl X I_l^-1, W_kl = pi_l - pi_k pi_l).
    One row per term plus `omnibus`: chi-square, df, p, and each cut's coefficient.

    A binary fit that separates its outcome or does not converge (`check_estimated`) has no coefficients to
    compare: ValueError, naming the cut."""
    x = sm.add_constant(design_matrix(df, terms, None, "Brant test"), has_constant="add")
    gos = df[outcome].astype(int).to_numpy()
    cuts = [k for k in (1, 2, 3, 4) if 0 < (gos <= k).sum() < len(gos)]
    xs = x.to_numpy(float)
    betas, infos, probs = [], [], []
    for k in cuts:
        yk = (gos <= k).astype(float)
        params, _, _, converged = ml_logit(xs, yk, max_iter=100)  # statsmodels' Logit Newton fit, without its set-up
        pk = expit(xs @ params)
        check_estimated(pk, converged, f"the binary fit of 'GOS <= {k}' ({int(yk.sum())} of {len(yk)} patients)")
        betas.append(params)
        infos.append(np.linalg.inv((xs * (pk * (1 - pk))[:, None]).T @ xs))
        probs.append(pk)
    kk, p = len(cuts), xs.shape[1]
    cov = np.zeros((kk * p, kk * p))
    for a in range(kk):
        for b in range(kk):
            # 'GOS <= k' events are nested: for cut a <= b, E[y_a y_b] = P(GOS <= cut a) = pi_a.
            lo, hi = (a, b) if a <= b else (b, a)
            w = probs[lo] - probs[lo] * probs[hi]
            cov[a * p:(a + 1) * p, b * p:(b + 1) * p] = infos[a] @ ((xs * w[:, None]).T @ xs) @ infos[b]
    beta = np.concatenate(betas)
    names = list(x.columns)
    rows = []

    def wald(cols: list[int]) -> tuple[float, int]:
        # Contrasts b_1 - b_k (k = 2..K) of the chosen coefficients.
        d = np.zeros(((kk - 1) * len(cols), kk * p))
        r = 0
        for k in range(1, kk):
            for c in cols:
                d[r, c], d[r, k * p + c] = 1.0, -1.0
                r += 1
        diff = d @ beta
        stat = float(diff @ np.linalg.pinv(d @ cov @ d.T) @ diff)
        return stat, d.shape[0]

    for j, name in enumerate(names):
        if name == "const":
            continue
        stat, dof = wald([j])
        rows.append({"term": name, "chi2": stat, "df": dof, "p": float(stats.chi2.sf(stat, dof)),
                     **{f"coef_gos_le_{k}": float(-betas[i][j]) for i, k in enumerate(cuts)}})
    stat, dof = wald([j for j, n in enumerate(names) if n != "const"])
    rows.insert(0, {"term": "omnibus", "chi2": stat, "df": dof, "p": float(stats.chi2.sf(stat, dof))})
    return pd.DataFrame(rows)


def nonlinearity_tests(df: pd.DataFrame, terms: Sequence[str], outcome: str, n_knots: int = 4,
                       candidates: Sequence[str] = SPLINE_CANDIDATES) -> pd.DataFrame:
    """For each continuous term, the logistic model with that term as a restricted cubic spline
    (`n_knots` knots at Harrell's quantiles, the other terms linear) and the Wald test that its
    non-linear coefficients are all 0 (p < 0.05: the linear term misfits; keep the spline). A term whose fit
    separates the outcome or does not converge (`check_estimated`) is not estimable, with the reason."""
    from prognosis.terms import age_spline_knots

    rows = []
    base = design_matrix(df, terms, None, "non-linearity test")
    y = df[outcome].astype(float).to_numpy()
    for term in [t for t in candidates if t in terms]:
        values = base[term]
        knots = sorted(set(age_spline_knots(values, n_knots)))
        if len(knots) < 3:
            rows.append({"term": term, "chi2": np.nan, "df": 0, "p": np.nan,
                         "note": "too few distinct values for a spline"})
            continue
        spline = age_spline_basis(values, knots).drop(columns="age")
        spline.columns = [f"{term}_rcs{i + 1}" for i in range(spline.shape[1])]
        x = sm.add_constant(pd.concat([base, spline], axis=1), has_constant="add")
        try:
            # ml_logit is statsmodels' Logit Newton fit step for step, without its per-fit set-up: the
            # test runs for every continuous term on each of the m imputed data sets.
            xs = x.to_numpy(float)
            params, cov, _, converged = ml_logit(xs, y, max_iter=100)
            check_estimated(expit(xs @ params), converged, f"the fit with {term} as a spline")
            cols = [x.columns.get_loc(c) for c in spline.columns]
            b = params[cols]
            stat = float(b @ np.linalg.solve(cov[np.ix_(cols, cols)], b))
            rows.append({"term": term, "chi2": stat, "df": int(spline.shape[1]),
                         "p": float(stats.chi2.sf(stat, len(cols))), "note": f"{len(knots)} knots"})
        except (np.linalg.LinAlgError, ValueError) as exc:
            rows.append({"term": term, "chi2": np.nan, "df": int(spline.shape[1]), "p": np.nan,
                         "note": f"not estimable ({exc})"})
    return pd.DataFrame(rows)


def pooled_over_imputations(tables: Sequence[pd.DataFrame], test: Callable[[pd.DataFrame], pd.DataFrame]
                            ) -> pd.DataFrame:
    """A chi-square test table (`term`, `chi2`, `df`, `p`; `brant_test`, `nonlinearity_tests`) run on
    each of the m imputed data sets and pooled per term by D2 (Li, Meng, Raghunathan & Rubin 1991;
    `prognosis.rubin.d2_pooled_chisq`), as the proportional-hazards test is. `chi2` becomes the pooled
    D2 statistic (an F on `df` and `df2`), with the per-imputation range beside it; a term not
    estimable on some data sets is pooled over the others, and `m` says over how many."""
    per = [test(t).set_index("term") for t in tables]
    rows = []
    for term in per[0].index:
        found = [t.loc[term] for t in per if term in t.index and np.isfinite(t.loc[term, "chi2"])]
        row = {"term": term, **{k: v for k, v in per[0].loc[term].items() if k not in ("chi2", "p")}}
        if not found:
            rows.append({**row, "chi2": np.nan, "p": np.nan, "m": 0})
            continue
        chi2 = [float(r["chi2"]) for r in found]
        pooled = d2_pooled_chisq(chi2, int(found[0]["df"]))
        rows.append({**row, "chi2": pooled["statistic"], "df2": pooled["df2"], "p": pooled["p"], "m": pooled["m"],
                     "chi2_min": min(chi2), "chi2_max": max(chi2)})
    return pd.DataFrame(rows)
