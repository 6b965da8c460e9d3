"""Checks on simulated studies: pooling of every parameter, the comparison over
all m, in-fold imputation, categorical imputation, corrected calibration, per-center meta-analysis."""

from __future__ import annotations

from functools import partial

import numpy as np
import pandas as pd
import pytest
from prognosis_study import complete_table, observed_table
from sklearn.metrics import roc_auc_score

from prognosis.cox import CoxModel
from prognosis.fitting import compare_feature_sets, fit_outcome_model, imputer_for
from prognosis.imputation import multiply_imputed_tables
from prognosis.logistic import LogisticModel
from prognosis.metrics import auc
from prognosis.ordinal import OrdinalGOSModel
from prognosis.rubin import d2_pooled_chisq, rubin_pool
from prognosis.terms import terms_of
from prognosis.validation import bootstrap_optimism, cross_validated_predictions, d1_pooled_wald, per_center_validation
from synthetic.outcomes import simulate_tabular

CLIN = terms_of("clinical")


@pytest.fixture(scope="module")
def imputed(study) -> list[pd.DataFrame]:  # noqa: ANN001
    obs = observed_table(study).dropna(subset=["gos_6m", "days_to_death_or_censor", "died"]).reset_index(drop=True)
    return multiply_imputed_tables(obs.iloc[:800].reset_index(drop=True), m=3, seed=1)


def test_pooled_cutpoints_are_the_rubin_means(imputed: list[pd.DataFrame]) -> None:
    fits = [OrdinalGOSModel(CLIN).fit(d) for d in imputed]
    pooled = OrdinalGOSModel(CLIN).pool_from(fits)
    per = np.stack([f.cutpoints_ for f in fits])
    assert not np.allclose(per[0], per[1])  # the imputations differ...
    np.testing.assert_allclose(pooled.cutpoints_, per.mean(axis=0))  # ...and the pool is their mean, not fit 1
    # The stored spec predicts again exactly.
    again = OrdinalGOSModel.from_spec(pooled.to_spec())
    pd.testing.assert_frame_equal(again.predict_proba(imputed[0]), pooled.predict_proba(imputed[0]))


def test_pooled_cox_predicts_with_a_baseline_recomputed_for_the_pooled_coefficients(imputed) -> None:  # noqa: ANN001
    fits = [CoxModel(CLIN).fit(d) for d in imputed]
    pooled = CoxModel(CLIN).pool_from(fits)
    np.testing.assert_allclose(pooled.params_, np.mean([f.params_ for f in fits], axis=0))
    assert pooled.concordance_ == pytest.approx(np.mean([f.concordance_ for f in fits]))
    # Breslow with the pooled coefficients: deaths by day t predicted = deaths observed (on each data set).
    d = imputed[0]
    surv = pooled.predict_survival(d, [180.0]).to_numpy()[0]
    observed_deaths = ((d["days_to_death_or_censor"] <= 180) & (d["died"] == 1)).sum()
    assert (1 - surv).sum() == pytest.approx(observed_deaths, rel=0.15)
    assert not np.allclose(pooled.baseline_.iloc[-1], fits[0].baseline_.iloc[-1])
    again = CoxModel.from_spec(pooled.to_spec())
    np.testing.assert_allclose(again.predict_survival(d.iloc[:5], [90.0]).to_numpy(),
                               pooled.predict_survival(d.iloc[:5], [90.0]).to_numpy(), rtol=1e-6)
    glob = pooled.global_ph_test() if hasattr(pooled, "fitter_") else fits[0].global_ph_test()
    assert glob["df"] == len(pooled.params_) and 0 <= glob["p"] <= 1


def test_barnard_rubin_df_stays_below_the_complete_data_df_and_fmi_is_the_fraction_of_information() -> None:
    q = np.array([[1.0], [2.0], [3.0]])
    u = np.full((3, 1, 1), 0.5)
    large = rubin_pool(q, u)
    small = rubin_pool(q, u, dof_complete=20)
    assert small.dof[0] < min(large.dof[0], 20)
    r = (4 / 3) / 0.5
    assert small.fmi[0] == pytest.approx((r + 2 / (small.dof[0] + 3)) / (r + 1))


