"""IMPACT's CT predictors (Marshall class, EDH, tSAH) from the computed CT classifications, with their sources.

IMPACT core+CT (Steyerberg et al., PLoS Med 2008; shared ANCHORS.md) codes the Marshall class, tSAH and
EDH. `biomarkers` computes the Marshall class and EDH from the admission scan and carries tSAH where the
clinical record or a reviewer gave it (`biomarkers.timecourse.admission_ct_classes`). Per predictor:

- Marshall class: the computed class where it is known (not a range; V where the clinical record's surgery
  field says a mass lesion was evacuated), else the clinical record's;
- EDH: the computed component (measured from the scan, or reviewer-set), else the clinical record's;
- tSAH: the computed component where known (reviewer-set or from the clinical record), else the record's.

Each value's source is one of `computed (<component source>)`, `clinical record`, `unknown`, so that a
prediction always says where its CT inputs came from.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from vocabulary.dictionary import label

COMPUTED = "computed"
RECORD = "clinical record"
UNKNOWN = "unknown"
_PICKS = (("marshall_ct", "adm_marshall_ct_class", None),
          ("edh", "adm_ct_edh", "adm_ct_edh_source"),
          ("tsah", "adm_ct_tsah", "adm_ct_tsah_source"))
IMPACT_CT_PREDICTORS = tuple(name for name, _, _ in _PICKS)
SOURCE_COLUMNS = tuple(f"{name}_source" for name in IMPACT_CT_PREDICTORS)


def _known(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and np.isnan(value)) and value is not pd.NA


def impact_ct_inputs(clinical: Mapping[str, Any] | None,
                     admission: Mapping[str, Any] | None) -> tuple[dict[str, Any], dict[str, str]]:
    """({marshall_ct, edh, tsah}, {same keys: source}) for one patient; a value is None where unknown."""
    clinical, admission = clinical or {}, admission or {}
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for name, computed, source_col in _PICKS:
        if _known(admission.get(computed)):
            values[name] = int(admission[computed])
            detail = admission.get(source_col) if source_col else "measured components"
            sources[name] = f"{COMPUTED} ({detail})" if _known(detail) else COMPUTED
        elif _known(clinical.get(name)):
            values[name] = int(clinical[name])
            sources[name] = RECORD
        else:
            values[name] = None
            sources[name] = UNKNOWN
    missing = admission.get("adm_marshall_ct_class_missing")
    if not _known(admission.get("adm_marshall_ct_class")) and _known(missing) and missing:
        sources["marshall_ct"] += f"; the computed class is a range ({missing} unknown)"
    return values, sources


def impact_ct_table(table: pd.DataFrame, admission: pd.DataFrame) -> pd.DataFrame:
    """`table` (an analysis table with center, patient_id) with marshall_ct, edh, tsah taken as
    `impact_ct_inputs` does from `admission` (admission_ct_classes with center, patient_id columns), and
    marshall_ct_source, edh_source, tsah_source added.

    Column-wise rather than `impact_ct_inputs` per row (the same choice and the same source texts), since the
    registry's table may hold tens of thousands of patients.
    """
    key = ["center", "patient_id"]
    missing = [c for c in key if c not in table.columns]
    if missing:
        raise ValueError(f"impact_ct_table: the table lacks key column(s) {missing}")
    out = table.copy()
    if len(admission):
        absent = [c for c in key if c not in admission.columns]
        if absent:
            raise ValueError(f"impact_ct_table: the admission CT classes lack key column(s) {absent}")
        adm = admission.drop_duplicates(key).set_index(key).reindex(pd.MultiIndex.from_frame(out[key]))
    else:
        adm = pd.DataFrame(index=pd.MultiIndex.from_frame(out[key]))
    adm = adm.set_axis(out.index)

    def col(name: str) -> pd.Series:
        return adm[name] if name in adm.columns else pd.Series(np.nan, index=out.index, dtype=object)

    for name, computed_col, source_col in _PICKS:
        computed = pd.to_numeric(col(computed_col), errors="coerce")
        record = pd.to_numeric(out[name], errors="coerce") if name in out else pd.Series(np.nan, index=out.index)
        use = computed.notna()
        if source_col:
            detail = col(source_col).astype(object)
            known_detail = detail.map(_known) & (detail.astype(str) != "")
            computed_text = (f"{COMPUTED} (" + detail.astype(str) + ")").where(known_detail, COMPUTED)
        else:
            computed_text = pd.Series(f"{COMPUTED} (measured components)", index=out.index)
        source = pd.Series(np.where(use, computed_text, np.where(record.notna(), RECORD, UNKNOWN)),
                           index=out.index, dtype=object)
        if name == "marshall_ct":
            why = col("adm_marshall_ct_class_missing").astype(object)
            ranged = ~use & why.map(_known) & (why.astype(str) != "")
            source = source.where(~ranged, source + "; the computed class is a range (" + why.astype(str)
                                  + " unknown)")
        out[name] = computed.where(use, record)
        out[f"{name}_source"] = source
    return out


def ct_source_counts(table: pd.DataFrame) -> pd.DataFrame:
    """Per IMPACT CT predictor, how many patients' values are computed from the admission scan, taken from the
    clinical record, or unknown: columns predictor, computed, clinical record, unknown (empty when the table
    has no source columns)."""
    rows = []
    for name in IMPACT_CT_PREDICTORS:
        col = f"{name}_source"
        if col not in table:
            continue
        kind = table[col].astype(str).str.split(" ", n=1).str[0].map(
            {"computed": COMPUTED, "clinical": RECORD, "unknown": UNKNOWN})
        rows.append({"predictor": label(name, "clinical"),
                     **{k: int((kind == k).sum()) for k in (COMPUTED, RECORD, UNKNOWN)}})
    return pd.DataFrame(rows, columns=["predictor", COMPUTED, RECORD, UNKNOWN])
