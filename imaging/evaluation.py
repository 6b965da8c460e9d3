"""Segmentation quality against reference masks: per series and class, and summaries.

Dice convention. The seed paper (Hssayeni et al., Data 2020, ct-ich-dataset-unet-segmentation,
Eq. 2) defines Dice = 2|R ∩ R^| / (|R| + |R^|) and states no smoothing epsilon; we use exactly
that, with no epsilon. When reference and prediction are both empty Dice is undefined: it is
reported as NaN (`empty_empty` = True) and left out of means, so "mean Dice" is the mean over
series that have the class in the reference or the prediction. A prediction on a series whose
reference is empty has Dice 0. Precision and recall follow the same rule (NaN when undefined).

Classes. One record per class of the label map (`vocabulary.labels`, by key: `iph`, `eah`, `edema`,
`ivh`) and one for `hemorrhage`, labels 1, 2 and 4 merged (any blood: a model that calls a
contusion next to the skull extra-axial has still found the hemorrhage).

Volume. `abs_volume_error_ml` = |predicted - reference| class volume. For IPH (CREACTIVE's
hematoma), also the
bedside ABC/2 of the largest reference lesion (`imaging.abc2`), and its error against that
lesion's true volume; series are grouped by reference hematoma volume (< 5, 5-25, > 25 mL, as in
the seed paper on ABC/2, ich-volume-deep-learning-vs-abc2). The segmentation's error is on the
whole hematoma volume, ABC/2's on the largest lesion only: a comparison that favours ABC/2.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from imaging.abc2 import abc2_ml, largest_lesion
from vocabulary import labels as L

VOLUME_GROUPS = ("<5 mL", "5-25 mL", ">25 mL")
HEMORRHAGE = "hemorrhage"  # labels 1, 2, 4 merged
CLASSES = (*(c.key for c in L.LESION_CLASSES), HEMORRHAGE)
HEMATOMA_CLASS = L.BY_VALUE[L.IPH].key  # the class with ABC/2 and volume groups


def dice(pred: np.ndarray, truth: np.ndarray) -> float:
    """2|P∩T| / (|P|+|T|) of two boolean masks, no epsilon; NaN when both are empty."""
    p, t = int(np.count_nonzero(pred)), int(np.count_nonzero(truth))
    if p + t == 0:
        return math.nan
    return 2.0 * int(np.count_nonzero(pred & truth)) / (p + t)


def volume_group(ml: float) -> str:
    return VOLUME_GROUPS[0] if ml < 5 else VOLUME_GROUPS[1] if ml <= 25 else VOLUME_GROUPS[2]


def series_metrics(pred: np.ndarray, truth: np.ndarray, spacing: tuple[float, float, float],
                   voxel_ml: float | None = None) -> list[dict]:
    """One record per class of the label map and one for any hemorrhage, for one series; `pred` and `truth`
    are (z, y, x) labels."""
    if pred.shape != truth.shape:
        raise ValueError(f"prediction {pred.shape} and reference {truth.shape} are on different grids")
    vml = voxel_ml if voxel_ml is not None else float(np.prod(spacing)) / 1000.0
    rows = []
    blood = list(L.HEMORRHAGE_LABELS)
    masks = [(c.key, pred == c.value, truth == c.value) for c in L.LESION_CLASSES]
    masks.append((HEMORRHAGE, np.isin(pred, blood), np.isin(truth, blood)))
    for name, p, t in masks:
        tp = int(np.count_nonzero(p & t))
        np_, nt = int(np.count_nonzero(p)), int(np.count_nonzero(t))
        row = {
            "class": name,
            "dice": dice(p, t),
            "empty_empty": np_ + nt == 0,
            "precision": tp / np_ if np_ else math.nan,
            "recall": tp / nt if nt else math.nan,
            "true_ml": nt * vml,
            "pred_ml": np_ * vml,
            "abs_volume_error_ml": abs(np_ - nt) * vml,
        }
        if name == HEMATOMA_CLASS:
            biggest = largest_lesion(t)
            row["true_largest_ml"] = int(np.count_nonzero(biggest)) * vml
            row["abc2_largest_ml"] = abc2_ml(biggest, spacing) if nt else 0.0
            row["abc2_abs_error_ml"] = abs(row["abc2_largest_ml"] - row["true_largest_ml"])
            row["volume_group"] = volume_group(row["true_ml"]) if nt else "none"
        rows.append(row)
    return rows


def summary_by_split(per_series: pd.DataFrame) -> pd.DataFrame:
    """Per split and class: series, series with the class, mean +- SD Dice, precision, recall, volume error."""
    def agg(g: pd.DataFrame) -> pd.Series:
        with_class = g[g["true_ml"] > 0]
        return pd.Series({
            "series": len(g),
            "with_class": len(with_class),
            "dice_mean": with_class["dice"].mean(),
            "dice_sd": with_class["dice"].std(ddof=1),
            "precision_mean": g["precision"].mean(),
            "recall_mean": with_class["recall"].mean(),
            "median_abs_volume_error_ml": g["abs_volume_error_ml"].median(),
        })
    return per_series.groupby(["split", "class"], sort=True).apply(agg, include_groups=False).reset_index()


def summary_by_volume_group(per_series: pd.DataFrame) -> pd.DataFrame:
    """IPH (hematoma) absolute volume error of the segmentation vs ABC/2, by reference volume group."""
    h = per_series[(per_series["class"] == HEMATOMA_CLASS) & (per_series["true_ml"] > 0)]
    rows = []
    for group in VOLUME_GROUPS:
        g = h[h["volume_group"] == group]
        rows.append({
            "volume_group": group,
            "series": len(g),
            "seg_abs_error_ml_mean": g["abs_volume_error_ml"].mean(),
            "seg_abs_error_ml_median": g["abs_volume_error_ml"].median(),
            "abc2_abs_error_ml_mean": g["abc2_abs_error_ml"].mean(),
            "abc2_abs_error_ml_median": g["abc2_abs_error_ml"].median(),
            "segmentation_better": bool(len(g)) and bool(g["abs_volume_error_ml"].mean()
                                                         < g["abc2_abs_error_ml"].mean()),
        })
    return pd.DataFrame(rows)
