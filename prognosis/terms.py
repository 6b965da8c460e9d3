"""Model terms: raw clinical and imaging variables -> the design columns of docs/data-formats.md.

The term names and codings are the contract with `synthetic` (the generating model) and the
dashboard: `age` per year; `motor_1`..`motor_4` dummies of the GCS motor score with 5-6 as
reference (IMPACT); `pupils_one` / `pupils_none` dummies with both reactive as reference; volumes
on the log1p scale (`log_adm_hematoma_ml`, `log_peak_edema_ml`), because hematoma and edema
volumes are strongly right-skewed and their effect on outcome flattens with size.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

CLINICAL_TERMS: tuple[str, ...] = (
    "age", "motor_1", "motor_2", "motor_3", "motor_4", "pupils_one", "pupils_none",
    "hypoxia", "hypotension", "glucose_mmol_l", "hemoglobin_g_dl",
)
IMAGING_TERMS: tuple[str, ...] = (
    "log_adm_hematoma_ml", "log_peak_edema_ml", "adm_midline_shift_mm", "adm_lesion_count", "adm_lesion_left",
)
NULL_TERMS: tuple[str, ...] = ("adm_lesion_left",)
FEATURE_SETS: dict[str, tuple[str, ...]] = {
    "clinical": CLINICAL_TERMS,
    "imaging": IMAGING_TERMS,
    "clinical+imaging": CLINICAL_TERMS + IMAGING_TERMS,
}

# Raw analysis-table columns each term is derived from (what imputation works on).
CLINICAL_RAW: tuple[str, ...] = (
    "age", "gcs_motor", "pupils_unreactive", "hypoxia", "hypotension", "glucose_mmol_l", "hemoglobin_g_dl",
)
IMAGING_RAW: tuple[str, ...] = (
    "adm_hematoma_ml", "peak_edema_ml", "adm_midline_shift_mm", "adm_lesion_count", "adm_lesion_left",
)
# Raw columns that take integer codes; imputed values are rounded and clipped to these ranges.
INTEGER_RANGES: dict[str, tuple[int, int]] = {
    "gcs_motor": (1, 6), "pupils_unreactive": (0, 2), "hypoxia": (0, 1), "hypotension": (0, 1),
    "marshall_ct": (1, 6), "tsah": (0, 1), "edh": (0, 1), "adm_lesion_count": (0, 1000), "adm_lesion_left": (0, 1),
}


def terms_of(feature_set: str) -> list[str]:
    """The model terms of a named feature set (`clinical`, `imaging`, `clinical+imaging`)."""
    try:
        return list(FEATURE_SETS[feature_set])
    except KeyError:
        raise ValueError(f"Unknown feature set {feature_set!r}; expected one of {sorted(FEATURE_SETS)}") from None


_RAW_OF_TERM = {"motor_1": "gcs_motor", "motor_2": "gcs_motor", "motor_3": "gcs_motor", "motor_4": "gcs_motor",
                "pupils_one": "pupils_unreactive", "pupils_none": "pupils_unreactive",
                "log_adm_hematoma_ml": "adm_hematoma_ml", "log_peak_edema_ml": "peak_edema_ml"}


def raw_columns_of(terms: Sequence[str]) -> list[str]:
    """The raw analysis-table columns the terms are computed from, in order, without repeats."""
    return list(dict.fromkeys(_RAW_OF_TERM.get(t, t) for t in terms))


def design_terms(raw: pd.DataFrame) -> pd.DataFrame:
    """All model terms computed from the raw columns present in `raw` (missing raw value -> missing term).

    `adm_lesion_left` is structurally empty when there is no admission lesion; it is coded 0 then
    (no left lesion), so that a lesion-free scan is not treated as a missing value.
    """
    return pd.DataFrame(design_term_arrays(raw), index=raw.index)


def design_term_arrays(raw: pd.DataFrame | Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """`design_terms` as float arrays by term name, from a DataFrame or a mapping of raw columns
    (the imputation builds the terms of every completed data set this way, without pandas' per-column cost)."""

    def col(name: str) -> np.ndarray:
        v = raw[name]
        return v.astype(float).to_numpy() if isinstance(v, pd.Series) else np.asarray(v, dtype=float)

    out: dict[str, np.ndarray] = {}
    if "age" in raw:
        out["age"] = col("age")
    if "gcs_motor" in raw:
        motor = col("gcs_motor")
        for k in range(1, 5):
            out[f"motor_{k}"] = np.where(np.isnan(motor), np.nan, (motor == k).astype(float))
    if "pupils_unreactive" in raw:
        pupils = col("pupils_unreactive")
        out["pupils_one"] = np.where(np.isnan(pupils), np.nan, (pupils == 1).astype(float))
        out["pupils_none"] = np.where(np.isnan(pupils), np.nan, (pupils == 2).astype(float))
    for name in ("hypoxia", "hypotension", "glucose_mmol_l", "hemoglobin_g_dl", "adm_midline_shift_mm",
                 "adm_lesion_count"):
        if name in raw:
            out[name] = col(name)
    if "adm_hematoma_ml" in raw:
        out["log_adm_hematoma_ml"] = np.log1p(col("adm_hematoma_ml"))
    if "peak_edema_ml" in raw:
        out["log_peak_edema_ml"] = np.log1p(col("peak_edema_ml"))
    if "adm_lesion_left" in raw:
        left = col("adm_lesion_left")
        if "adm_lesion_count" in raw:
            left = np.where((col("adm_lesion_count") == 0) & np.isnan(left), 0.0, left)
        out["adm_lesion_left"] = left
    return out


def age_spline_knots(age: pd.Series | np.ndarray, n_knots: int) -> list[float]:
    """Knots of a restricted cubic spline at Harrell's recommended quantiles (Regression Modeling Strategies, 2.4.6)."""
    quantiles = {3: (0.10, 0.5, 0.90), 4: (0.05, 0.35, 0.65, 0.95), 5: (0.05, 0.275, 0.5, 0.725, 0.95)}
    if n_knots not in quantiles:
        raise ValueError(f"age spline: n_knots must be 3, 4 or 5, got {n_knots}")
    return [float(v) for v in np.nanquantile(np.asarray(age, dtype=float), quantiles[n_knots])]


def age_spline_basis(age: pd.Series | np.ndarray, knots: Sequence[float]) -> pd.DataFrame:
    """Restricted cubic spline basis of age (Harrell's truncated-power form): `age` plus len(knots)-2 terms.

    Hand-written (ten lines) because patsy's `cr` cannot evaluate outside its boundary knots and
    hides the linear term; this form is linear beyond the outer knots, keeps `age` as its first
    column (so a fit with only that column is the plain linear model) and is rebuilt for new
    patients from the stored knots alone. Harrell, Regression Modeling Strategies, eq. 2.25.
    """
    x = np.asarray(age, dtype=float)
    t = np.asarray(knots, dtype=float)
    k = len(t)
    scale = (t[-1] - t[0]) ** 2  # keeps the nonlinear columns on the scale of age

    def cube(v: np.ndarray) -> np.ndarray:
        return np.maximum(v, 0.0) ** 3

    cols = {"age": x}
    for j in range(k - 2):
        cols[f"age_rcs{j + 1}"] = (
            cube(x - t[j])
            - cube(x - t[k - 2]) * (t[k - 1] - t[j]) / (t[k - 1] - t[k - 2])
            + cube(x - t[k - 1]) * (t[k - 2] - t[j]) / (t[k - 1] - t[k - 2])
        ) / scale
    return pd.DataFrame(cols, index=age.index if isinstance(age, pd.Series) else None)
