"""Firth's penalized likelihood for a logistic model on data that separate the outcome: finite estimates
equal to R's brglm2 (Firth's bias reduction, the same estimates for logistic regression), used and said
wherever a fit separates (the fit itself, its pooled record, its bootstrap refits)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from r_reference import run_r

from prognosis.export_r import r_script
from prognosis.logistic import LogisticModel, firth_logit

TERMS = ["age", "hypoxia", "glucose_mmol_l"]


def separated_patients(seed: int = 3, n: int = 80) -> pd.DataFrame:
    """Patients among whom every hypoxic one died (quasi-complete separation on `hypoxia`)."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"age": rng.normal(45, 18, n).round(), "hypoxia": rng.binomial(1, 0.15, n),
                       "glucose_mmol_l": rng.gamma(8, 1, n).round(1)})
    lp = 0.03 * df["age"] + 0.1 * df["glucose_mmol_l"] - 2.8
    df["died"] = rng.binomial(1, 1 / (1 + np.exp(-lp)))
    df.loc[df["hypoxia"] == 1, "died"] = 1
    return df


def test_a_separated_fit_is_finite_uses_firth_and_says_so() -> None:
    df = separated_patients()
    model = LogisticModel(TERMS, "died").fit(df)
    assert model.estimation_["method"] == "firth"
    assert "separation" in model.estimation_["reason"] and model.estimation_["terms"] == ["hypoxia"]
    assert np.isfinite(model.params_.to_numpy()).all() and np.isfinite(model.standard_errors_.to_numpy()).all()
    assert 1 < model.params_["hypoxia"] < 10  # large, but finite
    # Without separation the same data keep maximum likelihood.
    df.loc[df.index[df["hypoxia"] == 1][0], "died"] = 0
    assert LogisticModel(TERMS, "died").fit(df).estimation_["method"] == "maximum likelihood"


def test_firth_maximizes_the_jeffreys_penalized_likelihood() -> None:
    df = separated_patients()
    x = np.column_stack([np.ones(len(df)), df[TERMS].to_numpy(float)])
    y = df["died"].to_numpy(float)
    beta, cov, _, converged = firth_logit(x, y)
    assert converged

    def penalized(b: np.ndarray) -> float:
        eta = x @ b
        p = 1 / (1 + np.exp(-eta))
        return float(np.sum(y * eta - np.logaddexp(0, eta)) + 0.5 * np.linalg.slogdet((x.T * p * (1 - p)) @ x)[1])

    best = penalized(beta)
    for j in range(len(beta)):
        for h in (1e-3, -1e-3):
            moved = beta.copy()
            moved[j] += h
            assert penalized(moved) < best


def test_pooled_firth_fits_name_the_imputed_data_sets_that_needed_it() -> None:
    separated = separated_patients()
    plain = separated.copy()
    plain.loc[plain.index[plain["hypoxia"] == 1][:2], "died"] = 0
    fits = [LogisticModel(TERMS, "died").fit(d) for d in (separated, plain, separated)]
    pooled = LogisticModel(TERMS, "died").pool_from(fits)
    assert pooled.estimation_["method"] == "firth"
    assert pooled.estimation_["data_sets"] == [1, 3] and pooled.estimation_["n_data_sets"] == 3
    assert np.isfinite(pooled.params_.to_numpy()).all()


def test_firth_matches_r_brglm2(tmp_path: Path) -> None:
    df = separated_patients()
    r = run_r("""
        fit <- glm(died ~ age + hypoxia + glucose_mmol_l, family = binomial, data = d,
                   method = "brglmFit", type = "AS_mean")
        result <- list(coef = as.list(coef(fit)), se = as.list(sqrt(diag(vcov(fit)))))
    """, {"d": df}, tmp_path, packages=("brglm2",))
    model = LogisticModel(TERMS, "died").fit(df)
    assert model.estimation_["method"] == "firth"
    np.testing.assert_allclose(model.params_.to_numpy(), list(r["coef"].values()), atol=1e-4)
    np.testing.assert_allclose(model.standard_errors_.to_numpy(), list(r["se"].values()), atol=1e-4)


def test_bootstrap_refits_that_separate_use_firth() -> None:
    df = separated_patients()
    model = LogisticModel(TERMS, "died").fit(df)
    indices = np.random.default_rng(0).integers(0, len(df), size=(20, len(df)))
    on_sample, on_all = model.bootstrap_risks(df, indices)
    assert model.bootstrap_firth_refits_ > 0  # resamples keep the hypoxic deaths: they separate too
    assert np.isfinite(on_all).all() and (np.minimum(on_all, 1 - on_all) > 1e-6).all()


def test_export_r_refits_firth_on_the_separated_data_sets_with_brglm2(tmp_path: Path) -> None:
    separated = separated_patients()
    plain = separated.copy()
    plain.loc[plain.index[plain["hypoxia"] == 1][:2], "died"] = 0
    sets = [separated, plain, separated]
    pooled = LogisticModel(TERMS, "died").pool_from([LogisticModel(TERMS, "died").fit(d) for d in sets])
    out = tmp_path / "export"
    out.mkdir()
    for i, d in enumerate(sets, start=1):
        d.to_csv(out / f"imputed_{i}.csv", index=False)
    pd.DataFrame({"term": pooled.params_.index, "coef": pooled.params_.to_numpy(),
                  "se": pooled.standard_errors_.to_numpy()}).to_csv(out / "ctstudy_coefficients.csv", index=False)
    script = r_script({"model_kind": "logistic", "terms": TERMS, "model": pooled.to_spec()}, "mortality", 3)
    assert "brglmFit" in script and "firth_sets <- c(1, 3)" in script
    r = run_r(f'export_dir <- "{out.as_posix()}"\n' + script, {}, tmp_path / "r",
              packages=("rms", "survival", "ordinal", "mice", "brglm2"))
    np.testing.assert_allclose(r["r_estimate"], pooled.params_.to_numpy(), atol=1e-4)
    np.testing.assert_allclose(r["r_se"], pooled.standard_errors_.to_numpy(), rtol=1e-3)


def test_a_fit_whose_data_separate_says_firth_was_used_and_validates_with_firth_refits() -> None:
    from prognosis.analysis_table import build_analysis_table
    from prognosis.fitting import fit_outcome_model
    from synthetic.outcomes import simulate_tabular

    study = simulate_tabular(200, seed=0)
    table = build_analysis_table(study.clinical, study.outcomes, study.patient_level)
    table.loc[table["hypoxia"] == 1, "died"] = 1  # every hypoxic patient died
    result = fit_outcome_model(table, "mortality", "clinical", m=2, cv=None, n_boot=10, seed=0, penalty="none")
    estimation = result.metrics["estimation"]
    assert estimation["method"] == "firth" and estimation["terms"] == ["hypoxia"]
    assert estimation["data_sets"] == [1, 2] and estimation["n_data_sets"] == 2
    assert "Firth's penalized likelihood" in result.extra["estimation_note"]
    assert result.metrics["n_boot_penalized_refits"] > 0  # the bootstrap refits separate too, and use Firth
    assert result.spec["model"]["estimation"]["method"] == "firth"
    assert np.isfinite(result.model.params_.to_numpy()).all()
