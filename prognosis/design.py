"""The numeric design matrix of a model: chosen terms, optional age spline, and a missing-data check.

Models here fit complete data only; missing values are handled before (multiple imputation or
complete-case, `prognosis.imputation`), so a gap at fit time is an error naming the column.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from prognosis.terms import age_spline_basis, age_spline_knots


def check_complete(df: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    """Raise a ValueError naming missing columns, or columns with missing values and the first rows concerned."""
    absent = [c for c in columns if c not in df.columns]
    if absent:
        raise ValueError(f"{what}: column(s) {absent} not in the data (have {list(df.columns)})")
    gaps = df[list(columns)].isna()
    if gaps.to_numpy().any():
        counts = gaps.sum()
        detail = ", ".join(
            f"{c} ({int(n)} missing, first at row {df.index[gaps[c].to_numpy()][0]!r})"
            for c, n in counts.items() if n
        )
        raise ValueError(f"{what}: missing values in {detail}; impute first (prognosis.imputation) or drop those rows")


def spline_knots_for(df: pd.DataFrame, terms: Sequence[str],
                     n_knots: int | Sequence[float] | None) -> list[float] | None:
    """Knots of the age spline (None when no spline or no age term): learned from `df` when `n_knots` is a
    number of knots, or the given knots themselves when it is a sequence (knots fixed once for all the
    imputed data sets and refits of one model, so that their coefficients belong to one basis)."""
    if n_knots is None or isinstance(n_knots, int) and not n_knots or "age" not in terms:
        return None
    if not isinstance(n_knots, int):
        knots = [float(k) for k in n_knots]
        if len(knots) < 3 or any(b <= a for a, b in zip(knots, knots[1:], strict=False)):
            raise ValueError(f"age spline: knots must be at least 3 increasing values, got {knots}")
        return knots
    return age_spline_knots(df["age"], n_knots)


def design_matrix(df: pd.DataFrame, terms: Sequence[str], knots: Sequence[float] | None, what: str) -> pd.DataFrame:
    """Float matrix of the terms (age expanded into its spline basis when knots are given), rows as in df."""
    if knots is None or "age" not in terms:  # the common case, column by column into one block (it runs in every refit)
        if any(t not in df.columns for t in terms):
            check_complete(df, terms, what)  # names the absent columns
        values = (np.column_stack([df[t].to_numpy(dtype=float, na_value=np.nan) for t in terms]) if len(terms)
                  else np.empty((len(df), 0)))
        if not np.isfinite(values).all():
            check_complete(df, terms, what)  # names the columns and rows with missing values
            bad = [t for j, t in enumerate(terms) if not np.isfinite(values[:, j]).all()]
            raise ValueError(f"{what}: non-finite values in {bad}")
        return pd.DataFrame(values, index=df.index, columns=list(terms))
    check_complete(df, terms, what)
    parts = []
    for term in terms:
        if term == "age" and knots is not None:
            parts.append(age_spline_basis(df["age"].astype(float), knots).set_axis(df.index))
        else:
            parts.append(df[[term]].astype(float))
    x = pd.concat(parts, axis=1) if parts else pd.DataFrame(index=df.index)
    if not np.isfinite(x.to_numpy()).all():
        bad = x.columns[~np.isfinite(x.to_numpy()).all(axis=0)].tolist()
        raise ValueError(f"{what}: non-finite values in {bad}")
    return x
