"""Quality control: a review queue that opens on what needs a decision, a slice viewer, a verdict, the next series."""

from __future__ import annotations

import streamlit as st

from dashboard import auth, imageview, qc_view, queries, review, words
from dashboard.text import day_text, number_text
from registry.db.models import QC_AUTO_FAILED, QC_FAILED, QC_PASSED, QC_PENDING, QC_STATUSES
from vocabulary import dictionary

ident = auth.require_identity()
home = queries.current_home()
scope = ident.center_scope

st.title("Quality control")
counts = queries.qc_status_counts(home.db_url, scope)
if counts.empty:
    st.info("No series to review yet: ingest DICOM series with `ctstudy registry ingest DIR`.")
    st.stop()

flash = st.session_state.pop("qc_flash", None)
if flash:
    kind, text = flash
    (st.success if kind == "success" else st.info)(text)

by_status = counts.groupby("qc_status")["n"].sum()
n_pending, n_auto, n_all = int(by_status.get(QC_PENDING, 0)), int(by_status.get(QC_AUTO_FAILED, 0)), int(
    counts["n"].sum())
st.markdown(f"**{n_pending + n_auto:,} series need a decision**: {n_pending:,} waiting for review, "
            f"{n_auto:,} failed the automatic checks (a reviewer confirms or overrides them). "
            f"{n_all - n_pending - n_auto:,} already decided.")

with st.expander("Filter the queue", expanded=False):
    centers = sorted(counts["center"].unique())
    f1, f2, f3 = st.columns([2, 3, 1])
    chosen_centers = f1.multiselect("Center", centers, default=centers, disabled=scope is not None,
                                    key="qc_centers")
    statuses = f2.multiselect("Status", list(QC_STATUSES), default=list(qc_view.NEEDS_DECISION),
                              format_func=qc_view.status_words, key="qc_statuses")
    phi = f3.radio("Identifiers in headers", review.PHI_FILTERS, key="qc_phi")
search = st.text_input("Find a series", key="qc_search", placeholder="reference (e.g. 09942541), patient, reason",
                       help="Part of the series UID (the reference shown in lists), of the patient pseudonym, "
                            "of the series description or of the QC reason.")
# The database filters, orders and pages the queue: a consortium's 100,000 series never reach the page.
filters = (tuple(chosen_centers), tuple(statuses), phi, search)
if st.session_state.get("qc_filters") != filters:
    st.session_state["qc_filters"], st.session_state["qc_page"] = filters, 1
