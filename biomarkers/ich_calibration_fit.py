"""Fitting a segmentation model's hemorrhage calibration on real units with known truth (pure; see ich_probability).

The units are a table with one row per unit (a CT-ICH slice, a 5 mm slab of a normal head): `set`, `patient`
(the group left out together), `hemorrhage` (truth), `types` (the CT-ICH `hemorrhage_diagnosis.csv` classes
present, "+"-joined) and the model's segmented volumes `iph_ml`, `eah_ml`, `ivh_ml`, `edema_ml`,
`hemorrhage_ml`. `bench/ich_detection_bench.py --fit --model blast-ct` makes it (and caches it) and calls
`fit_real_calibration`.

The model, for so few units (5 CT-ICH patients, all with hemorrhage, and one normal head): the log-volume
logistic of `biomarkers.ich_probability`, fitted by maximum a posteriori with independent Gaussian priors on
intercept and slope (mean PRIOR_MEAN, sd PRIOR_SD). The prior is centred on the phantom U-Net's calibration
(`ich_calibration_unet2d.json`, the same formula on the same label map): it says what a segmenter's volumes
usually mean (a speck is rarely a bleed, tens of mL always are) and lets the real units move it; it is not
applied as that model's calibration. It also keeps the fit finite when a left-out fold leaves one class only
(leaving the normal head out leaves no negative). scikit-learn's LogisticRegression can do neither (no prior
mean, no single-class fit), hence the few lines of scipy below.

Evaluation: cross-validated, each unit's probability from a fit without its group (`cv_groups`): a CT-ICH
patient's slices are left out together; the normal head's slabs one at a time. Leaving the normal head out
whole (strict leave-one-patient-out, also reported) leaves no negative unit at all: the fit then calls every
slab positive (0/25 specificity on BLAST-CT's units), which says the material cannot cross-validate
specificity across patients, not what the calibration does. The slabs left out one at a time share a head with
the slabs they are predicted from, so the specificity is optimistic for other heads. The operating point is
chosen on the cross-validated probabilities by a rule fixed before the fit: the highest threshold whose
sensitivity is at least MIN_SENSITIVITY. The shipped coefficients are the fit on all units.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import expit, log_expit

from biomarkers.ich_probability import CALIBRATED_VOLUMES, VOLUME_OFFSET_ML

FIT_SETS = ("CT-ICH slice", "GE 5 mm slab")
MIN_SENSITIVITY = 0.9
PRIOR_SD = 1.0
# The phantom U-Net's ich_probability coefficients (biomarkers/data/ich_calibration_unet2d.json), rounded.
PRIOR_MEAN = (1.06, 1.53)
# Calibrated quantity -> the CT-ICH classes (hemorrhage_diagnosis.csv columns) that make a unit positive.
# Subarachnoid blood counts for any hemorrhage only: the label map has no SAH class. Edema has no truth here.
CLASS_TYPES = {"p_iph_present": ("Intraparenchymal",), "p_eah_present": ("Epidural", "Subdural"),
               "p_ivh_present": ("Intraventricular",)}
UNIT_COLUMNS = ("set", "patient", "hemorrhage", "types", *sorted(set(CALIBRATED_VOLUMES.values())))


def checked_units(units: pd.DataFrame) -> pd.DataFrame:
    """The fitting units (sets FIT_SETS) of `units`, after checking the columns are there."""
    missing = [c for c in UNIT_COLUMNS if c not in units.columns]
    if missing:
        raise ValueError(f"units table lacks columns {missing} (see biomarkers.ich_calibration_fit)")
    fit = units[units["set"].isin(FIT_SETS)].copy()
    if fit.empty:
        raise ValueError(f"units table holds no unit of the sets {FIT_SETS}")
    fit["types"] = fit["types"].fillna("").astype(str)
    fit["hemorrhage"] = fit["hemorrhage"].astype(str).str.lower().isin(["true", "1"])
    if fit["hemorrhage"].all() or not fit["hemorrhage"].any():
        raise ValueError(f"units table holds only units {'with' if fit['hemorrhage'].all() else 'without'} "
                         "hemorrhage: a calibration needs both (is the GE normal head missing?)")
    return fit.reset_index(drop=True)


def truth(units: pd.DataFrame, name: str) -> np.ndarray | None:
    """Whether each unit holds what `name` is the probability of (None where the units have no truth for it)."""
    if name == "ich_probability":
        return units["hemorrhage"].to_numpy(bool)
    if name not in CLASS_TYPES:
        return None
    types = units["types"].str.split("+")
    return np.array([any(t in CLASS_TYPES[name] for t in ts) for ts in types], dtype=bool)


def log_volume(volume_ml: np.ndarray) -> np.ndarray:
    return np.log(np.clip(np.asarray(volume_ml, float), 0.0, None) + VOLUME_OFFSET_ML)


def map_logistic(x: np.ndarray, y: np.ndarray, prior_mean: tuple[float, float] = PRIOR_MEAN,
                 prior_sd: float = PRIOR_SD) -> tuple[float, float]:
    """(intercept, slope) maximising the logistic likelihood of y on x times the Gaussian priors."""
    x, y, mean = np.asarray(x, float), np.asarray(y, float), np.asarray(prior_mean, float)
    design = np.column_stack([np.ones_like(x), x])

    def objective(beta: np.ndarray) -> tuple[float, np.ndarray]:
        z = design @ beta
        nll = -np.sum(y * log_expit(z) + (1 - y) * log_expit(-z)) + np.sum((beta - mean) ** 2) / (2 * prior_sd ** 2)
        grad = design.T @ (expit(z) - y) + (beta - mean) / prior_sd ** 2
        return float(nll), grad

    result = minimize(objective, mean.copy(), jac=True, method="BFGS", options={"gtol": 1e-10})
    if not result.success and np.linalg.norm(result.jac) > 1e-6:
        raise ValueError(f"calibration fit did not converge: {result.message}")
    return float(result.x[0]), float(result.x[1])


def cv_groups(units: pd.DataFrame) -> np.ndarray:
    """The cross-validation group of each unit: its patient, or the unit itself for a patient with no positive
    unit (the normal head), whose removal as a whole would leave nothing negative to fit on."""
    patient = units["patient"].astype(str)
    negative_only = ~units.groupby(patient)["hemorrhage"].transform("any").to_numpy(bool)
    return np.where(negative_only, patient + "/" + units.index.astype(str), patient)


def lopo_probabilities(x: np.ndarray, y: np.ndarray, groups: np.ndarray, **prior) -> np.ndarray:
    """Each unit's probability from the fit on the other groups' units."""
    p = np.empty(len(x))
    for g in np.unique(groups):
        out = groups == g
        a, b = map_logistic(x[~out], y[~out], **prior)
        p[out] = expit(a + b * x[out])
    return p


def operating_threshold(p: np.ndarray, y: np.ndarray, min_sensitivity: float = MIN_SENSITIVITY) -> float:
    """The highest threshold t with sensitivity (p >= t among y) at least `min_sensitivity`."""
    for t in sorted(set(p[y]), reverse=True):
        if (p[y] >= t).mean() >= min_sensitivity:
            return float(t)
    raise ValueError("no positive unit to choose an operating point on")


def wilson(k: int, n: int) -> list[float]:
    """Wilson 95% interval of k/n (statsmodels)."""
    from statsmodels.stats.proportion import proportion_confint

    return [float(v) for v in proportion_confint(k, n, alpha=0.05, method="wilson")] if n else [float("nan")] * 2


def rates(p: np.ndarray, y: np.ndarray, threshold: float) -> dict[str, Any]:
    """Sensitivity and specificity at `threshold` with counts and Wilson intervals."""
    tp, fn = int((p[y] >= threshold).sum()), int((p[y] < threshold).sum())
    tn, fp = int((p[~y] < threshold).sum()), int((p[~y] >= threshold).sum())
    return {"sensitivity": [tp, tp + fn], "sensitivity_ci": wilson(tp, tp + fn),
            "specificity": [tn, tn + fp], "specificity_ci": wilson(tn, tn + fp)}


def brier(p: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean((p - y) ** 2))


def fit_real_calibration(units: pd.DataFrame, model_name: str, model_version: str,
                         prior_mean: tuple[float, float] = PRIOR_MEAN, prior_sd: float = PRIOR_SD,
                         min_sensitivity: float = MIN_SENSITIVITY) -> dict[str, Any]:
    """The calibration JSON (see biomarkers.ich_probability) of `model_name` `model_version` from `units`, with
    its leave-one-patient-out evaluation under `evaluation`."""
    fit = checked_units(units)
    groups = cv_groups(fit)
    patients = fit["patient"].astype(str).to_numpy()
    prior = {"prior_mean": tuple(prior_mean), "prior_sd": prior_sd}
    coefficients: dict[str, Any] = {}
    evaluation: dict[str, Any] = {}
    any_cv = None
    for name, column in CALIBRATED_VOLUMES.items():
        y = truth(fit, name)
        if y is None:
            coefficients[name] = None
            evaluation[name] = {"reason": "no truth for this class on the real units"}
            continue
        x = log_volume(fit[column].to_numpy())
        a, b = map_logistic(x, y, **prior)
        p_cv = lopo_probabilities(x, y, groups, **prior)
        coefficients[name] = {"intercept": a, "slope": b, "positives": int(y.sum()), "negatives": int((~y).sum())}
        evaluation[name] = {"brier_cv": brier(p_cv, y), "brier_fit": brier(expit(a + b * x), y)}
        if name == "ich_probability":
            any_cv = (x, p_cv, y)
    x, p_cv, y = any_cv
    threshold = operating_threshold(p_cv, y, min_sensitivity)
    evaluation["ich_probability"].update(rates(p_cv, y, threshold))
    p_strict = lopo_probabilities(x, y, patients, **prior)
    evaluation["strict_leave_one_patient_out"] = {"brier": brier(p_strict, y), **rates(p_strict, y, threshold)}
    a, b = coefficients["ich_probability"]["intercept"], coefficients["ich_probability"]["slope"]
    on_fit = rates(expit(a + b * log_volume(fit["hemorrhage_ml"].to_numpy())), y, threshold)
    return {
        "model": {"name": model_name, "version": model_version},
        "coefficients": coefficients,
        "operating_point": {
            "threshold": threshold,
            "sensitivity_on_fit": on_fit["sensitivity"][0] / on_fit["sensitivity"][1],
            "specificity_on_fit": on_fit["specificity"][0] / on_fit["specificity"][1],
            "rule": f"highest threshold with cross-validated sensitivity >= {min_sensitivity}",
        },
        "evaluation": {"method": "cross-validated: a CT-ICH patient's slices left out together, the normal head's "
                                 "slabs one at a time", **evaluation},
        "prior": {"intercept_mean": prior_mean[0], "slope_mean": prior_mean[1], "sd": prior_sd,
                  "centred_on": "the phantom U-Net's ich_probability coefficients"},
        "fitted_on": {
            "what": "real units: CT-ICH slices (per slice, from each patient's slices segmented as one series) and "
                    "5 mm slabs through the brain of the GE normal head (segmented as one scan)",
            "patients": int(len(set(patients))),
            "units": {s: int((fit["set"] == s).sum()) for s in FIT_SETS},
            "volume_offset_ml": VOLUME_OFFSET_ML,
            "command": f"python bench/ich_detection_bench.py --fit --model {model_name}",
        },
    }
