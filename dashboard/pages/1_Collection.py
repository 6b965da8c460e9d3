"""Collection: what each center has sent, how QC stands, progress against targets, what is still owed."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import auth, collection, figures, queries
from registry.collection.progress import TOTAL, missing_summary
from registry.collection.targets import TARGET_METRICS, effective_targets
from vocabulary.dictionary import dictionary_table, display_columns, heading

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
# The headline counts are the table's Total row under the table's own headings: what fails QC by a reviewer
# and what fails the automatic checks are counted apart in both.
for col, name in zip(st.columns(len(collection.HEADLINE_COLUMNS)), collection.HEADLINE_COLUMNS, strict=True):
    col.metric(heading(name), f"{totals[name]:,}")

st.subheader("Per center")
table = counts.copy()
if len(table) > 1:
    table = pd.concat([table, pd.DataFrame([{"center": "Total", **totals.to_dict()}])], ignore_index=True)
# Counts with short headings get narrow columns, so that all twelve fit the page beside the sidebar; long
# headings keep the width they need rather than being cut.
st.dataframe(display_columns(table), hide_index=True,
             column_config={heading(c): st.column_config.NumberColumn(width="small")
                            for c in collection.COUNT_COLUMNS if len(heading(c)) <= 10})

st.subheader("Collection over time")
basis = st.radio("Dated by", queries.ARRIVAL_BASES, horizontal=True,
                 format_func={"scanned": "scan date", "received": "date received"}.get,
                 help="Scan date shows enrolment; date received shows when centers sent their data.")
cumulative = collection.cumulative_from_daily(queries.arrival_counts(home.db_url, scope, basis))
st.plotly_chart(figures.cumulative_arrivals_figure(cumulative, "scan date" if basis == "scanned" else "date received"))

st.subheader("Progress against targets")
stored = collection.with_file_targets(queries.center_targets(home.db_url), collection.file_center_targets(home.root))
defaults = collection.study_defaults(home.root)


def progress_bars(done_totals: pd.Series, target_values: dict[str, int]) -> None:
    for row in collection.progress_against_targets(done_totals, target_values).itertuples():
        st.progress(row.fraction, text=f"{row.label}: {row.done:,} of {row.target:,} ({row.done / row.target:.0%})")


if scope:
    mine = effective_targets(stored, defaults, scope)
    if mine:
        progress_bars(totals, mine)
    else:
        st.info(f"No targets set for center {scope} yet: your study administrator sets them on this page.")
else:
    study = effective_targets(stored, defaults, None)
    st.markdown("**Whole study**")
    if study:
        progress_bars(totals, study)
    else:
        st.caption("No study-wide targets set.")
    per_center = collection.targets_by_center(counts, stored)
    st.markdown("**Per center**")
    if per_center.empty:
        st.caption("No per-center targets set yet" + (": set them below." if ident.role == "admin" else "."))
    else:
        st.dataframe(
            per_center.assign(reached=per_center["fraction"])[["center", "label", "done", "target", "reached"]],
            hide_index=True,
            column_config={"center": "Center", "label": "Target", "done": st.column_config.NumberColumn("Done"),
                           "target": st.column_config.NumberColumn("Target"),
                           "reached": st.column_config.ProgressColumn("Reached", min_value=0.0, max_value=1.0,
                                                                      format="percent")})

if ident.role == "admin":
    flash = st.session_state.pop("targets_flash", None)
    if flash:
        st.success(flash)
    with st.expander("Set targets (admin)", expanded=bool(flash)):
        choices = ["study", *queries.center_codes(home.db_url)]
        which = st.selectbox("Targets of", choices, key="targets_of",
                             format_func=lambda c: "the whole study" if c == "study" else f"center {c}")
        center = None if which == "study" else which
        current = effective_targets(stored, defaults if center is None else {}, center)
        with st.form(f"targets_form_{which}"):
            values = {
                metric: int(st.number_input(label, min_value=0, step=1, value=int(current.get(metric, 0)),
                                            key=f"target_{which}_{metric}",
                                            help="0 = no target" + (" (the study default applies)"
                                                                    if center is None else "")))
                for metric, label in TARGET_METRICS.items()
            }
            save = st.form_submit_button("Save targets")
        if save:
            try:
                changed = queries.save_targets(home.db_url, center, {m: v or None for m, v in values.items()},
                                               ident.username)
            except (ValueError, LookupError) as exc:
                st.error(str(exc))
            else:
                where = "the whole study" if center is None else f"center {center}"
                st.session_state["targets_flash"] = (
                    f"Targets of {where} saved by {ident.username}: "
                    + ", ".join(TARGET_METRICS[m] for m in changed) if changed else
                    f"Targets of {where} unchanged: nothing to save.")
                st.rerun()
        history = queries.target_history(home.db_url)
        if len(history):
            st.markdown("**Changes to targets**")
            st.dataframe(history, hide_index=True, column_config={"when": st.column_config.DatetimeColumn(
                "When", format="YYYY-MM-DD HH:mm"), "who": "Who", "target": "Target (center:metric)",
                "before": "Before", "after": "After"})

st.subheader("What each center still owes")
items = queries.owed_items(home.db_url, scope)
if items.empty:
    st.success("Nothing is owed: every patient has CT, clinical data, an outcome and a QC-passed admission scan.")
else:
    summary = missing_summary(items)
    st.dataframe(display_columns(summary if len(summary) > 2 else summary[summary["center"] != TOTAL]),
                 hide_index=True)
    with st.expander(f"The {len(items):,} items, patient by patient"):
        search = st.text_input("Find a patient, study or series", key="owed_search",
                               help="Part of a pseudonym or of a reference (the last characters of a UID).")
        shown = items
        if search.strip():
            needle = search.strip().lstrip("…")
            shown = items[items["pseudo_id"].str.contains(needle, case=False, regex=False)
                          | items["detail"].str.contains(needle, case=False, regex=False)]
        st.dataframe(display_columns(shown[["center", "pseudo_id", "what", "reference", "reason"]].rename(
            columns={"what": "Missing", "reference": "Reference", "reason": "Why"})), hide_index=True)

with st.expander("Data dictionary: what every variable, biomarker and code means"):
    st.caption("The same names, units and definitions as the exports (`ctstudy registry export` writes them beside "
               "the table) and `ctstudy dictionary`.")
    st.dataframe(dictionary_table().rename(columns=str.capitalize), hide_index=True)
