"""Scan-level hemorrhage probability: is there any intracranial hemorrhage on this scan, and of which class.

A segmentation gives a label mask, not a diagnosis: a model may paint a few false voxels on a normal
scan, or miss most of a thin bleed. The probability that the scan holds a class is a logistic
calibration of the segmented volume of that class,

    p = 1 / (1 + exp(-(intercept + slope * ln(volume_ml + VOLUME_OFFSET_ML))))

fitted on one segmentation model's output where the truth is known, by `bench/ich_detection_bench.py
--fit [--model M]`, and stored in `biomarkers/data/ich_calibration_<model>.json` with the model it belongs
to (`model.name` and `model.version`, as the registry's segmentation runs record them), what it was fitted on
and the operating point chosen there (the threshold on `ich_probability` above which a scan is called
positive, `ich_detected`). `ich_probability` is the probability of any hemorrhage (labels 1, 2 and 4
together); `p_<class>_present` that of each class of the label map (edema too). A class the fit had no truth
for has no coefficients (`null`, with the reason) and gets NaN.

A calibration belongs to the model it was fitted on: another model's false-positive volumes differ. So the
probabilities of a mask are computed with the calibration of the model (name and version) that made it, and
a mask of a model without its own calibration, or with no model at all (a manual annotation, a truth mask),
gets NaN probabilities and the reason in `ich_probability_reason`; `ich_calibration` names the calibration
used.
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from pathlib import Path
from typing import Any

CALIBRATION_DIR = Path(__file__).parent / "data"
CALIBRATION_GLOB = "ich_calibration_*.json"
VOLUME_OFFSET_ML = 0.05
VERSION_CHARS = 12
# Calibrated quantity -> the series feature holding its volume (mL).
CALIBRATED_VOLUMES = {"ich_probability": "hemorrhage_ml", "p_iph_present": "iph_ml", "p_eah_present": "eah_ml",
                      "p_ivh_present": "ivh_ml", "p_edema_present": "edema_ml"}


def calibration_path(model_name: str, folder: Path = CALIBRATION_DIR) -> Path:
    """Where the calibration of the model called `model_name` is kept."""
    return Path(folder) / f"ich_calibration_{model_name}.json"


@lru_cache(maxsize=16)
def load_calibration(path: Path) -> dict[str, Any]:
    """One calibration JSON (see the module doc), checked for its model and the coefficients every probability
    needs."""
    try:
        cal = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: cannot read the hemorrhage calibration ({exc}); run "
                         f"`python bench/ich_detection_bench.py --fit --model MODEL` to make it") from exc
    coefficients = cal.get("coefficients", {})
    missing = [k for k in CALIBRATED_VOLUMES if k not in coefficients]
    missing += [f"model.{k}" for k in ("name", "version") if not (cal.get("model") or {}).get(k)]
    if "threshold" not in cal.get("operating_point", {}):
        missing.append("operating_point.threshold")
    if not missing and coefficients["ich_probability"] is None:
        missing.append("coefficients.ich_probability")
    if missing:
        raise ValueError(f"{path}: calibration lacks {missing}; refit it with "
                         f"`python bench/ich_detection_bench.py --fit --model MODEL`")
    return cal


@lru_cache(maxsize=4)
def shipped_calibrations(folder: Path = CALIBRATION_DIR) -> dict[tuple[str, str], dict[str, Any]]:
    """(model name, model version) -> calibration, for every calibration file in `folder`."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted(Path(folder).glob(CALIBRATION_GLOB)):
        cal = load_calibration(path)
        key = (cal["model"]["name"], cal["model"]["version"])
        if key in out:
            raise ValueError(f"{path}: a second calibration for model {key[0]} {key[1][:VERSION_CHARS]}")
        out[key] = cal
    return out


def calibration_for(model_name: str | None, model_version: str | None,
                    folder: Path = CALIBRATION_DIR) -> tuple[dict[str, Any] | None, str]:
    """(the calibration of this model version, "") or (None, why there is none)."""
    if not model_name:
        return None, "no segmentation model made the mask: calibrations belong to a model"
    cal = shipped_calibrations(Path(folder)).get((model_name, model_version or ""))
    if cal is None:
        return None, f"no calibration for model {model_name} {(model_version or '')[:VERSION_CHARS]}".rstrip()
    return cal, ""


def probability(volume_ml: float, intercept: float, slope: float) -> float:
    """The calibrated probability of a segmented volume (NaN volume: NaN)."""
    if volume_ml is None or not math.isfinite(volume_ml):
        return float("nan")
    z = intercept + slope * math.log(max(volume_ml, 0.0) + VOLUME_OFFSET_ML)
    return 1.0 / (1.0 + math.exp(-z)) if z > -700 else 0.0


def presence_probabilities(values: dict[str, Any], calibration: dict[str, Any]) -> dict[str, float]:
    """`ich_probability`, `p_<class>_present` and `ich_detected` (0/1 at the operating point) from the volumes,
    with `calibration` (a class without coefficients: NaN)."""
    out: dict[str, float] = {}
    for name, volume in CALIBRATED_VOLUMES.items():
        c = calibration["coefficients"].get(name)
        out[name] = (float("nan") if c is None else
                     probability(float(values.get(volume, float("nan"))), c["intercept"], c["slope"]))
    p = out["ich_probability"]
    out["ich_detected"] = float("nan") if math.isnan(p) else float(p >= calibration["operating_point"]["threshold"])
    return out


def model_presence_probabilities(values: dict[str, Any], model_name: str | None, model_version: str | None,
                                 folder: Path = CALIBRATION_DIR) -> dict[str, Any]:
    """The probabilities of `presence_probabilities` with the calibration of the model that made the mask, plus
    `ich_calibration` (that model, or "none") and `ich_probability_reason` (why NaN, else "")."""
    cal, reason = calibration_for(model_name, model_version, folder)
    if cal is None:
        out: dict[str, Any] = {name: float("nan") for name in CALIBRATED_VOLUMES}
        return {**out, "ich_detected": float("nan"), "ich_calibration": "none", "ich_probability_reason": reason}
    label = f"{cal['model']['name']} {cal['model']['version'][:VERSION_CHARS]}"
    return {**presence_probabilities(values, cal), "ich_calibration": label, "ich_probability_reason": ""}
