"""mice's diagnostics of an imputation, as numbers small enough to keep with a fit record.

Trace: the mean and SD of each variable's imputed values after each iteration of each chain (mice's
`plot(imp)`: chains that mix and show no trend have converged). Distributions: each imputed variable's
observed values against each imputation's imputed values, binned (mice's `densityplot`/`stripplot`:
imputed values far from the observed ones flag a wrong imputation model, or data missing not at random).
Stored as m x iterations x variables trace rows and at most `BINS` bins per variable and group.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from prognosis.imputation import IMPUTED_COLUMNS, ITERATIONS, ImputationCache, multiply_imputed_tables

BINS = 15
CODE_LEVELS = 12  # a variable with at most this many distinct observed values is binned by value (codes, flags)


def imputation_diagnostics(rows: pd.DataFrame, m: int, seed: int, required: tuple[str, ...] = (),
                           cache: ImputationCache | None = None,
                           max_iter: int = ITERATIONS,
                           columns: tuple[str, ...] = IMPUTED_COLUMNS) -> dict[str, pd.DataFrame]:
    """{"imputation_trace": variable, chain, iteration, mean, sd; "imputation_distribution": variable,
    group ("observed" or "imputation k"), lower, upper, share} for the imputation a fit uses (the same
    rows, m, seed and `columns` give the same draws). With `cache`, computed once per rows, m, seed and columns."""
    key = (int(pd.util.hash_pandas_object(rows, index=False).sum()), tuple(rows.columns), m, seed, max_iter,
           tuple(columns))
    if cache is not None and key in cache.diagnostics:
        return cache.diagnostics[key]
    trace: list[dict[str, object]] = []
    tables = multiply_imputed_tables(rows, m=m, seed=seed, max_iter=max_iter, columns=columns, required=required,
                                     trace=trace)
    trace_frame = pd.DataFrame(trace, columns=["variable", "chain", "iteration", "mean", "sd"])
    variables = list(dict.fromkeys(trace_frame["variable"]))
    out = {"imputation_trace": trace_frame,
           "imputation_distribution": observed_and_imputed(rows, tables, variables)}
    if cache is not None:
        cache.diagnostics[key] = out
    return out


def observed_and_imputed(rows: pd.DataFrame, tables: list[pd.DataFrame], variables: list[str]) -> pd.DataFrame:
    """Share of each group's values per bin: the observed values, and each imputation's imputed values
    (the rows missing in `rows`). Codes and flags are binned by value (lower = upper), others in
    `BINS` equal bins over the range of all values."""
    records = []
    for c in variables:
        gaps = rows[c].isna().to_numpy()
        groups = {"observed": rows[c].to_numpy(dtype=float)[~gaps]}
        for i, t in enumerate(tables, start=1):
            groups[f"imputation {i}"] = t[c].to_numpy(dtype=float)[gaps]
        everything = np.concatenate(list(groups.values()))
        levels = np.unique(groups["observed"])
        if len(levels) <= CODE_LEVELS:
            lower = upper = np.union1d(levels, np.unique(everything))
            for group, values in groups.items():
                counts = (values[:, None] == lower[None, :]).sum(axis=0)
                records += _rows(c, group, lower, upper, counts, len(values))
        else:
            edges = np.linspace(everything.min(), everything.max(), BINS + 1)
            for group, values in groups.items():
                counts = np.histogram(values, bins=edges)[0]
                records += _rows(c, group, edges[:-1], edges[1:], counts, len(values))
    return pd.DataFrame(records, columns=["variable", "group", "lower", "upper", "share"])


def _rows(variable: str, group: str, lower: np.ndarray, upper: np.ndarray, counts: np.ndarray,
          n: int) -> list[dict[str, object]]:
    return [{"variable": variable, "group": group, "lower": float(lo), "upper": float(hi),
             "share": float(k) / n if n else 0.0} for lo, hi, k in zip(lower, upper, counts, strict=True)]