def test_d1_matches_its_formula_and_uses_every_imputation() -> None:
    rng = np.random.default_rng(0)
    q = rng.normal([0.5, -0.3], 0.1, size=(5, 2))
    u = np.stack([np.diag([0.02, 0.03])] * 5)
    res = d1_pooled_wald(q, u)
    qb, w, b = q.mean(0), u.mean(0), np.cov(q, rowvar=False)
    r1 = (1 + 1 / 5) * np.trace(b @ np.linalg.inv(w)) / 2
    assert res["d1_statistic"] == pytest.approx(qb @ np.linalg.solve(w, qb) / (2 * (1 + r1)))
    assert res["m"] == 5 and res["d1_p"] != d1_pooled_wald(q[:1], u[:1])["d1_p"]
    d2 = d2_pooled_chisq([10.0, 12.0, 11.0], 2)
    assert 0 < d2["p"] < 0.05 and d2["m"] == 3


def test_the_comparison_pools_all_m_imputations() -> None:
    obs = observed_table(simulate_tabular(400, seed=8))
    one, _ = compare_feature_sets(obs, outcomes=("mortality",), m=1, n_boot=20, n_repeats=1)
    three, _ = compare_feature_sets(obs, outcomes=("mortality",), m=3, n_boot=20, n_repeats=1)
    assert one.loc[0, "m"] == 1 and three.loc[0, "m"] == 3
    assert three.loc[0, "lr_statistic_min"] < three.loc[0, "lr_statistic_max"]  # every imputation was fitted
    assert np.isfinite(three.loc[0, "d1_df2"]) and three.loc[0, "d1_p"] != one.loc[0, "d1_p"]
    assert three.loc[0, "auc_full"] != one.loc[0, "auc_full"]


def test_imputed_categories_keep_their_observed_frequencies(study) -> None:  # noqa: ANN001
    obs = observed_table(study)
    filled = multiply_imputed_tables(obs, m=3, seed=2)
    for col in ("pupils_unreactive", "hypoxia", "hypotension"):
        gaps = obs[col].isna()
        assert gaps.sum() > 30, col
        observed = obs.loc[~gaps, col].value_counts(normalize=True)
        imputed = pd.concat([f.loc[gaps, col] for f in filled]).value_counts(normalize=True)
        assert set(imputed.index) <= set(observed.index)  # codes stay codes
        n = 3 * gaps.sum()
        for level, share in observed.items():
            se = np.sqrt(share * (1 - share) / gaps.sum())  # one draw's sampling error (conservative for 3)
            assert abs(imputed.get(level, 0.0) - share) < 3.5 * se, (col, level, imputed.get(level), share, n)


def test_held_out_outcomes_are_hidden_from_the_fold_imputation() -> None:
    obs = observed_table(simulate_tabular(300, seed=4))
    obs.loc[:60, "glucose_mmol_l"] = np.nan
    known = np.r_[np.ones(200, bool), np.zeros(len(obs) - 200, bool)]
    a = multiply_imputed_tables(obs, m=1, seed=0, outcome_known=known)[0]
    flipped = obs.copy()
    flipped.loc[200:, "died"] = 1 - flipped.loc[200:, "died"]  # change only the hidden outcomes
    b = multiply_imputed_tables(flipped, m=1, seed=0, outcome_known=known)[0]
    pd.testing.assert_series_equal(a["glucose_mmol_l"], b["glucose_mmol_l"])
    assert (b.loc[200:, "died"] == flipped.loc[200:, "died"]).all()  # outcomes returned untouched