page_no = int(st.session_state.get("qc_page", 1))
shown, n_shown = queries.qc_queue_page(home.db_url, scope, *filters, page=page_no - 1)
n_pages = max(1, -(-n_shown // queries.QC_PAGE_SIZE))
if page_no > n_pages:  # the queue got shorter (decisions taken): its last page
    page_no = st.session_state["qc_page"] = n_pages
    shown, n_shown = queries.qc_queue_page(home.db_url, scope, *filters, page=page_no - 1)
if n_pages > 1:
    st.number_input(f"Page (of {n_pages:,}, {queries.QC_PAGE_SIZE} series each)", 1, n_pages, key="qc_page")
first = (page_no - 1) * queries.QC_PAGE_SIZE
st.caption(f"{len(shown):,} of {n_shown:,} matching series shown"
           + (f" ({first + 1:,}-{first + len(shown):,})" if n_pages > 1 else "")
           + f", {n_all:,} in all; what needs a decision first, oldest first")
if shown.empty:
    st.success("Nothing here needs a decision." if set(statuses) <= set(qc_view.NEEDS_DECISION) and not search
               else "No series matches these filters.")
    st.stop()
st.dataframe(qc_view.queue_table(shown), hide_index=True, height=min(38 + 35 * len(shown), 260),
             column_config={"Thickness (mm)": st.column_config.NumberColumn(format="%.2g"),
                            "Slices": st.column_config.NumberColumn(width="small"),
                            "Center": st.column_config.TextColumn(width="small")})

# --- the series under review ---------------------------------------------------------------------
uids = shown["series_uid"].tolist()
wanted = st.session_state.pop("qc_next", None)
if wanted in uids:
    st.session_state["qc_series"] = wanted
elif st.session_state.get("qc_series") not in uids:
    st.session_state["qc_series"] = uids[0]
rows = shown.set_index("series_uid")


def series_text(uid: str) -> str:
    r = rows.loc[uid]
    return (f"{r['center']} · {r['pseudo_id']} · {day_text(r['days_from_injury'])} · {r['description'] or ''}"
            f" · {qc_view.status_words(r['qc_status'])} · {dictionary.short_uid(uid)}")


st.subheader("Review")
pick, skip = st.columns([6, 1], vertical_alignment="bottom")
series_uid = pick.selectbox("Series to review", uids, format_func=series_text, key="qc_series")
position = uids.index(series_uid)
if skip.button("Next series", key="qc_skip", disabled=len(uids) < 2, help="Leave this one for later."):
    st.session_state["qc_next"] = qc_view.next_series(uids, series_uid)
    st.rerun()
row = rows.loc[series_uid]
facts = queries.series_review_facts(home.db_url, scope, series_uid)
auto_reasons = qc_view.reason_words(row["qc_reasons"])

viewer, side = st.columns([3, 2])
with side:
    st.markdown(f"**{qc_view.status_words(row['qc_status'])}** · series {position + 1} of {len(uids)} in this queue")
    info = st.columns(3)
    info[0].metric("Slices", f"{int(row['slices']):,}")
    info[1].metric("Slice thickness", number_text(row["slice_thickness"], unit=" mm"))
    info[2].metric("Day from injury", number_text(row["days_from_injury"]))
    st.caption(f"Series UID {series_uid}")
    if auto_reasons:
        st.warning("Automatic checks found:\n" + "\n".join(
            f"- **{qc_view.reason_words([code])[0]}**: {dictionary.entry(code, 'qc_reason').definition}"
            if dictionary.entry(code, "qc_reason") else f"- {code}"
            for code in [c.strip() for c in row["qc_reasons"].split(",") if c.strip()]))
    if row["phi_tags"]:
        st.error(f"Direct identifiers found in the headers ({row['phi_tags']}): fail it, and ask the center to "
                 "de-identify and send it again.")

with viewer:
    localizer = qc_view.is_localizer(facts["image_type"], row["qc_reasons"])
    presets = [qc_view.AUTO_WINDOW, *imageview.WINDOW_PRESETS]
    window_label = {qc_view.AUTO_WINDOW: "image range",
                    **{name: f"{name} {lw[0]:.0f}/{lw[1]:.0f}" for name, lw in imageview.WINDOW_PRESETS.items()}}
    c1, c2 = st.columns([3, 2])
    preset = c1.radio("Window", presets, index=0 if localizer else 1, horizontal=True, key=f"qc_window_{series_uid}",
                      format_func=window_label.get, help="Level/width in HU; 'image range' fits any image "
                      "(topograms, unusual scaling).")
    masks = {"automatic": facts["auto_mask"], "manual": facts["manual_mask"]}
    mask_names = [name for name, path in masks.items() if isinstance(path, str)]
    overlay = c2.radio("Mask overlay", [*mask_names, "none"], horizontal=True, key=f"qc_mask_{series_uid}",
                       disabled=not mask_names, help="The latest segmentation or imported annotation.")

    def window(image):  # noqa: ANN001, ANN202 - a numpy slice
        return qc_view.auto_window(image) if preset == qc_view.AUTO_WINDOW else imageview.WINDOW_PRESETS[preset]

    try:
        volume = queries.series_volume(home.db_url, scope, series_uid, str(home.root))
    except ValueError as exc:  # not one regular volume: show the files one by one, and say why
        try:
            n_files, planes = queries.sampled_slices_hu(home.db_url, scope, series_uid, str(home.root), 8)
        except ValueError as read_exc:
            st.error(f"Cannot show the slices: {read_exc}")
        else:
            st.caption(f"Shown file by file: {exc}")
            st.image([imageview.windowed_uint8(p, *window(p)) for _, p in planes],
                     caption=[f"file {k + 1}/{n_files}" for k, _ in planes], width=160)
    else:
        if volume is None:
            st.caption("No image files registered for this series.")
        else:
            labels = None
            if overlay != "none":
                labels, problem = queries.overlay_labels(masks[overlay], str(home.root), volume, overlay)
                if problem:
                    st.error(problem)
            n = volume.shape[0]
            start = imageview.richest_slice(labels, n) + 1
            index = (st.slider("Slice", 1, n, start, key=f"qc_slice_{series_uid}_{overlay}") - 1) if n > 1 else 0
            image = volume.hu[index]
            grey = imageview.windowed_uint8(image, *window(image))
            st.image(qc_view.class_overlay(grey, None if labels is None else labels[index]),
                     caption=f"slice {index + 1}/{n}", width=560)
            if labels is not None:
                st.markdown(qc_view.legend_html(labels), unsafe_allow_html=True)
            elif not mask_names:
                st.caption("No mask for this series yet.")
            with st.expander("All slices at a glance", expanded=False):
                picks = imageview.thumbnail_indices(n, 8)
                st.image([imageview.windowed_uint8(volume.hu[k], *window(volume.hu[k])) for k in picks],
                         caption=[f"slice {k + 1}/{n}" for k in picks], width=120)

with side:
    if ident.can_qc:
        st.markdown("**Decision**")
        # Widget keys per series: a verdict or reason given on one series never carries over to the next. The form
        # keeps what was chosen when the decision is refused (no reason to fail), and is emptied once recorded.
        form_keys = [f"qc_decision_{series_uid}", f"qc_reasons_pick_{series_uid}", f"qc_note_{series_uid}"]
        with st.form(f"qc_decision_form_{series_uid}", clear_on_submit=False):
            verdict = st.radio("Verdict", [QC_PASSED, QC_FAILED], index=None, format_func=qc_view.VERDICTS.get,
                               key=f"qc_decision_{series_uid}")
            picked = st.multiselect("Reasons", list(dict.fromkeys([*auto_reasons, *qc_view.COMMON_FAIL_REASONS])),
                                    key=f"qc_reasons_pick_{series_uid}", help="Required to fail; pick any that apply.")
            note = st.text_input("Other reason or note", key=f"qc_note_{series_uid}")
            submitted = st.form_submit_button("Record decision", type="primary")
        if submitted:
            text = "; ".join([*picked, *([note.strip()] if note.strip() else [])])
            if verdict is None:
                st.error("Choose a verdict: pass or fail.")
            elif verdict == QC_FAILED and not text:
                st.error("To fail a series, choose a reason from the list or write one.")
            else:
                following = qc_view.next_series(uids, series_uid)
                try:
                    repeated = queries.record_qc(home.db_url, series_uid, verdict, text, ident.username, scope)
                except (ValueError, LookupError, PermissionError) as exc:
                    st.error(str(exc))
                else:
                    ref = f"Series {dictionary.short_uid(series_uid)} ({row['center']} · {row['pseudo_id']})"
                    if repeated is not None:
                        st.session_state["qc_flash"] = ("info", f"{ref} was already marked {verdict} by "
                                                        f"{repeated.actor} on {repeated.decided_at:%Y-%m-%d %H:%M}; "
                                                        "nothing recorded.")
                    else:
                        st.session_state["qc_flash"] = ("success", f"{ref} marked {verdict} by {ident.username}."
                                                        + (" Next series below." if following else ""))
                    st.session_state["qc_next"] = following
                    for key in form_keys:
                        st.session_state.pop(key, None)
                    st.rerun()
    else:
        st.caption(f"As {ident.role} you can review but not record QC decisions.")

history = queries.qc_history(home.db_url, scope, series_uid)
if len(history):
    with st.expander(f"Decisions on this series ({len(history)})"):
        st.dataframe(history.assign(status=history["status"].map(qc_view.status_words),
                                    reasons=history["reasons"].map(lambda r: "; ".join(qc_view.reason_words(r))),
                                    automatic=history["automatic"].map({True: "automatic", False: "reviewer"}))
                     [["when", "status", "reasons", "actor", "automatic"]]
                     .rename(columns={"when": "When", "status": "Decision", "reasons": "Reasons", "actor": "Who",
                                      "automatic": "By"}), hide_index=True)

with st.expander("Audit trail"):
    st.dataframe(words.audit_table(queries.audit_trail(home.db_url, scope)), hide_index=True)
