"""Collection: what each center has sent, how QC stands, progress against targets, what is still owed."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import auth, collection, figures, queries
from registry.progress import TOTAL, missing_summary

ident = auth.require_identity()
home = queries.current_home()
scope = ident.center_scope

st.title("Collection")
st.caption(f"Center {scope}" if scope else "All centers")

counts = queries.center_counts(home.db_url, scope)
if counts.empty or counts["patients"].sum() == 0:
    st.info("No data has been collected yet: ingest DICOM series with `ctstudy registry ingest DIR` "
            "and clinical data with `ctstudy registry import-clinical clinical.csv`.")
    st.stop()

totals = collection.totals_row(counts)
cols = st.columns(6)
cols[0].metric("Patients", f"{totals['patients']:,}")
cols[1].metric("Series", f"{totals['series']:,}")
cols[2].metric("QC passed", f"{totals['qc_passed']:,}")
cols[3].metric("QC failed", f"{totals['qc_failed'] + totals['qc_auto_failed']:,}")
cols[4].metric("QC pending", f"{totals['qc_pending']:,}")
cols[5].metric("Manually annotated", f"{totals['series_annotated']:,}")

st.subheader("Per center")
table = counts.rename(columns={
    "qc_passed": "QC passed", "qc_failed": "QC failed", "qc_auto_failed": "auto-failed", "qc_pending": "QC pending",
    "with_clinical": "with clinical data", "with_outcome": "with outcome", "with_followup": "with follow-up",
    "series_annotated": "annotated", "series_segmented": "segmented",
})
total_row = {"center": "Total", **{c: int(totals[k]) for c, k in zip(table.columns[1:], collection.COUNT_COLUMNS,
                                                                       strict=True)}}
if len(table) > 1:
    table = pd.concat([table, pd.DataFrame([total_row])], ignore_index=True)
st.dataframe(table, hide_index=True)

st.subheader("Collection over time")
basis = st.radio("Dated by", queries.ARRIVAL_BASES, horizontal=True,
                 format_func={"scanned": "scan date", "received": "date received"}.get,
                 help="Scan date shows enrolment; date received shows when centers sent their data.")
cumulative = collection.cumulative_by_center(queries.arrival_events(home.db_url, scope, basis))
st.plotly_chart(figures.cumulative_arrivals_figure(cumulative, "scan date" if basis == "scanned" else "date received"))

st.subheader("Progress against targets")
targets = collection.load_targets(home.root)
target_values = targets.get("center", {}).get(scope, {}) if scope else targets.get("study", {})
if not target_values:
    st.caption(f"No targets set for center {scope}: add a [center.{scope}] section to "
               f"{home.root / collection.HOME_TARGETS_FILE}.")
else:
    with st.expander("Adjust targets (this session only)"):
        target_values = {
            key: int(st.number_input(collection.TARGET_METRICS[key], min_value=1, value=int(value), key=f"t_{key}"))
            for key, value in target_values.items()
        }
    for row in collection.progress_against_targets(totals, target_values).itertuples():
        st.progress(row.fraction, text=f"{row.label}: {row.done:,} of {row.target:,} ({row.done / row.target:.0%})")

st.subheader("What each center still owes")
items = queries.owed_items(home.db_url, scope)
if items.empty:
    st.success("Nothing is owed: every patient has CT, clinical data, an outcome and a QC-passed admission scan.")
else:
    summary = missing_summary(items)
    st.dataframe(summary if len(summary) > 2 else summary[summary["center"] != TOTAL], hide_index=True)
    with st.expander(f"The {len(items):,} items, patient by patient"):
        st.dataframe(items, hide_index=True)