def test_a_held_out_patients_outcome_never_reaches_their_cross_validated_risk() -> None:
    """Leave-one-center-out, so the splits do not depend on the outcomes: shuffling the outcomes of one
    center's patients leaves their out-of-fold risks exactly as they were (their fold imputes them with
    those outcomes hidden), while it does change the other folds, where those patients train."""
    obs = observed_table(simulate_tabular(400, seed=12)).dropna(subset=["died"]).reset_index(drop=True)
    terms = terms_of("clinical+imaging")
    center = obs["center"] == obs["center"].iloc[0]
    outcomes = ["died", "unfavourable", "gos_6m", "days_to_death_or_censor"]
    shuffled = obs.copy()
    shuffled.loc[center, outcomes] = obs.loc[center, outcomes].sample(frac=1, random_state=0).to_numpy()
    assert (shuffled.loc[center, "died"] != obs.loc[center, "died"]).any()

    def oof(rows: pd.DataFrame) -> pd.DataFrame:
        return cross_validated_predictions(lambda: LogisticModel(terms, "died"), rows, "died", cv="center",
                                           impute=imputer_for(terms), m=2)

    before, after = oof(obs), oof(shuffled)
    pd.testing.assert_frame_equal(before.loc[center], after.loc[center])
    assert not np.allclose(before.loc[~center], after.loc[~center])


def _with_known(impute, known: bool, rows: pd.DataFrame, _: np.ndarray, seed: int, m: int) -> list[pd.DataFrame]:  # noqa: ANN001
    """The in-fold imputer with every row's outcome hidden (False) or given (True), whatever the fold."""
    return impute(rows, np.full(len(rows), known), seed, m)


def _cv_auc(obs: pd.DataFrame, terms: list[str], seed: int, impute) -> float:  # noqa: ANN001
    oof = cross_validated_predictions(lambda: LogisticModel(terms, "died"), obs, "died", n_splits=5, n_repeats=1,
                                      seed=seed, impute=impute, m=2)
    y = obs["died"].to_numpy(float)
    return float(np.mean([auc(y, oof[c]) for c in oof]))


@pytest.mark.slow
def test_in_fold_imputation_shows_no_optimism_against_imputation_without_the_outcome() -> None:
    """Across seeds, CV AUC with the outcome in the (in-fold) imputation model minus CV AUC with the
    outcome left out of imputation entirely: no optimism beyond Monte Carlo error (imputing on all rows
    gave +0.003 in 8 of 8 seeds). The same comparison with the held-out rows' outcomes given to their
    imputation (the leak) shows that optimism, so the test can see it."""
    terms = terms_of("clinical+imaging")
    honest, leaky = [], []
    for seed in range(16):
        obs = observed_table(simulate_tabular(1000, seed=100 + seed)).dropna(subset=["died"]).reset_index(drop=True)
        impute = imputer_for(terms)
        blind = _cv_auc(obs, terms, seed, partial(_with_known, impute, False))
        honest.append(_cv_auc(obs, terms, seed, impute) - blind)
        leaky.append(_cv_auc(obs, terms, seed, partial(_with_known, impute, True)) - blind)
    honest, leaky = np.array(honest), np.array(leaky)

    def se(d: np.ndarray) -> float:
        return float(d.std(ddof=1) / np.sqrt(len(d)))

    assert leaky.mean() > 3 * se(leaky), leaky  # the leak is visible at this size...
    assert honest.mean() < 3 * se(honest), honest  # ...and in-fold imputation does not have it
    assert (leaky - honest).mean() > 3 * se(leaky - honest)


def test_corrected_calibration_slope_is_below_1_on_small_samples_and_near_1_on_large() -> None:
    slopes = {}
    for n in (120, 3000):
        table = complete_table(simulate_tabular(n, seed=11))
        res = bootstrap_optimism(lambda: LogisticModel(terms_of("clinical+imaging"), "died"), table, "died",
                                 n_boot=60, seed=0)
        slopes[n] = res["validate"]["calibration_slope"]["corrected"]
        assert res["validate"]["calibration_slope"]["apparent"] == pytest.approx(1.0, abs=1e-6)
        assert res["shrinkage"] == pytest.approx(min(1.0, slopes[n]))
    assert slopes[120] < 0.85
    assert 0.93 < slopes[3000] <= 1.01


