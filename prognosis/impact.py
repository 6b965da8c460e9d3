"""The IMPACT prognostic models applied with their published coefficients, as an external baseline.

Source: Steyerberg EW, Mushkudiani N, Perel P, et al. Predicting outcome after traumatic brain
injury: development and international validation of prognostic scores based on admission
characteristics. PLoS Med 2008;5(8):e165 (and the tbi-impact.org model fit), as transcribed in
the project's ANCHORS.md (shared notes). The core and extended clinical terms agree with the published odds ratios
(Table 3 of the external validation in Scand J Trauma Resusc Emerg Med 2014, doi
10.1186/s13049-014-0068-9); the intercepts, the CT terms and the lab terms are UNCHECKED against
the original paper. The motor-untestable coefficient of the lab model for unfavourable outcome
reads .059 in our source (likely .859); our data have no "untestable" motor category (gcs_motor is
1-6), so that term is never non-zero here and the doubt cannot affect any prediction: it is kept
as transcribed and marked.

Coding: age per year; GCS motor 1-4 dummies (5-6 reference); pupils one / none reactive (both
reactive reference); Marshall CT class I, III/IV, V/VI dummies (II reference); hypoxia,
hypotension, tSAH, EDH 0/1; glucose mmol/L; hemoglobin g/dL. p = 1 / (1 + exp(-LP)).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import expit

IMPACT_MODELS = ("core", "core+ct", "core+ct+lab")
IMPACT_OUTCOMES = ("mortality", "unfavourable")

_TERMS = ("intercept", "age", "motor_1", "motor_2", "motor_3", "motor_4", "motor_untestable", "pupils_one",
          "pupils_none", "hypoxia", "hypotension", "marshall_1", "marshall_3_4", "marshall_5_6", "tsah", "edh",
          "glucose_mmol_l", "hemoglobin_g_dl")
# (mortality, unfavourable) per term for core, core+CT, core+CT+lab; None = not in that model.
_TABLE = {
    "intercept": ((-3.109, -2.644), (-3.787, -3.023), (-3.184, -2.470)),
    "age": ((0.034, 0.038), (0.032, 0.033), (0.020, 0.029)),
    "motor_1": ((1.447, 1.393), (1.205, 1.218), (0.965, 1.105)),
    "motor_2": ((1.397, 2.078), (1.207, 1.852), (1.109, 1.801)),
    "motor_3": ((0.797, 1.266), (0.746, 1.185), (0.778, 1.186)),
    "motor_4": ((0.39, 0.632), (0.313, 0.575), (0.31, 0.548)),
    "motor_untestable": ((0.522, 0.885), (0.425, 0.837), (0.462, 0.059)),  # .059 unchecked, see module doc
    "pupils_one": ((0.514, 0.592), (0.334, 0.442), (0.09, 0.201)),
    "pupils_none": ((1.239, 1.216), (0.97, 1.003), (0.533, 0.712)),
    "hypoxia": (None, (0.237, 0.316), (0.36, 0.396)),
    "hypotension": (None, (0.667, 0.614), (0.366, 0.44)),
    "marshall_1": (None, (-0.298, -0.53), (-0.15, -0.567)),
    "marshall_3_4": (None, (0.774, 0.543), (0.715, 0.508)),
    "marshall_5_6": (None, (0.651, 0.497), (0.807, 0.571)),
    "tsah": (None, (0.606, 0.567), (0.74, 0.666)),
    "edh": (None, (-0.379, -0.572), (-0.51, -0.687)),
    "glucose_mmol_l": (None, None, (0.097, 0.085)),
    "hemoglobin_g_dl": (None, None, (-0.086, -0.092)),
}


def impact_coefficients(model: str, outcome: str) -> pd.Series:
    """Published coefficients (with intercept) of an IMPACT model for `mortality` or `unfavourable`."""
    if model not in IMPACT_MODELS or outcome not in IMPACT_OUTCOMES:
        raise ValueError(f"IMPACT: model must be one of {IMPACT_MODELS} and outcome one of {IMPACT_OUTCOMES}, "
                         f"got {model!r}, {outcome!r}")
    m, o = IMPACT_MODELS.index(model), IMPACT_OUTCOMES.index(outcome)
    return pd.Series({t: _TABLE[t][m][o] for t in _TERMS if _TABLE[t][m] is not None}, name=f"{model}/{outcome}")


def impact_design(df: pd.DataFrame) -> pd.DataFrame:
    """IMPACT's coded predictors from analysis-table columns (missing raw value -> missing term)."""
    def dummy(col: str, values: tuple[int, ...]) -> pd.Series:
        v = df[col].astype(float)
        return v.isin(values).astype(float).where(v.notna())

    out = pd.DataFrame({"intercept": 1.0, "age": df["age"].astype(float)}, index=df.index)
    for k in range(1, 5):
        out[f"motor_{k}"] = dummy("gcs_motor", (k,))
    out["motor_untestable"] = 0.0  # no untestable category in our data (see module doc)
    out["pupils_one"] = dummy("pupils_unreactive", (1,))
    out["pupils_none"] = dummy("pupils_unreactive", (2,))
    out["marshall_1"] = dummy("marshall_ct", (1,))
    out["marshall_3_4"] = dummy("marshall_ct", (3, 4))
    out["marshall_5_6"] = dummy("marshall_ct", (5, 6))
    for col in ("hypoxia", "hypotension", "tsah", "edh", "glucose_mmol_l", "hemoglobin_g_dl"):
        out[col] = df[col].astype(float) if col in df else np.nan
    return out


def impact_linear_predictor(df: pd.DataFrame, model: str, outcome: str) -> pd.Series:
    """IMPACT LP per row; NaN where a predictor the model uses is missing."""
    coef = impact_coefficients(model, outcome)
    x = impact_design(df)[coef.index]
    return pd.Series(x.to_numpy() @ coef.to_numpy(), index=df.index, name=coef.name)


def impact_risk(df: pd.DataFrame, model: str, outcome: str) -> pd.Series:
    """IMPACT predicted probability of 6-month mortality or unfavourable outcome per row."""
    return expit(impact_linear_predictor(df, model, outcome))


def impact_validation_table(table: pd.DataFrame) -> pd.DataFrame:
    """IMPACT models applied to our patients: n, events, AUC (DeLong 95% CI), Brier and calibration
    per model and outcome, on the patients with every predictor the model uses (complete case)."""
    from prognosis.metrics import binary_metrics

    rows = []
    for outcome, col in (("mortality", "died"), ("unfavourable", "unfavourable")):
        for model in IMPACT_MODELS:
            risk = impact_risk(table, model, outcome)
            keep = risk.notna() & table[col].notna()
            y = table.loc[keep, col].astype(float)
            if y.nunique() < 2:
                continue
            rows.append({"outcome": outcome, "model": f"IMPACT {model}", "n": int(keep.sum()),
                         "events": int(y.sum()), **binary_metrics(y, risk[keep])})
    return pd.DataFrame(rows)
