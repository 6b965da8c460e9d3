"""Provenance of a biomarker value, the pure part: which lesion classes a feature is measured on, the slices
where a mask has them, and the facts of `queries.value_provenance` as label/value rows. Pure numpy / pandas."""

from __future__ import annotations

from pathlib import PurePath
from typing import Any

import numpy as np
import pandas as pd

from dashboard.text import number_text
from vocabulary.dictionary import heading, label, short_uid
from vocabulary.labels import BY_KEY, EDEMA, HEMORRHAGE_LABELS, IPH, LESION_CLASSES

# Features named after something other than their class key (biomarkers.series); anything else whose name
# starts with a class key (eah_ml, ivh_present, ...) is that class; the rest (midline shift, tissue volumes)
# are measured on the whole mask, so every lesion class is shown.
_FEATURE_CLASSES = {"hematoma": (IPH,), "largest_lesion": (IPH,), "lesion": (IPH,), "abc2": (IPH,),
                    "relative_edema": (IPH, EDEMA), "total_lesion": (IPH, EDEMA), "hemorrhage": HEMORRHAGE_LABELS}


def feature_classes(feature: str) -> tuple[int, ...]:
    """The label values a feature (series or admission `adm_`/`peak_`/`last_` name) is measured on."""
    name = feature
    for prefix in ("adm_", "peak_", "last_"):
        name = name.removeprefix(prefix)
    for stem, values in sorted(_FEATURE_CLASSES.items(), key=lambda kv: -len(kv[0])):
        if name.startswith(stem):
            return tuple(values)
    for key, c in BY_KEY.items():
        if name.startswith(f"{key}_"):
            return (c.value,)
    return tuple(c.value for c in LESION_CLASSES)


def slice_ranges(numbers: list[int]) -> str:
    """'3-6, 9' for slice numbers 3, 4, 5, 6, 9; 'none' for none."""
    if not numbers:
        return "none"
    parts, start, prev = [], numbers[0], numbers[0]
    for n in [*numbers[1:], None]:
        if n is not None and n == prev + 1:
            prev = n
            continue
        parts.append(f"{start}" if start == prev else f"{start}–{prev}")
        if n is not None:
            start = prev = n
    return ", ".join(parts)


def class_slices(labels: np.ndarray, values: tuple[int, ...], voxel_ml: float | None = None) -> pd.DataFrame:
    """Per lesion class in `values`: the slices (1-based, along the slice normal) where the mask has it, their
    count and (with `voxel_ml`) the volume they make up."""
    rows = []
    flat = labels.reshape(labels.shape[0], -1)
    for c in LESION_CLASSES:
        if c.value not in values:
            continue
        per_slice = (flat == c.value).sum(axis=1)
        numbers = [int(k) + 1 for k in np.flatnonzero(per_slice)]
        row = {"Lesion class": c.name, label("lesion_slices"): slice_ranges(numbers), "Slices": len(numbers)}
        if voxel_ml is not None:
            row["Volume (mL)"] = f"{per_slice.sum() * voxel_ml:.2f}"
        rows.append(row)
    return pd.DataFrame(rows)


def _when(value: Any) -> str:
    return "unknown" if value is None or pd.isna(value) else pd.Timestamp(value).strftime("%Y-%m-%d %H:%M")


def mask_text(path: str | None, root: str | None) -> str:
    """A stored mask path as people may see it: relative to the data home (never the server's folders)."""
    if not path:
        return "not stored in the registry"
    p = PurePath(path)
    if root and p.is_absolute():
        try:
            return str(p.relative_to(root))
        except ValueError:
            return p.name
    return str(p)


