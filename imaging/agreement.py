"""Agreement of two label masks per lesion class (Dice, volumes), and its summary over series.

Pure. Classes are the project's label map (`vocabulary.labels`). A reference that leaves voxels
`UNANNOTATED` (a partial annotation) is compared over its annotated voxels only: what the other mask
says elsewhere counts neither for nor against it. Dice follows
`imaging.evaluation.dice`: no epsilon, NaN when neither mask has the class (left out of means).
Besides the mean of per-series Dice, the summary gives the pooled Dice (all voxels of all series
together), which small lesions cannot swing.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from imaging.evaluation import dice
from vocabulary.labels import LESION_CLASSES, UNANNOTATED, LesionClass


def restrict_to_annotated(pred: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """`pred` with UNANNOTATED wherever `ref` has it: no class of either then counts those voxels."""
    if pred.shape != ref.shape:
        raise ValueError(f"masks on different grids: {pred.shape} and {ref.shape}")
    return np.where(ref == UNANNOTATED, UNANNOTATED, pred).astype(pred.dtype, copy=False)


def class_agreement(pred: np.ndarray, ref: np.ndarray, voxel_ml: float,
                    classes: tuple[LesionClass, ...] = LESION_CLASSES) -> list[dict]:
    """One record per lesion class of `pred` against `ref` ((z, y, x) labels on one grid), over the voxels `ref`
    annotated (volumes too: of a partial reference they are the annotated part's, not the scan's)."""
    if pred.shape != ref.shape:
        raise ValueError(f"masks on different grids: {pred.shape} and {ref.shape}")
    pred = restrict_to_annotated(pred, ref)
    rows = []
    for c in classes:
        p, r = pred == c.value, ref == c.value
        n_p, n_r, n_pr = int(np.count_nonzero(p)), int(np.count_nonzero(r)), int(np.count_nonzero(p & r))
        rows.append({"class": c.key, "dice": dice(p, r), "pred_voxels": n_p, "ref_voxels": n_r,
                     "both_voxels": n_pr, "pred_ml": n_p * voxel_ml, "ref_ml": n_r * voxel_ml,
                     "abs_volume_diff_ml": abs(n_p - n_r) * voxel_ml})
    return rows


def summarize_agreement(rows: pd.DataFrame, by: tuple[str, ...] = ("comparison",)) -> pd.DataFrame:
    """Per `by` group and class: series, series with the class in either mask, mean/SD/pooled Dice, volume diffs.

    `rows` holds `class_agreement` records plus the `by` columns (e.g. `comparison`: student_vs_teacher).
    """
    order = {c.key: i for i, c in enumerate(LESION_CLASSES)}

    def agg(g: pd.DataFrame) -> pd.Series:
        either = g[(g["pred_voxels"] + g["ref_voxels"]) > 0]
        denom = int(g["pred_voxels"].sum() + g["ref_voxels"].sum())
        return pd.Series({
            "series": len(g),
            "with_class": len(either),
            "dice_mean": either["dice"].mean() if len(either) else np.nan,
            "dice_sd": either["dice"].std(ddof=1) if len(either) > 1 else np.nan,
            "dice_pooled": 2.0 * int(g["both_voxels"].sum()) / denom if denom else np.nan,
            "abs_volume_diff_ml_median": g["abs_volume_diff_ml"].median(),
            "abs_volume_diff_ml_mean": g["abs_volume_diff_ml"].mean(),
            "ref_ml_mean": g["ref_ml"].mean(),
        })

    keys = [*by, "class"]
    out = rows.groupby(keys, sort=False).apply(agg, include_groups=False).reset_index()
    out["_order"] = out["class"].map(order)
    return out.sort_values([*by, "_order"]).drop(columns="_order").reset_index(drop=True)
