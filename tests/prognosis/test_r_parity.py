"""The prognosis statistics against R on the same data: each test writes its tables, R fits them (rms, ordinal,
survival, mice, mitml, metafor, lme4) in one Rscript process, and the ctstudy estimates must agree.

Data are simulated here with fixed seeds; R is found by `r_reference.require_r` (skipped without it, an error
under CTSTUDY_REQUIRE_R=1).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from r_reference import run_r

from prognosis.centers import random_intercept_model
from prognosis.cox import CoxModel
from prognosis.logistic import LogisticModel
from prognosis.metrics import random_effects_meta
from prognosis.ordinal import OrdinalGOSModel
from prognosis.validation import d1_pooled_wald

TERMS = ["age", "motor_1", "pupils_none", "hypoxia", "glucose_mmol_l"]
CENTERS = ["c1", "c2", "c3", "c4", "c5"]


def _patients(seed: int, n: int = 2000, center_sd: float = 0.0) -> pd.DataFrame:
    """Patients of 5 centers with a binary death, GOS 1-5 and days to death or censoring (integer days:
    ties, as in the study), from a logistic / proportional-odds / Weibull model; `center_sd` is the
    true SD of the centers' intercepts on the log-odds scale."""
    rng = np.random.default_rng(seed)
    center = rng.integers(0, 5, n)
    shift = np.linspace(-1.0, 1.0, 5) * center_sd / np.std(np.linspace(-1.0, 1.0, 5), ddof=1)
    df = pd.DataFrame({"center": np.array(CENTERS)[center], "age": rng.normal(45, 18, n).round(),
                       "motor_1": rng.binomial(1, 0.2, n), "pupils_none": rng.binomial(1, 0.15, n),
                       "hypoxia": rng.binomial(1, 0.2, n), "glucose_mmol_l": rng.gamma(8, 1, n).round(1)})
    lp = 0.03 * df["age"] + 1.0 * df["motor_1"] + 1.4 * df["pupils_none"] + 0.5 * df["hypoxia"] \
        + 0.08 * df["glucose_mmol_l"]
    df["died"] = rng.binomial(1, 1 / (1 + np.exp(-(lp - 3.5 + shift[center]))))
    cum = np.array([-2.0, -0.8, 0.3, 1.5])  # P(GOS <= k) = expit(cum_k + lp - 2)
    le = rng.uniform(size=(n, 1)) < 1 / (1 + np.exp(-(cum[None, :] + (lp - 2.0).to_numpy()[:, None])))
    df["gos_6m"] = np.where(le.any(axis=1), le.argmax(axis=1) + 1, 5)
    # Weibull times; hypoxic patients' hazard falls over follow-up (shape 0.6 against 1.3): a PH departure.
    shape = np.where(df["hypoxia"] == 1, 0.6, 1.3)
    t = 400 * np.exp(-(lp - 2.0) / shape) * rng.weibull(1.0, n) ** (1 / shape)
    df["days_to_death_or_censor"] = np.minimum(np.ceil(t), 180).astype(float)
    df["event"] = (t <= 180).astype(int)
    return df


@pytest.fixture(scope="module")
def patients() -> pd.DataFrame:
    return _patients(11)


