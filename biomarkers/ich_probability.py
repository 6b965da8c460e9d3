"""Scan-level hemorrhage probability: is there any intracranial hemorrhage on this scan, and of which class.

A segmentation gives a label mask, not a diagnosis: a model may paint a few false voxels on a normal
scan, or miss most of a thin bleed. The probability that the scan holds a class is a logistic
calibration of the segmented volume of that class,

    p = 1 / (1 + exp(-(intercept + slope * ln(volume_ml + VOLUME_OFFSET_ML))))

fitted (scikit-learn's LogisticRegression) on segmentations whose truth is known, by
`bench/ich_detection_bench.py --fit`, and stored in `biomarkers/data/ich_calibration.json` with what it
was fitted on and the operating point chosen there (the threshold on `ich_probability` above which a
scan is called positive, `ich_detected`). `ich_probability` is the probability of any hemorrhage
(labels 1, 2 and 4 together); `p_<class>_present` that of each class of the label map (edema too).

The calibration belongs to the segmentation model it was fitted on (recorded in the JSON): another
model's false-positive volumes differ, and its scores would need their own fit.
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from pathlib import Path
from typing import Any

CALIBRATION_PATH = Path(__file__).parent / "data" / "ich_calibration.json"
VOLUME_OFFSET_ML = 0.05
# Calibrated quantity -> the series feature holding its volume (mL).
CALIBRATED_VOLUMES = {"ich_probability": "hemorrhage_ml", "p_iph_present": "iph_ml", "p_eah_present": "eah_ml",
                      "p_ivh_present": "ivh_ml", "p_edema_present": "edema_ml"}


@lru_cache(maxsize=4)
def load_calibration(path: Path = CALIBRATION_PATH) -> dict[str, Any]:
    """The calibration JSON (see the module doc), checked for the coefficients every probability needs."""
    try:
        cal = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: cannot read the hemorrhage calibration ({exc}); run "
                         f"`python bench/ich_detection_bench.py --fit` to make it") from exc
    missing = [k for k in CALIBRATED_VOLUMES if k not in cal.get("coefficients", {})]
    if missing or "threshold" not in cal.get("operating_point", {}):
        raise ValueError(f"{path}: calibration lacks {missing or ['operating_point.threshold']}; refit it with "
                         f"`python bench/ich_detection_bench.py --fit`")
    return cal


def probability(volume_ml: float, intercept: float, slope: float) -> float:
    """The calibrated probability of a segmented volume (NaN volume: NaN)."""
    if volume_ml is None or not math.isfinite(volume_ml):
        return float("nan")
    z = intercept + slope * math.log(max(volume_ml, 0.0) + VOLUME_OFFSET_ML)
    return 1.0 / (1.0 + math.exp(-z)) if z > -700 else 0.0


def presence_probabilities(values: dict[str, Any], calibration: dict[str, Any] | None = None) -> dict[str, float]:
    """`ich_probability`, `p_<class>_present` and `ich_detected` (0/1 at the operating point) from the volumes."""
    cal = calibration or load_calibration()
    out: dict[str, float] = {}
    for name, volume in CALIBRATED_VOLUMES.items():
        c = cal["coefficients"][name]
        out[name] = probability(float(values.get(volume, float("nan"))), c["intercept"], c["slope"])
    p = out["ich_probability"]
    out["ich_detected"] = float("nan") if math.isnan(p) else float(p >= cal["operating_point"]["threshold"])
    return out
