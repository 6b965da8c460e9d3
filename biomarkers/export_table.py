"""The biomarker tables as written to a file: numbers to significant digits, and which model made each mask.

Features are computed in float64, and a volume of 0.604584 mL comes out of a voxel sum times a voxel volume as
0.6045839999999999: CSV then shows binary noise no measurement carries. Values are rounded to SIGNIFICANT_DIGITS
significant digits (far finer than any CT measurement: a voxel is about 0.5 x 0.5 x 5 mm, 1 mm³ = 0.001 mL).
Pure pandas / numpy.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SIGNIFICANT_DIGITS = 6


def round_significant(values: np.ndarray, digits: int = SIGNIFICANT_DIGITS) -> np.ndarray:
    """`values` rounded to `digits` significant digits (NaN, infinities and zeros unchanged).

    Scaled by a power of ten, rounded, scaled back with an exact operation on either side (dividing by 10**d
    for small values, multiplying the integer for large ones) so that the result is the double nearest the
    rounded decimal and prints as it ('0.604584', not '0.6045840000000001').
    """
    x = np.asarray(values, dtype=float)
    out = x.copy()
    ok = np.isfinite(x) & (x != 0)
    if not ok.any():
        return out
    v = x[ok]
    decimals = (digits - 1 - np.floor(np.log10(np.abs(v)))).astype(int)
    rounded = np.empty_like(v)
    small = decimals >= 0
    p = 10.0 ** decimals[small]
    rounded[small] = np.round(v[small] * p) / p
    q = 10.0 ** (-decimals[~small])
    rounded[~small] = np.round(v[~small] / q) * q
    out[ok] = rounded
    return out


def rounded_table(table: pd.DataFrame, digits: int = SIGNIFICANT_DIGITS) -> pd.DataFrame:
    """A copy of `table` with every float column rounded to `digits` significant digits (other columns as they
    are)."""
    out = table.copy()
    for column in out.columns:
        if pd.api.types.is_float_dtype(out[column]):
            out[column] = round_significant(out[column].to_numpy(), digits)
    return out


def patient_mask_models(series: pd.DataFrame) -> pd.DataFrame:
    """Per patient (center, patient_id), the mask models of their scans, joined with '; ' (column mask_models)."""
    if series.empty:
        return pd.DataFrame(columns=["center", "patient_id", "mask_models"])
    return (series.groupby(["center", "patient_id"], sort=False)["mask_model"]
            .agg(lambda models: "; ".join(sorted(set(models)))).rename("mask_models").reset_index())
