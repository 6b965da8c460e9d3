"""A stored fit as files a statistician refits in R: the analysis tables it was fitted on (the m imputed
data sets, or the complete cases), ctstudy's pooled coefficients, and an R script that fits the same
model on each table (glm / ordinal::clm / survival::coxph, the age spline as rms::rcs with the same
knots) and pools them by Rubin's rules (mice::pool.scalar, Barnard-Rubin df), printing both side by side.

Pure: the analysis table and the fit's spec in, files out. The tables are rebuilt from the spec
(imputation, m, seed), so they are the fit's own data sets exactly when the analysis table is the
snapshot the fit was made on (the caller checks the data hash).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from prognosis.fitting import BINARY_COLUMN, analysis_tables

OUTCOME_COLUMNS = {"mortality": ["died"], "unfavourable": ["unfavourable"], "gos": ["gos_6m"],
                   "survival": ["days_to_death_or_censor", "died"]}
R_KINDS = ("logistic", "ordinal", "cox")


def _rhs(terms: list[str], knots: list[float] | None) -> str:
    parts = []
    for t in terms:
        if t == "age" and knots:
            parts.append(f"rcs(age, c({', '.join(repr(float(k)) for k in knots)}))")
        else:
            parts.append(t)
    return " + ".join(parts) if parts else "1"


def r_script(spec: dict[str, Any], outcome: str, n_tables: int) -> str:
    """The R script refitting the model of `spec` on imputed_1.csv .. imputed_<n>.csv and pooling it."""
    kind = spec["model_kind"]
    if kind not in R_KINDS:
        raise ValueError(f"export-r: a {kind} model has no R counterpart here; export a {'/'.join(R_KINDS)} fit")
    terms = list(spec["terms"])
    knots = (spec.get("model") or {}).get("knots")
    rhs = _rhs(terms, knots)
    penalties = _ridge_penalties(spec, n_tables)
    firth_sets = _firth_sets(spec, n_tables)
    if kind == "logistic" and penalties:
        # ctstudy's ridge is lrm's penalized likelihood (prognosis.logistic.ridge_logit): the same penalty on
        # each imputed data set gives the same estimates and covariance.
        fit = f"lrm({BINARY_COLUMN[outcome]} ~ {rhs}, data = d, penalty = penalties[i], x = TRUE, y = TRUE)"
    elif kind == "logistic" and firth_sets:
        # ctstudy's Firth fit (prognosis.logistic.firth_logit) is brglm2's bias reduction for logistic
        # regression, on the imputed data sets that separated; the others by maximum likelihood.
        fit = (f"if (i %in% firth_sets) glm({BINARY_COLUMN[outcome]} ~ {rhs}, family = binomial, data = d, "
               f"method = brglm2::brglmFit, type = 'AS_mean') "
               f"else glm({BINARY_COLUMN[outcome]} ~ {rhs}, family = binomial, data = d)")
    elif kind == "logistic":
        fit = f"glm({BINARY_COLUMN[outcome]} ~ {rhs}, family = binomial, data = d)"
    elif kind == "ordinal":
        # ctstudy fits 6 - GOS (a positive coefficient = a worse outcome); clm's logit P(Y <= j) = theta_j - x'b.
        fit = f"clm(factor(6 - gos_6m, levels = 1:5, ordered = TRUE) ~ {rhs}, data = d)"
    else:
        fit = f"coxph(Surv(days_to_death_or_censor, died) ~ {rhs}, data = d, ties = 'efron')"
    estimation = ("ridge penalized likelihood, each data set's penalty as ctstudy chose it: "
                  + ", ".join(f"{p:.6g}" for p in penalties)) if penalties else "maximum likelihood"
    if firth_sets and kind == "logistic":
        estimation = ("Firth's penalized likelihood (brglm2) on data set(s) " + ", ".join(map(str, firth_sets))
                      + ", where the outcome is separated; maximum likelihood on the others")
    return f"""# Refit of a ctstudy model in R: {kind} model of {outcome} on {', '.join(terms)}; {estimation}.