def facts_table(facts: dict[str, Any], root: str | None = None) -> pd.DataFrame:
    """The series, the features and the mask behind a value, as two columns (what, value) of text; the mask
    relative to the data home `root`."""
    rows = [(label("series_ref"), short_uid(facts["series_instance_uid"])),
            (label("description"), facts["description"] or ""),
            (label("center"), facts["center"]),
            (label("pseudo_id"), facts["pseudo_id"]),
            (label("acquired"), _when(facts["acquired"])),
            (heading("days_from_injury"), number_text(facts["days_from_injury"])),
            (label("slices"), f"{facts['instance_count']}"),
            (heading("slice_thickness"), number_text(facts["slice_thickness"], ".2g")),
            (label("qc_status"), label(facts["qc_status"], "qc_status")),
            (label("source"), label(facts["source"], "mask_source"))]
    run, ann = facts.get("run"), facts.get("annotation")
    if run:
        rows += [(label("model_name"), run["model_name"]), (label("model_version"), run["model_version"][:12]),
                 (label("device"), run["device"] or "unknown"), (label("segmented_at"), _when(run["segmented_at"]))]
        if len(run["members"]) > 1:
            rows.append(("Ensemble members", f"{len(run['members'])}"))
    elif ann:
        rows += [(label("annotator"), ann["annotator"] or "not recorded"),
                 (label("imported_at"), _when(ann["imported_at"]))]
    rows += [(label("mask"), mask_text(facts["mask"], root)),
             (label("mask_sha256"), (facts["mask_sha256"] or "")[:12] or "not recorded"),
             (label("definitions_version"), facts["definitions_version"]),
             (label("computed_at"), _when(facts["computed_at"]))]
    return pd.DataFrame(rows, columns=["What", "Value"])


# Patient-level imaging variables (biomarkers.timecourse) whose series feature is not the name without its prefix.
_SERIES_FEATURE = {"lesion_left": "largest_lesion_left"}
_SCAN_OF_PREFIX = {"adm_": "admission", "peak_": "peak", "last_": "last"}


def imaging_variables(terms: list[str]) -> list[str]:
    """The patient-level imaging variables a fit's terms are made of ('log_adm_hematoma_ml' -> 'adm_hematoma_ml'),
    in term order, each once."""
    out = []
    for term in terms:
        name = term.removeprefix("log_")
        for suffix in ("_rcs1", "_rcs2", "_rcs3"):
            name = name.removesuffix(suffix)
        if name.startswith(tuple(_SCAN_OF_PREFIX)) and name not in out:
            out.append(name)
    return out


def series_feature(variable: str) -> tuple[str, str]:
    """(series feature, which scan) a patient-level variable is read from: 'peak_edema_ml' -> ('edema_ml', 'peak')."""
    for prefix, scan in _SCAN_OF_PREFIX.items():
        if variable.startswith(prefix):
            name = variable.removeprefix(prefix)
            return _SERIES_FEATURE.get(name, name), scan
    raise ValueError(f"{variable!r} is not a patient-level imaging variable (adm_, peak_ or last_)")


def patient_values(features: pd.DataFrame, variable: str) -> pd.DataFrame:
    """Per patient, the series a patient-level variable is read from and its value there: the first scan for
    'adm_', the largest value for 'peak_', the last scan for 'last_' (as biomarkers.timecourse reads them),
    largest value first. `features` holds one mask source (queries.series_features rows)."""
    name, scan = series_feature(variable)
    columns = ["series_uid", "source", "pseudo_id", "center", "days_from_injury", "value"]
    if name not in features:
        return pd.DataFrame(columns=columns)
    data = features.dropna(subset=[name]).assign(value=lambda d: d[name].astype(float))
    if scan == "peak":
        data = data.sort_values(["pseudo_id", "value"], ascending=[True, False], kind="stable")
    else:
        data = data.sort_values(["pseudo_id", "days_from_injury"], ascending=[True, scan == "admission"],
                                na_position="last", kind="stable")
    chosen = data.groupby("pseudo_id", sort=False).head(1)
    return chosen[columns].sort_values("value", ascending=False, kind="stable").reset_index(drop=True)