def test_batched_recalibration_matches_statsmodels() -> None:
    from scipy.special import logit

    from prognosis.metrics import binary_metrics
    from prognosis.validate_indexes import recalibration

    rng = np.random.default_rng(3)
    p = rng.uniform(0.05, 0.95, 400)
    y = (rng.uniform(size=400) < p ** 1.3).astype(float)
    coef = recalibration(y[None, :], logit(p)[None, :])
    assert coef[0, 1] == pytest.approx(binary_metrics(y, p)["calibration_slope"], abs=1e-6)


def test_per_center_table_and_random_effects_pool_on_a_constructed_case() -> None:
    rng = np.random.default_rng(5)
    ys, ps, cs = [], [], []
    for name, n, shift in (("A", 200, 1.5), ("B", 150, 0.8), ("C", 250, 1.2), ("D", 100, 2.0)):
        y = (rng.uniform(size=n) < 0.3).astype(float)
        ps.append(1 / (1 + np.exp(-(rng.normal(size=n) + shift * y - 1))))
        ys.append(y)
        cs += [name] * n
    y, p, c = np.concatenate(ys), np.concatenate(ps), np.array(cs)
    table, meta = per_center_validation(y, p, c)
    for _, row in table.iterrows():
        sel = c == row["center"]
        assert row["n"] == sel.sum() and row["events"] == y[sel].sum()
        assert row["auc"] == pytest.approx(roc_auc_score(y[sel], p[sel]))
    # DerSimonian-Laird by hand on logit AUC.
    a = table["auc"].to_numpy()
    est, var = np.log(a / (1 - a)), (table["auc_se"].to_numpy() / (a * (1 - a))) ** 2
    w = 1 / var
    fixed = (w * est).sum() / w.sum()
    q = (w * (est - fixed) ** 2).sum()
    tau2 = max(0.0, (q - 3) / (w.sum() - (w**2).sum() / w.sum()))
    wr = 1 / (var + tau2)
    pooled = (wr * est).sum() / wr.sum()
    assert meta["auc"]["tau2_logit"] == pytest.approx(tau2)
    assert meta["auc"]["pooled"] == pytest.approx(1 / (1 + np.exp(-pooled)))
    assert meta["auc"]["tau2_logit"] > 0  # the shifts differ: heterogeneity is found
    a = meta["auc"]
    assert a["pi_lower"] < a["lower"] < a["pooled"] < a["upper"] < a["pi_upper"]


def test_fit_record_has_provenance_shrunk_calculator_and_validate_table() -> None:
    obs = observed_table(simulate_tabular(300, seed=6))
    res = fit_outcome_model(obs, "mortality", "clinical", m=2, n_boot=30, cv="center")
    prov = res.spec["provenance"]
    assert prov["packages"]["statsmodels"] and prov["python"]
    assert res.spec["imputation_settings"]["seed"] == 0 and res.spec["imputation_settings"]["m"] == 2
    shrunk = LogisticModel.from_spec(res.spec["model_shrunk"])
    factor = res.metrics["shrinkage"]
    assert 0 < factor <= 1
    np.testing.assert_allclose(shrunk.params_.drop("const"), res.model.params_.drop("const") * factor)
    assert set(res.metrics["validate"]) == {"auc", "calibration_slope", "calibration_intercept", "brier",
                                            "r2_nagelkerke", "emax", "D", "U", "Q", "g"}
    assert len(res.curves["per_center"]) == obs["center"].nunique() and "auc" in res.metrics["center_meta"]
    assert {"predicted", "observed", "lower", "upper"} <= set(res.curves["cv_calibration_smooth"])


