"""Fixtures of the prognosis tests: a synthetic study with a known outcome model.

`study(n, seed)` uses `synthetic.outcomes.simulate_tabular` (the project's generator) and falls
back to `simulate_inline` only if that module is absent, so the model tests can run while it is
being built. The inline one follows docs/data-formats.md: a proportional-odds GOS on LP.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

TRUE_TERMS = {
    "age": 0.03, "motor_1": 1.3, "motor_2": 1.4, "motor_3": 0.8, "motor_4": 0.4, "pupils_one": 0.5,
    "pupils_none": 1.1, "hypoxia": 0.3, "hypotension": 0.6, "glucose_mmol_l": 0.08, "hemoglobin_g_dl": -0.09,
    "log_adm_hematoma_ml": 0.35, "log_peak_edema_ml": 0.25, "adm_midline_shift_mm": 0.08, "adm_lesion_count": 0.15,
    "adm_lesion_left": 0.0,
}
CUTPOINTS = [-3.2, -2.5, -1.4, 0.3]


def simulate_inline(n: int, seed: int, n_centers: int = 5, missing_rate: float = 0.0) -> dict:
    """A small stand-in of simulate_tabular: returns the same keys (clinical, outcomes, patient_features, model)."""
    rng = np.random.default_rng(seed)
    centers = np.array([f"C{c:02d}" for c in range(n_centers)])[rng.integers(0, n_centers, n)]
    pid = [f"{c}-{i:05d}" for i, c in enumerate(centers)]
    age = np.clip(rng.normal(45, 18, n), 16, 95).round(0)
    motor = rng.choice([1, 2, 3, 4, 5, 6], n, p=[0.15, 0.08, 0.1, 0.12, 0.3, 0.25])
    pupils = rng.choice([0, 1, 2], n, p=[0.7, 0.12, 0.18])
    clinical = pd.DataFrame({
        "center": centers, "patient_id": pid, "age": age, "sex": rng.choice(["M", "F"], n),
        "gcs_motor": motor, "pupils_unreactive": pupils,
        "hypoxia": rng.binomial(1, 0.2, n), "hypotension": rng.binomial(1, 0.18, n),
        "glucose_mmol_l": np.clip(rng.normal(8, 2.5, n), 3, 30).round(1),
        "hemoglobin_g_dl": np.clip(rng.normal(13, 2, n), 6, 19).round(1),
        "marshall_ct": rng.choice([1, 2, 3, 4, 5, 6], n), "tsah": rng.binomial(1, 0.4, n),
        "edh": rng.binomial(1, 0.1, n),
    })
    count = rng.poisson(1.2, n)
    hematoma = np.where(count > 0, rng.lognormal(2.0, 1.2, n), 0.0)
    feats = pd.DataFrame({
        "center": centers, "patient_id": pid, "adm_hematoma_ml": hematoma.round(2),
        "adm_edema_ml": (hematoma * 0.5).round(2),
        "peak_edema_ml": (hematoma * rng.uniform(0.5, 2.0, n)).round(2),
        "adm_midline_shift_mm": np.clip(hematoma / 8 + rng.normal(0, 1, n), 0, None).round(1),
        "adm_lesion_count": count,
        "adm_lesion_left": np.where(count > 0, rng.binomial(1, 0.5, n), np.nan),
    })
    from prognosis.terms import design_terms

    terms = design_terms(pd.concat([clinical, feats.drop(columns=["center", "patient_id"])], axis=1))
    lp = terms[list(TRUE_TERMS)].to_numpy() @ np.array(list(TRUE_TERMS.values()))
    cum = expit(np.array(CUTPOINTS)[None, :] + lp[:, None])
    u = rng.uniform(size=n)
    gos = 1 + (u[:, None] > cum).sum(axis=1)
    died = (gos == 1).astype(int)
    days = np.where(died == 1, rng.uniform(1, 180, n), 180.0).round(1)
    outcomes = pd.DataFrame({"center": centers, "patient_id": pid, "gos_6m": gos, "died": died,
                             "days_to_death_or_censor": days})
    if missing_rate:
        for col in ("glucose_mmol_l", "hemoglobin_g_dl", "hypoxia"):
            clinical.loc[rng.uniform(size=n) < missing_rate, col] = np.nan
    model = {"model": "proportional_odds", "terms": TRUE_TERMS, "cutpoints": CUTPOINTS,
             "mortality": {"intercept": CUTPOINTS[0], "coefficients": TRUE_TERMS},
             "unfavourable": {"intercept": CUTPOINTS[2], "coefficients": TRUE_TERMS},
             "null_terms": ["adm_lesion_left"]}
    return {"clinical": clinical, "outcomes": outcomes, "patient_features": feats, "model": model,
            "true_lp": lp}


@pytest.fixture(scope="session")
def small_study() -> dict:
    return simulate_inline(600, seed=11)
