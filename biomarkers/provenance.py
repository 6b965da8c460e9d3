"""Which model made the masks the biomarkers were measured on, and whether one table mixes several.

A hematoma volume measured on a phantom-trained U-Net's mask and one measured on BLAST-CT's are not the same
measurement; a table (or a screen) whose series come from several models must say so. Each series' features
carry their mask's provenance (SeriesFeatures.segmentation_run_id -> SegmentationRun.model_name/model_version,
or a manual annotation, or a truth mask); `mask_model` names it in one short text, and `model_mix` counts the
series per model. Pure pandas, plus `mask_models_of_series`, one query over the registry.
"""

from __future__ import annotations

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.db.models import SegmentationRun

SOURCE_WORDS = {"manual": "manual annotation", "truth": "truth mask"}
VERSION_CHARS = 12


def mask_model(source: str, model_name: str | None = None, model_version: str | None = None) -> str:
    """'phantom 0123456789ab' for a segmentation (model and the start of its checkpoint hash), 'manual annotation'
    or 'truth mask' for the other sources."""
    if source == "segmentation":
        if not model_name:
            return "segmentation (model unknown)"
        return f"{model_name} {(model_version or '')[:VERSION_CHARS]}".strip()
    return SOURCE_WORDS.get(source, source)


def mask_models_of_series(session: Session, run_ids: pd.Series) -> dict[int, tuple[str, str]]:
    """Segmentation run id -> (model name, model version), for the ids in `run_ids` (NaN/None skipped)."""
    ids = sorted({int(r) for r in run_ids.dropna()})
    if not ids:
        return {}
    rows = session.execute(select(SegmentationRun.id, SegmentationRun.model_name, SegmentationRun.model_version)
                           .where(SegmentationRun.id.in_(ids))).all()
    return {rid: (name, version) for rid, name, version in rows}


def with_mask_model(table: pd.DataFrame, runs: dict[int, tuple[str, str]]) -> pd.DataFrame:
    """`table` (columns source, segmentation_run_id) with a `mask_model` column after `source`."""
    def one(source: str, run_id: float | None) -> str:
        name, version = runs.get(int(run_id), (None, None)) if pd.notna(run_id) else (None, None)
        return mask_model(source, name, version)

    values = [one(s, r) for s, r in zip(table["source"], table["segmentation_run_id"], strict=True)]
    out = table.drop(columns=["mask_model"], errors="ignore")
    out.insert(out.columns.get_loc("source") + 1, "mask_model", values)
    return out


def model_mix(table: pd.DataFrame) -> pd.DataFrame:
    """Series per mask model (columns mask_model, series), most series first."""
    if table.empty or "mask_model" not in table.columns:
        return pd.DataFrame(columns=["mask_model", "series"])
    counts = table["mask_model"].value_counts(sort=False).rename("series").reset_index()
    return counts.sort_values(["series", "mask_model"], ascending=[False, True]).reset_index(drop=True)


def mixed_models_notice(table: pd.DataFrame) -> str:
    """A sentence when the series' masks come from more than one model or source, else ''."""
    mix = model_mix(table)
    if len(mix) < 2:
        return ""
    parts = ", ".join(f"{r.mask_model} ({r.series:,} series)" for r in mix.itertuples())
    return (f"These biomarkers were measured on masks made by {len(mix)} different models or sources: {parts}. "
            "Volumes and counts from different models are not directly comparable; compare series of one model "
            "(the export's mask model column), or segment every series with the same model "
            "(`ctstudy imaging segment --all --model NAME`) and extract again.")
