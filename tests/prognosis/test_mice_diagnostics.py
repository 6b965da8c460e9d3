"""mice's diagnostics: per-term λ, riv and FMI of the pooling over imputations, with mice's names and
definitions; trace of the imputed values' mean per iteration and chain; observed against imputed distributions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from prognosis.analysis_table import build_analysis_table, rows_with_outcome
from prognosis.imputation import IMPUTED_COLUMNS, ITERATIONS, multiply_imputed_tables
from prognosis.imputation_diagnostics import BINS, imputation_diagnostics
from prognosis.report import performance_section
from prognosis.rubin import rubin_pool
from synthetic.outcomes import simulate_tabular


def test_lambda_and_riv_follow_their_definitions() -> None:
    q = np.array([[1.0, 5.0], [2.0, 5.0], [3.0, 5.0]])  # the second parameter does not vary: no missing information
    u = np.full((3, 2, 2), 0.0)
    u[:, 0, 0], u[:, 1, 1] = 0.5, 0.2
    pooled = rubin_pool(q, u)
    b, w, m = 1.0, 0.5, 3
    t = w + (1 + 1 / m) * b
    assert pooled.riv[0] == pytest.approx((1 + 1 / m) * b / w)
    assert pooled.lam[0] == pytest.approx((1 + 1 / m) * b / t)
    assert pooled.riv[1] == 0 and pooled.lam[1] == 0 and pooled.fmi[1] == 0
    # The FMI's large-sample limit is λ: (r + 2 / (df + 3)) / (r + 1) -> r / (r + 1) = λ.
    assert pooled.lam[0] == pytest.approx(pooled.riv[0] / (1 + pooled.riv[0]))
    assert pooled.fmi[0] > pooled.lam[0]


def _rows_with_gaps(n: int = 120, seed: int = 4) -> pd.DataFrame:
    study = simulate_tabular(n, seed=seed)
    return rows_with_outcome(build_analysis_table(study.clinical, study.outcomes, study.patient_level), ["died"])


def test_the_trace_is_the_mean_and_sd_of_the_imputed_values_at_each_iteration() -> None:
    rows = _rows_with_gaps()
    plain = multiply_imputed_tables(rows, m=2, seed=7)
    trace: list[dict] = []
    traced = multiply_imputed_tables(rows, m=2, seed=7, trace=trace)
    for a, b in zip(plain, traced, strict=True):  # recording changes no draw
        pd.testing.assert_frame_equal(a, b)
    frame = pd.DataFrame(trace)
    variable = "glucose_mmol_l"
    gaps = rows[variable].isna()
    assert gaps.sum() > 1
    assert len(frame) == 2 * ITERATIONS * frame["variable"].nunique()
    assert set(frame["variable"]) == {c for c in IMPUTED_COLUMNS if c in rows and rows[c].isna().any()}
    # The last iteration's values are the completed tables' imputed values: checked by hand.
    for chain, table in enumerate(traced, start=1):
        last = frame[(frame["variable"] == variable) & (frame["chain"] == chain)
                     & (frame["iteration"] == ITERATIONS)].iloc[0]
        assert last["mean"] == pytest.approx(table.loc[gaps, variable].mean())
        assert last["sd"] == pytest.approx(table.loc[gaps, variable].std(ddof=1))
    # The first iteration's are those of a chain stopped after one iteration (same seed, same draws so far).
    one = multiply_imputed_tables(rows, m=1, seed=7, max_iter=1)[0]
    first = frame.query("variable == @variable and chain == 1 and iteration == 1").iloc[0]
    assert first["mean"] == pytest.approx(one.loc[gaps, variable].mean())


def test_observed_and_imputed_distributions_are_binned_shares() -> None:
    rows = _rows_with_gaps()
    out = imputation_diagnostics(rows, m=3, seed=7)
    dist = out["imputation_distribution"]
    assert set(dist["group"]) == {"observed", "imputation 1", "imputation 2", "imputation 3"}
    shares = dist.groupby(["variable", "group"])["share"].sum()
    np.testing.assert_allclose(shares.to_numpy(), 1.0)
    # The Marshall CT class is a code: binned by value, shares as counted by hand.
    marshall = dist.query("variable == 'marshall_ct'")
    observed = marshall.query("group == 'observed'").set_index("lower")["share"]
    counted = rows["marshall_ct"].dropna().value_counts(normalize=True)
    np.testing.assert_allclose(observed.reindex(counted.index).to_numpy(), counted.to_numpy())
    assert (marshall["lower"] == marshall["upper"]).all()
    assert (dist.query("variable == 'glucose_mmol_l'").groupby("group").size() == BINS).all()
    assert len(out["imputation_trace"]) == 3 * ITERATIONS * dist["variable"].nunique()


def test_the_report_draws_the_trace_and_distributions_once_per_outcome_with_dictionary_labels() -> None:
    rows = _rows_with_gaps()
    curves = {k: v.to_dict("records") for k, v in imputation_diagnostics(rows, m=3, seed=7).items()}
    fits = [{"id": i, "outcome": "mortality", "feature_set": fs, "model_kind": "logistic", "n_patients": len(rows),
             "n_events": 30, "cv": "kfold", "spec": {"imputation": "mice", "m": 3}, "metrics": {"curves": curves}}
            for i, fs in ((1, "clinical"), (2, "clinical+imaging"))]
    drawn: list[tuple] = []

    def figure(fig, caption: str) -> str:  # noqa: ANN001
        drawn.append((fig, caption))
        return caption

    performance_section(fits, figure)
    trace = [fig for fig, caption in drawn if "each iteration" in caption]
    dist = [fig for fig, caption in drawn if "Observed values" in caption]
    assert len(trace) == 1 and len(dist) == 1  # the two models share one imputation
    titles = {a.text for a in trace[0].layout.annotations}
    assert {"Glucose", "Marshall CT class"} <= titles and not any("_" in t for t in titles)
    first_panel = [t for t in trace[0].data if t.xaxis == "x"]  # one line per chain
    assert len(first_panel) == 3 and all(list(t.x) == list(range(1, ITERATIONS + 1)) for t in first_panel)
    colours = {t.line.color for t in dist[0].data}
    assert len(colours) == 2  # observed in one colour, every imputation in the other