def test_logistic_ordinal_and_cox_fits_and_the_ph_test_match_r(patients: pd.DataFrame, tmp_path: Path) -> None:
    r = run_r("""
        f <- reformulate(c("age", "motor_1", "pupils_none", "hypoxia", "glucose_mmol_l"))
        lg <- glm(update(f, died ~ .), family = binomial, data = d)
        d$worse <- factor(6 - d$gos_6m, levels = 1:5, ordered = TRUE)
        od <- clm(update(f, worse ~ .), data = d)
        cx <- coxph(update(f, Surv(days_to_death_or_censor, event) ~ .), data = d)
        z <- cox.zph(cx)
        result <- lapply(list(lg_coef = coef(lg), lg_se = sqrt(diag(vcov(lg))),
                              od_coef = coef(od)[names(coef(od)) %in% all.vars(f)],
                              od_theta = od$alpha, od_theta_se = sqrt(diag(vcov(od)))[names(od$alpha)],
                              cx_coef = coef(cx), cx_se = sqrt(diag(vcov(cx))),
                              zph = z$table[, "chisq"], zph_p = z$table[, "p"]), as.list)
    """, {"d": patients}, tmp_path, packages=("ordinal", "survival"))

    lg = LogisticModel(TERMS, "died").fit(patients)
    np.testing.assert_allclose(lg.params_.to_numpy(), list(r["lg_coef"].values()), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(lg.standard_errors_.to_numpy(), list(r["lg_se"].values()), rtol=1e-4)

    od = OrdinalGOSModel(TERMS).fit(patients)
    np.testing.assert_allclose(od.params_[TERMS].to_numpy(), [r["od_coef"][t] for t in TERMS], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(od.thresholds_, list(r["od_theta"].values()), rtol=1e-4, atol=1e-6)
    # The thresholds' SEs, not those of statsmodels' internal (first threshold, log increments) parameters.
    np.testing.assert_allclose(np.sqrt(np.diag(od.threshold_cov_.to_numpy())), list(r["od_theta_se"].values()),
                               rtol=1e-3)
    cuts = od.cutpoint_table
    np.testing.assert_allclose(cuts["se"].to_numpy(), list(r["od_theta_se"].values())[::-1], rtol=1e-3)

    cx = CoxModel(TERMS, event="event").fit(patients)
    np.testing.assert_allclose(cx.params_[TERMS].to_numpy(), [r["cx_coef"][t] for t in TERMS], rtol=1e-4)
    np.testing.assert_allclose(cx.standard_errors_[TERMS].to_numpy(), [r["cx_se"][t] for t in TERMS], rtol=1e-3)
    ph = cx.proportional_hazards_test()
    np.testing.assert_allclose(ph.loc[TERMS, "test_statistic"].to_numpy(), [r["zph"][t] for t in TERMS], rtol=0.01)
    glob = cx.global_ph_test()
    assert glob["statistic"] == pytest.approx(r["zph"]["GLOBAL"], rel=0.01)
    assert r["zph_p"]["hypoxia"] < 0.05  # the generated departure is found by both
    assert ph.loc["hypoxia", "p"] == pytest.approx(r["zph_p"]["hypoxia"], rel=0.05, abs=1e-6)


def test_random_intercept_matches_glmer_with_and_without_a_center_effect(tmp_path: Path) -> None:
    null, spread = _patients(5, center_sd=0.0), _patients(6, center_sd=0.6)
    ours = {name: random_intercept_model(d, TERMS, "died") for name, d in (("null", null), ("spread", spread))}
    bounds = pd.DataFrame({"name": list(ours), "lower": [o["center_sd_lower"] for o in ours.values()],
                           "upper": [o["center_sd_upper"] for o in ours.values()]})
    # The SD's interval is checked on glmer's own Laplace deviance: at each of our bounds, the deviance
    # with the fixed effects re-optimized is 3.84 (chi-square 1, 95%) above its minimum; a bound at 0
    # needs the deviance at SD 0 to be within 3.84. (confint(method = "profile") gives the same bounds,
    # at ~15 s of CPU per model.)
    r = run_r("""
        out <- list()
        for (name in c("null", "spread")) {
            d <- get(name)
            f <- died ~ age + motor_1 + pupils_none + hypoxia + glucose_mmol_l + (1 | center)
            g <- glmer(f, data = d, family = binomial)
            dev <- glmer(f, data = d, family = binomial, devFunOnly = TRUE)  # of c(SD, fixed effects)
            safe <- function(s, b) tryCatch(dev(c(s, b)), error = function(e) 1e10)
            profiled <- function(s) optim(fixef(g), function(b) safe(s, b), method = "BFGS",
                                          control = list(reltol = 1e-12, maxit = 1000,
                                                         parscale = sqrt(diag(as.matrix(vcov(g))))))$value
            b <- bounds[bounds$name == name, ]
            dmin <- -2 * c(logLik(g))  # (deviance() of a GLMM is not -2 log-likelihood)
            out[[name]] <- list(coef = unname(fixef(g)), se = unname(sqrt(diag(as.matrix(vcov(g))))),
                                sd = unname(attr(VarCorr(g)$center, "stddev")),
                                rise_lower = profiled(b$lower) - dmin, rise_upper = profiled(b$upper) - dmin)
        }
        result <- out
    """, {"null": null, "spread": spread, "bounds": bounds}, tmp_path, packages=("lme4",))
    chi2 = 3.841459
    for name in ("null", "spread"):
        fe, ref = ours[name]["fixed_effects"], r[name]
        np.testing.assert_allclose(fe["coef_random_intercept"], ref["coef"], rtol=0.02,
                                   atol=0.01 * np.min(ref["se"]))
        np.testing.assert_allclose(fe["se_random_intercept"], ref["se"], rtol=0.02)
        assert ours[name]["center_sd"] == pytest.approx(ref["sd"], abs=0.02)
        assert ref["rise_upper"] == pytest.approx(chi2, abs=0.05)
    assert r["spread"]["rise_lower"] == pytest.approx(chi2, abs=0.05) and ours["spread"]["center_sd_lower"] > 0.2
    assert ours["null"]["center_sd_lower"] == 0.0 and r["null"]["rise_lower"] < chi2  # the interval reaches 0


def _imputed_like(patients: pd.DataFrame, m: int = 5) -> list[pd.DataFrame]:
    """m completed data sets that differ where a third of glucose values were 'imputed' (noise added)."""
    rng = np.random.default_rng(3)
    gap = rng.uniform(size=len(patients)) < 0.33
    out = []
    for _ in range(m):
        d = patients.copy()
        d.loc[gap, "glucose_mmol_l"] = (d.loc[gap, "glucose_mmol_l"] + rng.normal(0, 2.0, gap.sum())).round(1)
        d.loc[gap, "hypoxia"] = rng.binomial(1, 0.2, gap.sum())
        out.append(d)
    return out


def test_rubin_pooling_barnard_rubin_df_and_d1_match_mice_and_mitml(patients: pd.DataFrame, tmp_path: Path) -> None:
    data = _imputed_like(patients)
    r = run_r("""
        sets <- list(d1, d2, d3, d4, d5)
        full <- lapply(sets, function(d) glm(died ~ age + motor_1 + pupils_none + hypoxia + glucose_mmol_l,
                                             family = binomial, data = d))
        base <- lapply(sets, function(d) glm(died ~ age + motor_1 + pupils_none, family = binomial, data = d))
        p <- summary(pool(as.mira(full)))
        d1t <- testModels(full, base, method = "D1")
        cuts <- lapply(sets, function(d) {
            d$worse <- factor(6 - d$gos_6m, levels = 1:5, ordered = TRUE)
            clm(worse ~ age + motor_1 + pupils_none + hypoxia + glucose_mmol_l, data = d)
        })
        theta <- sapply(1:4, function(j) {
            ps <- pool.scalar(sapply(cuts, function(f) f$alpha[j]), sapply(cuts, function(f) vcov(f)[j, j]),
                              n = nrow(d1), k = 9)
            c(ps$qbar, sqrt(ps$t), ps$df)
        })
        result <- list(est = p$estimate, se = p$std.error, df = p$df, d1 = unname(d1t$test[1, "F.value"]),
                       d1_df2 = unname(d1t$test[1, "df2"]), d1_p = unname(d1t$test[1, "P(>F)"]),
                       theta = theta[1, ], theta_se = theta[2, ], theta_df = theta[3, ])
    """, {f"d{i + 1}": d for i, d in enumerate(data)}, tmp_path, packages=("mice", "mitml", "ordinal"))
    pooled = LogisticModel(TERMS, "died").pool_from([LogisticModel(TERMS, "died").fit(d) for d in data])
    np.testing.assert_allclose(pooled.params_.to_numpy(), r["est"], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(pooled.standard_errors_.to_numpy(), r["se"], rtol=1e-4)
    np.testing.assert_allclose(pooled.dof_.to_numpy(), r["df"], rtol=1e-3)
    extra = ["hypoxia", "glucose_mmol_l"]
    fits = [LogisticModel(TERMS, "died").fit(d) for d in data]
    d1 = d1_pooled_wald(np.stack([f.params_[extra].to_numpy() for f in fits]),
                        np.stack([f.cov_params_.loc[extra, extra].to_numpy() for f in fits]))
    assert d1["d1_statistic"] == pytest.approx(r["d1"], rel=1e-4)
    assert d1["d1_df2"] == pytest.approx(r["d1_df2"], rel=1e-3)
    assert d1["d1_p"] == pytest.approx(r["d1_p"], rel=1e-3)
    ordinal = OrdinalGOSModel(TERMS).pool_from([OrdinalGOSModel(TERMS).fit(d) for d in data])
    np.testing.assert_allclose(ordinal.thresholds_, r["theta"], rtol=1e-4)
    np.testing.assert_allclose(np.sqrt(np.diag(ordinal.threshold_cov_.to_numpy())), r["theta_se"], rtol=1e-3)
    np.testing.assert_allclose(ordinal.threshold_dof_, r["theta_df"], rtol=1e-3)


def test_dersimonian_laird_and_hartung_knapp_match_metafor(tmp_path: Path) -> None:
    est = np.array([0.42, 0.10, 0.65, 0.31, -0.05])
    var = np.array([0.020, 0.035, 0.050, 0.015, 0.040])
    r = run_r("""
        dl <- rma(yi = e$est, vi = e$var, method = "DL")
        hk <- rma(yi = e$est, vi = e$var, method = "DL", test = "knha")
        result <- list(b = unname(dl$b[1]), se = dl$se, tau2 = dl$tau2, lo = dl$ci.lb, hi = dl$ci.ub,
                       i2 = dl$I2 / 100, hk_se = hk$se, hk_lo = hk$ci.lb, hk_hi = hk$ci.ub)
    """, {"e": pd.DataFrame({"est": est, "var": var})}, tmp_path, packages=("metafor",))
    dl = random_effects_meta(est, var)
    assert (dl["pooled"], dl["se"], dl["tau2"]) == pytest.approx((r["b"], r["se"], r["tau2"]), rel=1e-6)
    assert (dl["lower"], dl["upper"], dl["i2"]) == pytest.approx((r["lo"], r["hi"], r["i2"]), rel=1e-6)
    hk = random_effects_meta(est, var, hartung_knapp=True)
    assert hk["pooled"] == pytest.approx(r["b"], rel=1e-6)
    assert (hk["se"], hk["lower"], hk["upper"]) == pytest.approx((r["hk_se"], r["hk_lo"], r["hk_hi"]), rel=1e-6)
    assert hk["upper"] - hk["lower"] > dl["upper"] - dl["lower"]  # t on k - 1 df: wider with 5 centers
