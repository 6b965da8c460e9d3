"""Model quality: how much annotators changed the model's masks, per center and lesion class."""

from __future__ import annotations

import streamlit as st

from dashboard import auth, queries
from imaging.correction import summarize_corrections
from vocabulary.dictionary import describe, display_columns, short_uid
from vocabulary.labels import LESION_CLASSES

ident = auth.require_identity()
home = queries.current_home()

st.title("Model quality")
st.caption("Each corrected mask is compared with the model's mask it started from: Dice 1 means the annotator "
           "changed nothing. Per center, this is the study's running measure of how well the model segments its "
           "scans. A partial correction (some slices or classes left not annotated) is compared over the voxels it "
           "annotated; the share of the scan annotated is shown beside it.")
rows = queries.corrections(home.db_url, ident.center_scope)
if rows.empty:
    st.info("No corrections imported yet. Export masks for correction with `ctstudy imaging export-correction "
            "--center CODE --out DIR`, correct them in ITK-SNAP or 3D Slicer, then import them with "
            "`ctstudy imaging import-corrections DIR --annotator NAME`.")
    st.stop()

names = {c.key: c.name for c in LESION_CLASSES}
summary = summarize_corrections(rows)
summary["class"] = summary["class"].map(names).fillna(summary["class"])
table = display_columns(summary.rename(columns={"class": "lesion_class", "center": "Center"}), "model_quality")
st.subheader("Per center and lesion class")
st.dataframe(table.round(3), hide_index=True,
             column_config={display_columns(summary[[c]], "model_quality").columns[0]: st.column_config.NumberColumn(
                 help=describe(c, "model_quality"))
                 for c in ("dice_mean", "dice_pooled", "change_ml_mean", "annotated_fraction_mean")})

st.subheader("Corrections")
detail = rows.assign(series=rows["series_instance_uid"].map(short_uid),
                     model=rows["model_name"] + " " + rows["model_version"].str[:12],
                     **{"class": rows["class"].map(names).fillna(rows["class"])})
detail = detail[["center", "series", "annotator", "imported_at", "model", "class", "dice", "model_ml",
                 "corrected_ml", "annotated_fraction"]]
st.dataframe(display_columns(detail.rename(columns={"class": "lesion_class", "center": "Center", "series": "Series",
                                                    "annotator": "Annotator", "imported_at": "Imported",
                                                    "model": "Model"}), "model_quality").round(3),
             hide_index=True)
