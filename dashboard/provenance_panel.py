"""The provenance panel the Biomarkers and Outcome models pages share: for one biomarker value, the series it was
measured on, the mask and the segmentation run (or annotation) that made it, and the slices where the mask has
the value's lesion classes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import streamlit as st

from dashboard import provenance, queries
from vocabulary.dictionary import heading, label


def show(db_url: str, root: str, scope: str | None, series_uid: str, source: str, feature: str,
         value: float | None) -> None:
    """Lay out where `value` (of `feature`, on `series_uid` measured on the `source` mask) comes from."""
    facts = queries.value_provenance(db_url, scope, series_uid, source)
    if facts is None:
        st.warning("No stored biomarkers of this series and mask source in your scope.")
        return
    shown = "unknown" if value is None else f"{value:.2f}"
    st.markdown(f"**{heading(feature)} = {shown}** · {facts['pseudo_id']} · {facts['center']} · "
                f"{label(source, 'mask_source')}")
    left, right = st.columns(2)
    table = provenance.facts_table(facts, root)
    left.dataframe(table, hide_index=True, width="stretch", height=_fitting(len(table)))
    with right:
        values = provenance.feature_classes(feature)
        if facts["mask"] is None:
            st.caption("The mask these biomarkers were measured on is not stored in the registry (a reference mask "
                       "stays in the study's folder), so its slices cannot be listed.")
            return
        path = Path(facts["mask"])
        try:
            labels, affine = queries.mask_labels(str(path), root)
        except (ValueError, OSError) as exc:
            st.error(f"Cannot read the mask {facts['mask']}: {exc}")
            return
        voxel_ml = float(abs(np.linalg.det(affine[:3, :3]))) / 1000.0  # as imaging.volume.Volume.voxel_ml
        st.markdown("**Slices that contribute**")
        slices = provenance.class_slices(labels, values, voxel_ml)
        st.dataframe(slices, hide_index=True, width="stretch", height=_fitting(len(slices)))
        st.caption(f"Slice numbers count from 1 along the slice normal, as in the case viewer ({labels.shape[0]} "
                   "slices).")


def _fitting(rows: int) -> int:
    """A table height in pixels that shows every row without a scroll bar (Streamlit's rows are 35 px)."""
    return 38 + 35 * rows