# Run from this folder: Rscript refit.R   (R packages: rms, survival, ordinal, mice; brglm2 for a Firth fit)
# Each imputed_<i>.csv is one of the {n_tables} data set(s) ctstudy fitted; the model is refitted on each and
# the coefficients pooled by Rubin's rules (Barnard-Rubin df with complete-data df n - k), as ctstudy does.
suppressPackageStartupMessages({{library(rms); library(survival); library(ordinal); library(mice)}})
if (!exists("export_dir")) export_dir <- "."
sets <- lapply(seq_len({n_tables}), function(i) read.csv(file.path(export_dir, sprintf("imputed_%d.csv", i))))
penalties <- c({", ".join(repr(float(p)) for p in penalties) or "0"})
firth_sets <- c({", ".join(str(int(i)) for i in firth_sets)})
fits <- lapply(seq_along(sets), function(i) {{ d <- sets[[i]]; {fit} }})
beta <- function(f) if (inherits(f, "clm")) f$beta else coef(f)
cov <- function(f) {{ v <- vcov(f); b <- names(beta(f)); v[b, b, drop = FALSE] }}
est <- sapply(fits, beta)
est <- if (is.matrix(est)) est else matrix(est, nrow = 1)
k <- nrow(est)
n <- nrow(sets[[1]])
pooled <- t(sapply(seq_len(k), function(j) {{
    if (length(fits) == 1) return(c(est[j, 1], sqrt(cov(fits[[1]])[j, j]), Inf))
    p <- pool.scalar(est[j, ], sapply(fits, function(f) cov(f)[j, j]), n = n, k = k)
    c(p$qbar, sqrt(p$t), p$df)
}}))
ours <- read.csv(file.path(export_dir, "ctstudy_coefficients.csv"))
ours <- ours[ours$term != "const" | "{kind}" == "logistic", ]
table <- data.frame(term = ours$term, r_estimate = pooled[, 1], r_se = pooled[, 2], r_df = pooled[, 3],
                    ctstudy_estimate = ours$coef, ctstudy_se = ours$se)
print(table, digits = 5)
result <- list(term = table$term, r_estimate = table$r_estimate, r_se = table$r_se, r_df = table$r_df)
"""


def _firth_sets(spec: dict[str, Any], n_tables: int) -> list[int]:
    """The imputed data sets (from 1) that ctstudy fitted by Firth's penalized likelihood, or []."""
    estimation = (spec.get("model") or {}).get("estimation") or {}
    if estimation.get("method") != "firth":
        return []
    return [int(i) for i in estimation.get("data_sets") or range(1, n_tables + 1)]


def _ridge_penalties(spec: dict[str, Any], n_tables: int) -> list[float]:
    """The ridge penalty of each imputed data set's fit, or [] for a maximum-likelihood fit."""
    estimation = (spec.get("model") or {}).get("estimation") or {}
    if estimation.get("method") != "ridge" or estimation.get("terms"):  # a fallback on some terms: not lrm's
        return []
    by_set = estimation.get("penalty_by_imputation") or [estimation["penalty"]] * n_tables
    if len(by_set) != n_tables:
        raise ValueError(f"export-r: the fit records {len(by_set)} ridge penalties for {n_tables} data sets")
    return [float(p) for p in by_set]


def export_r(table: pd.DataFrame, fit: dict[str, Any], out_dir: Path) -> list[Path]:
    """Write the fit's analysis tables, its coefficients and refit.R into `out_dir`; returns the paths.

    `fit` is a stored fit as `store.model_fit_dict` gives it (outcome, coefficients, spec)."""
    spec = fit["spec"]
    outcome = fit["outcome"]
    if outcome not in OUTCOME_COLUMNS:
        raise ValueError(f"export-r: unknown outcome {outcome!r} in the fit")
    imputation = spec.get("imputation", "mice")
    tables = analysis_tables(table, OUTCOME_COLUMNS[outcome], list(spec["terms"]), imputation,
                             int(spec.get("m") or 1), int(spec.get("seed", 0)))
    out_dir.mkdir(parents=True, exist_ok=True)
    script = r_script(spec, outcome, len(tables))  # refuses a model kind without an R counterpart first
    keep = ["center", *dict.fromkeys([*spec["terms"], *OUTCOME_COLUMNS[outcome], "died"])]
    paths = []
    for i, d in enumerate(tables, start=1):
        path = out_dir / f"imputed_{i}.csv"
        d[[c for c in keep if c in d.columns]].to_csv(path, index=False)
        paths.append(path)
    coefficients = pd.DataFrame(fit["coefficients"])
    path = out_dir / "ctstudy_coefficients.csv"
    coefficients[["term", "coef", "se"]].to_csv(path, index=False)
    paths.append(path)
    path = out_dir / "refit.R"
    path.write_text(script, encoding="utf-8")
    paths.append(path)
    return paths