def test_impact_applies_to_gcs_12_or_less_codes_missing_motor_untestable_and_scores_imputed_rows() -> None:
    from prognosis.fitting import analysis_tables
    from prognosis.impact import impact_design, impact_validation_table

    obs = observed_table(simulate_tabular(400, seed=9))
    obs.loc[:19, "gcs_motor"] = np.nan
    design = impact_design(obs)
    assert (design.loc[:19, "motor_untestable"] == 1).all() and (design.loc[:19, "motor_1":"motor_4"] == 0).all().all()
    cc = impact_validation_table(obs)
    above = int((obs["gcs_total"] > 12).sum())
    assert above > 0 and (cc["excluded_gcs_above_12"] == above).all()
    eligible = (obs["gcs_total"] <= 12) & obs["died"].notna() & obs["pupils_unreactive"].notna()
    core = cc.set_index(["outcome", "model"]).loc[("mortality", "IMPACT core")]
    assert core["n"] == eligible.sum()  # nobody dropped for a missing motor score (only for missing pupils)
    imputed = {"mortality": analysis_tables(obs, ["died"], terms_of("clinical+imaging"), "mice", 2, 0)}
    mi = impact_validation_table(obs, imputed).set_index(["outcome", "model"])
    assert mi.loc[("mortality", "IMPACT core+ct+lab"), "scored_on"] == "2 imputed data sets"
    assert mi.loc[("mortality", "IMPACT core+ct+lab"), "n"] >= core["n"] - int(obs["gcs_total"].isna().sum())


def test_riley_criteria_match_pmsampsize_and_epv_counts_the_smaller_class() -> None:
    from prognosis.sample_size import events_per_variable, riley_sample_size

    # Riley et al. BMJ 2020's worked example (pmsampsize: rsquared 0.288, 24 parameters, prevalence 0.174).
    r = riley_sample_size(24, 0.174, 0.288)
    assert (r["n_criterion_1_shrinkage"], r["n_criterion_2_r2"]) == (623, 662)
    assert r["n_required"] == 662
    assert events_per_variable(100, 80, 10) == {"smaller_class": 20, "events_per_variable": 2.0}


def test_brant_test_finds_non_proportional_odds_and_not_when_they_hold() -> None:
    from prognosis.assumptions import brant_test

    rng = np.random.default_rng(1)
    n = 3000
    x = rng.normal(size=n)
    z = rng.normal(size=n)
    cum = np.array([-1.5, -0.5, 0.5, 1.5])
    # P(GOS <= k) = expit(cut_k + 0.8 z + b_k x): z holds PO; x's effect grows across the cuts.
    b = np.array([0.0, 0.4, 0.8, 1.2])
    u = rng.uniform(size=n)
    le = u[:, None] < 1 / (1 + np.exp(-(cum[None, :] + 0.8 * z[:, None] + b[None, :] * x[:, None])))
    gos = np.where(le.any(axis=1), le.argmax(axis=1) + 1, 5)
    df = pd.DataFrame({"x": x, "z": z, "gos_6m": gos})
    res = brant_test(df, ["x", "z"]).set_index("term")
    assert res.loc["x", "p"] < 1e-6 and res.loc["z", "p"] > 0.01 and res.loc["omnibus", "df"] == 6


def test_random_intercept_model_recovers_a_known_center_spread() -> None:
    from prognosis.centers import random_intercept_model

    table = complete_table(simulate_tabular(1500, seed=2))
    rng = np.random.default_rng(0)
    shift = dict(zip(sorted(table["center"].unique()), [-1.0, -0.5, 0.0, 0.5, 1.0], strict=True))
    lp = LogisticModel(CLIN, "died").fit(table).linear_predictor(table) + table["center"].map(shift).to_numpy()
    table["died_shifted"] = (rng.uniform(size=len(table)) < 1 / (1 + np.exp(-lp))).astype(float)
    res = random_intercept_model(table, CLIN, "died_shifted")
    assert res["center_sd_lower"] < np.std(list(shift.values()), ddof=1) < res["center_sd_upper"]
    effects = pd.Series(res["center_effects"])
    assert effects.corr(pd.Series(shift)) > 0.95
    assert random_intercept_model(table, CLIN, "died")["center_sd"] < 0.4  # no center effect generated
