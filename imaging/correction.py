"""The correction round trip: a model's masks out to an annotator, the corrected masks back, and what changed.

A correction package is one folder an annotator opens in ITK-SNAP or 3D Slicer:
- `masks/<SeriesInstanceUID>.nii.gz`: the model's mask in the project's four-class label map
  (`vocabulary.labels`), to be corrected in place;
- `ct/<SeriesInstanceUID>.nii.gz`: the CT in HU on the same grid (same affine and axes), the image to
  load under it;
- `seg/<SeriesInstanceUID>.dcm`: the same mask as DICOM SEG, for DICOM viewers;
- `corrections.json` (`MANIFEST`): which segmentation run each mask came from (model name and version,
  the mask's SHA-256), so that the import compares the correction with the mask the annotator started
  from, not with a later run.

Back, `masks/` is imported as manual annotations and `correction_changes` says per lesion class how
much the annotator changed: Dice between the model's mask and the correction, and the volumes. Over a
center's corrections (`summarize_corrections`) that is the study's running measure of model quality.

Pure apart from reading and writing the package's files; no database.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from imaging.agreement import class_agreement
from vocabulary.labels import annotated_fraction

MANIFEST = "corrections.json"
MANIFEST_FORMAT = 1


def package_paths(root: Path, series_uid: str) -> dict[str, Path]:
    """Where a series' files go in a correction package."""
    return {"mask": root / "masks" / f"{series_uid}.nii.gz", "ct": root / "ct" / f"{series_uid}.nii.gz",
            "seg": root / "seg" / f"{series_uid}.dcm"}


def write_manifest(root: Path, runs: dict[str, dict]) -> Path:
    """Record (merging with what the folder already lists) the run each exported mask came from."""
    path = root / MANIFEST
    known = read_manifest(root)
    known.update(runs)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(json.dumps({"format": MANIFEST_FORMAT, "series": known}, indent=1, sort_keys=True))
    tmp.replace(path)
    return path


def read_manifest(root: Path) -> dict[str, dict]:
    """The runs listed by a package's manifest, by series UID; empty when the folder has none."""
    path = root / MANIFEST
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
        series = data["series"]
        if not isinstance(series, dict):
            raise TypeError("'series' is not an object")
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: not a correction manifest written by `ctstudy imaging export-correction` "
                         f"({exc}); remove it to compare each correction with the series' latest model mask") from exc
    return series


def masks_folder(root: Path) -> Path:
    """The folder of corrected masks: a package's `masks/`, or `root` itself when it holds the masks."""
    return root / "masks" if (root / "masks").is_dir() else root


def correction_changes(model_labels: np.ndarray, corrected_labels: np.ndarray, voxel_ml: float) -> list[dict]:
    """Per lesion class: Dice of the model's mask against the correction, model / corrected / overlap volume (mL).

    A partial correction (voxels `UNANNOTATED`: slices or classes the annotator left out) is compared over the
    voxels it annotated, model volumes included; `annotated_fraction` says what share of the scan that is.
    Dice is NaN when neither mask has the class there (nothing to agree on).
    """
    share = annotated_fraction(corrected_labels)
    rows = []
    for r in class_agreement(model_labels, corrected_labels, voxel_ml):
        rows.append({"class": r["class"], "dice": r["dice"], "model_ml": r["pred_ml"], "corrected_ml": r["ref_ml"],
                     "overlap_ml": r["both_voxels"] * voxel_ml, "annotated_fraction": share})
    return rows


def summarize_corrections(rows: pd.DataFrame, by: tuple[str, ...] = ("center",)) -> pd.DataFrame:
    """Per `by` group and lesion class: how much annotators changed the model's masks.

    `rows` has one row per correction and class (`correction_changes` plus the `by` columns). Out:
    corrections, those with the class in either mask, mean Dice over those, pooled Dice (all voxels
    together: small lesions cannot swing it), mean absolute and mean signed volume change (corrected
    minus model, mL; positive: the model missed lesion), partial corrections and the mean share of the
    scan annotated (`annotated_fraction`; 1 when every correction covered the whole scan; rows without the
    column are whole corrections). Figures of partial corrections are over their annotated voxels.
    """
    if rows.empty:
        return pd.DataFrame(columns=[*by, "class", "corrections", "with_class", "dice_mean", "dice_pooled",
                                     "abs_change_ml_mean", "change_ml_mean", "partial_corrections",
                                     "annotated_fraction_mean"])
    if "annotated_fraction" not in rows:
        rows = rows.assign(annotated_fraction=1.0)
    change = rows["corrected_ml"] - rows["model_ml"]
    data = rows.assign(_change=change, _abs=change.abs(), _either=(rows["model_ml"] + rows["corrected_ml"]) > 0)

    def agg(g: pd.DataFrame) -> pd.Series:
        denom = float(g["model_ml"].sum() + g["corrected_ml"].sum())
        either = g[g["_either"]]
        return pd.Series({
            "corrections": len(g), "with_class": len(either),
            "dice_mean": either["dice"].mean() if len(either) else np.nan,
            "dice_pooled": 2.0 * float(g["overlap_ml"].sum()) / denom if denom else np.nan,
            "abs_change_ml_mean": g["_abs"].mean(), "change_ml_mean": g["_change"].mean(),
            "partial_corrections": int((g["annotated_fraction"] < 1.0).sum()),
            "annotated_fraction_mean": g["annotated_fraction"].mean(),
        })

    out = data.groupby([*by, "class"], sort=True).apply(agg, include_groups=False).reset_index()
    out["corrections"] = out["corrections"].astype(int)
    out["with_class"] = out["with_class"].astype(int)
    out["partial_corrections"] = out["partial_corrections"].astype(int)
    return out
