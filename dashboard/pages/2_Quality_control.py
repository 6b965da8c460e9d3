"""Quality control: the review queue, one series with slice thumbnails, pass/fail with a reason, the audit trail."""

from __future__ import annotations

import streamlit as st

from dashboard import auth, imageview, queries, review
from dashboard.text import day_text, number_text
from registry.models import QC_AUTO_FAILED, QC_FAILED, QC_PASSED, QC_PENDING, QC_STATUSES

COMMON_FAIL_REASONS = ["motion artefact", "incomplete head coverage", "wrong series (not a head CT)",
                       "slice thickness too large", "metal / streak artefact", "direct identifiers in headers"]

ident = auth.require_identity()
home = queries.current_home()
scope = ident.center_scope

st.title("Quality control")
queue = queries.qc_queue(home.db_url, scope)
if queue.empty:
    st.info("No series to review yet: ingest DICOM series with `ctstudy registry ingest DIR`.")
    st.stop()

flash = st.session_state.pop("qc_flash", None)
if flash:
    st.success(flash)

st.subheader("Review queue")
centers = sorted(queue["center"].unique())
f1, f2, f3, f4 = st.columns([2, 3, 2, 1])
chosen_centers = f1.multiselect("Center", centers, default=centers, disabled=scope is not None, key="qc_centers")
statuses = f2.multiselect("Status", list(QC_STATUSES), default=[QC_PENDING, QC_AUTO_FAILED], key="qc_statuses")
reason = f3.text_input("Reason contains", key="qc_reason_filter")
phi = f4.radio("PHI flag", review.PHI_FILTERS, key="qc_phi")
shown = review.filtered_queue(queue, chosen_centers, statuses, reason, phi)
st.caption(f"{len(shown)} of {len(queue)} series")
st.dataframe(
    shown[["center", "pseudo_id", "days_from_injury", "description", "slices", "slice_thickness", "qc_status",
           "qc_reasons", "phi_tags", "series_uid"]],
    hide_index=True,
    column_config={"days_from_injury": st.column_config.NumberColumn("day", format="%.1f"),
                   "slice_thickness": st.column_config.NumberColumn("thickness mm", format="%.1f")},
)

if shown.empty:
    st.stop()

st.subheader("Series")
labels = {
    row.series_uid: f"{row.center} · {row.pseudo_id} · {day_text(row.days_from_injury)} · {row.description or ''}"
    f" · {row.qc_status}"
    for row in shown.itertuples()
}
series_uid = st.selectbox("Series to review", list(labels), format_func=labels.get, key="qc_series")
row = shown.set_index("series_uid").loc[series_uid]
info = st.columns(4)
info[0].metric("Status", row["qc_status"])
info[1].metric("Slices", int(row["slices"]))
info[2].metric("Slice thickness", number_text(row["slice_thickness"], unit=" mm"))
info[3].metric("Day from injury", number_text(row["days_from_injury"]))
if row["qc_reasons"]:
    st.warning(f"Reasons: {row['qc_reasons']}")
if row["phi_tags"]:
    st.error(f"Direct identifiers found in the headers: {row['phi_tags']}")

level, width = imageview.WINDOW_PRESETS["brain"]
try:
    volume = queries.series_volume(home.db_url, scope, series_uid, str(home.root))
except ValueError as exc:  # not one regular volume: show the files one by one, and say why
    try:
        n_files, planes = queries.sampled_slices_hu(home.db_url, scope, series_uid, str(home.root), 8)
    except ValueError as read_exc:
        st.error(f"Cannot show the slices: {read_exc}")
    else:
        st.caption(f"Shown file by file: {exc}")
        st.image([imageview.windowed_uint8(p, level, width) for _, p in planes],
                 caption=[f"file {k + 1}/{n_files}" for k, _ in planes], width=140)
else:
    if volume is None:
        st.caption("No image files registered for this series.")
    else:
        picks = imageview.thumbnail_indices(volume.shape[0], 8)
        st.image([imageview.windowed_uint8(volume.hu[k], level, width) for k in picks],
                 caption=[f"slice {k + 1}/{volume.shape[0]}" for k in picks], width=140)

if ident.can_qc:
    with st.form("qc_decision", clear_on_submit=True):
        st.markdown("**Decision**")
        decision = st.radio("Decision", [QC_PASSED, QC_FAILED], horizontal=True, label_visibility="collapsed",
                            key="qc_decision")
        preset = st.selectbox("Reason", ["", *COMMON_FAIL_REASONS], help="Required to fail a series.",
                              key="qc_fail_reason")
        note = st.text_input("Other reason or note", key="qc_note")
        submitted = st.form_submit_button("Record decision")
    if submitted:
        text = "; ".join(part for part in (preset, note.strip()) if part)
        try:
            queries.record_qc(home.db_url, series_uid, decision, text, ident.username, scope)
        except (ValueError, PermissionError) as exc:
            st.error(str(exc))
        else:
            st.session_state["qc_flash"] = f"Series {series_uid} marked {decision} by {ident.username}."
            st.rerun()
else:
    st.caption(f"As {ident.role} you can review but not record QC decisions.")

history = queries.qc_history(home.db_url, scope, series_uid)
if len(history):
    st.markdown("**Decisions on this series**")
    st.dataframe(history[["when", "status", "reasons", "note", "actor", "automatic"]], hide_index=True)

st.subheader("Audit trail")
st.dataframe(queries.audit_trail(home.db_url, scope), hide_index=True)
