"""The IMPACT prognostic models applied with their published coefficients, as an external baseline.

Source: the IMPACT calculator's coefficient document ("Coefs_model_fit_2006_v2", the model fit of
Steyerberg EW, Mushkudiani N, Perel P, et al. Predicting outcome after traumatic brain injury:
development and international validation of prognostic scores based on admission characteristics.
PLoS Med 2008;5(8):e165; the paper itself prints only a points chart). All 104 values agree with
two independent transcriptions of that document (shared ANCHORS.md), including motor-untestable
= 0.059 for unfavourable outcome in the lab model; the clinical terms also agree with Table 3 of
the 2014 external validation (Scand J Trauma Resusc Emerg Med, doi 10.1186/s13049-014-0068-9).

Population: IMPACT was developed on patients with GCS <= 12; `impact_validation_table` applies it
there and counts the patients excluded. A motor score that is missing is coded as IMPACT does,
"untestable/missing" (its own coefficient), not dropped or imputed.

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
    "motor_untestable": ((0.522, 0.885), (0.425, 0.837), (0.462, 0.059)),
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


def impact_design(df: pd.DataFrame, motor_untestable: pd.Series | np.ndarray | None = None) -> pd.DataFrame:
    """IMPACT's coded predictors from analysis-table columns (missing raw value -> missing term),
    except the motor score: a missing one is IMPACT's "untestable/missing" category (motor dummies
    0, `motor_untestable` 1). `motor_untestable` marks those rows when df's motor was imputed."""
    def dummy(col: str, values: tuple[int, ...]) -> pd.Series:
        v = df[col].astype(float)
        return v.isin(values).astype(float).where(v.notna())

    untestable = (df["gcs_motor"].isna().to_numpy() if motor_untestable is None
                  else np.asarray(motor_untestable, dtype=bool))
    out = pd.DataFrame({"intercept": 1.0, "age": df["age"].astype(float)}, index=df.index)
    for k in range(1, 5):
        out[f"motor_{k}"] = dummy("gcs_motor", (k,)).where(~untestable, 0.0)
    out["motor_untestable"] = untestable.astype(float)
    out["pupils_one"] = dummy("pupils_unreactive", (1,))
    out["pupils_none"] = dummy("pupils_unreactive", (2,))
    out["marshall_1"] = dummy("marshall_ct", (1,))
    out["marshall_3_4"] = dummy("marshall_ct", (3, 4))
    out["marshall_5_6"] = dummy("marshall_ct", (5, 6))
    for col in ("hypoxia", "hypotension", "tsah", "edh", "glucose_mmol_l", "hemoglobin_g_dl"):
        out[col] = df[col].astype(float) if col in df else np.nan
    return out


def impact_linear_predictor(df: pd.DataFrame, model: str, outcome: str,
                            motor_untestable: pd.Series | np.ndarray | None = None) -> pd.Series:
    """IMPACT LP per row; NaN where a predictor the model uses is missing."""
    coef = impact_coefficients(model, outcome)
    x = impact_design(df, motor_untestable)[coef.index]
    return pd.Series(x.to_numpy() @ coef.to_numpy(), index=df.index, name=coef.name)


def impact_risk(df: pd.DataFrame, model: str, outcome: str,
                motor_untestable: pd.Series | np.ndarray | None = None) -> pd.Series:
    """IMPACT predicted probability of 6-month mortality or unfavourable outcome per row."""
    return expit(impact_linear_predictor(df, model, outcome, motor_untestable))


IMPACT_MAX_GCS = 12  # IMPACT's development population: moderate and severe TBI


def impact_eligible(table: pd.DataFrame) -> tuple[np.ndarray, dict[str, int]]:
    """Rows IMPACT applies to (GCS total <= 12), and the counts excluded (GCS > 12, GCS unknown)."""
    gcs = table["gcs_total"].astype(float) if "gcs_total" in table else pd.Series(np.nan, index=table.index)
    ok = (gcs <= IMPACT_MAX_GCS).to_numpy()
    return ok, {"excluded_gcs_above_12": int((gcs > IMPACT_MAX_GCS).sum()),
                "excluded_gcs_unknown": int(gcs.isna().sum())}


def impact_validation_table(table: pd.DataFrame, imputed: dict[str, list[pd.DataFrame]] | None = None) -> pd.DataFrame:
    """IMPACT models applied to our patients with GCS <= 12: n, events, excluded, AUC (DeLong 95% CI),
    Brier and calibration per model and outcome.

    With `imputed` ({outcome: the m completed tables our models of that outcome were fitted on}),
    IMPACT is scored on those same rows, each metric averaged over the m tables, so its AUC compares
    with ours; without it, on the patients with every predictor the model uses (complete case).
    A missing motor score is "untestable" in either case.
    """
    from prognosis.metrics import binary_metrics

    rows = []
    for outcome, col in (("mortality", "died"), ("unfavourable", "unfavourable")):
        sets = (imputed or {}).get(outcome)
        for model in IMPACT_MODELS:
            per, n, events, excluded = [], 0, 0, {}
            for d in sets or [table]:
                ok, excluded = impact_eligible(d)
                untestable = None
                if sets is not None:
                    raw = table.set_index(["center", "patient_id"])["gcs_motor"]
                    untestable = raw.reindex(pd.MultiIndex.from_frame(d[["center", "patient_id"]])).isna().to_numpy()
                risk = impact_risk(d, model, outcome, untestable)
                keep = ok & risk.notna().to_numpy() & d[col].notna().to_numpy()
                y = d.loc[keep, col].astype(float)
                if y.nunique() < 2:
                    continue
                per.append(binary_metrics(y, risk[keep]))
                n, events = int(keep.sum()), int(y.sum())
            if not per:
                continue
            rows.append({"outcome": outcome, "model": f"IMPACT {model}", "n": n, "events": events, **excluded,
                         "scored_on": f"{len(sets)} imputed data sets" if sets else "complete cases",
                         **pd.DataFrame(per).mean().to_dict()})
    return pd.DataFrame(rows)
