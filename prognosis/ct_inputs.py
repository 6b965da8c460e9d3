"""IMPACT's CT predictors (Marshall class, EDH, tSAH) from the computed CT classifications, with their sources.

IMPACT core+CT (Steyerberg et al., PLoS Med 2008; shared ANCHORS.md) codes the Marshall class, tSAH and
EDH. `biomarkers` computes the Marshall class and EDH from the admission scan and carries tSAH where the
clinical record or a reviewer gave it (`biomarkers.timecourse.admission_ct_classes`). Per predictor:

- Marshall class: the computed class where it is known (not a range), else the clinical record's;
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

COMPUTED = "computed"
RECORD = "clinical record"
UNKNOWN = "unknown"


def _known(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and np.isnan(value)) and value is not pd.NA


def impact_ct_inputs(clinical: Mapping[str, Any] | None,
                     admission: Mapping[str, Any] | None) -> tuple[dict[str, Any], dict[str, str]]:
    """({marshall_ct, edh, tsah}, {same keys: source}) for one patient; a value is None where unknown."""
    clinical, admission = clinical or {}, admission or {}
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    picks = (("marshall_ct", "adm_marshall_ct_class", None),
             ("edh", "adm_ct_edh", "adm_ct_edh_source"),
             ("tsah", "adm_ct_tsah", "adm_ct_tsah_source"))
    for name, computed, source_col in picks:
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
    marshall_ct_source, edh_source, tsah_source added."""
    adm = admission.set_index(["center", "patient_id"]) if len(admission) else admission
    out = table.copy()
    rows = []
    for center, pid, *clin in out[["center", "patient_id", "marshall_ct", "edh", "tsah"]].itertuples(index=False):
        a = adm.loc[(center, pid)].to_dict() if len(adm) and (center, pid) in adm.index else {}
        values, sources = impact_ct_inputs(dict(zip(("marshall_ct", "edh", "tsah"), clin, strict=True)), a)
        rows.append({**values, **{f"{k}_source": v for k, v in sources.items()}})
    chosen = pd.DataFrame(rows, index=out.index)
    for name in ("marshall_ct", "edh", "tsah"):
        out[name] = pd.to_numeric(chosen[name], errors="coerce")
        out[f"{name}_source"] = chosen[f"{name}_source"]
    return out
