"""Biomarkers: distributions by center and by outcome; ABC/2 against segmented hematoma volume."""

from __future__ import annotations

import streamlit as st

from biomarkers import provenance
from dashboard import auth, biomarker_stats, figures, provenance_panel, queries, score_panel
from dashboard.text import day_text
from vocabulary.dictionary import display_columns, heading, label, short_uid

ident = auth.require_identity()
home = queries.current_home()
scope = ident.center_scope

st.title("Biomarkers")
features = queries.series_features(home.db_url, scope)
if features.empty:
    st.info("No imaging biomarkers yet: segment the series with `ctstudy imaging segment --all`, then "
            "`ctstudy biomarkers extract`.")
    st.stop()

c1, c2, c3 = st.columns(3)
sources = sorted(features["source"].unique())
source = c1.radio("Mask source", sources, horizontal=True, key="bio_source",
                  index=sources.index("segmentation") if "segmentation" in sources else 0,
                  format_func=lambda s: label(s, "mask_source"))
scans = c2.radio("Scans", ["admission", "all"], horizontal=True, key="bio_scans",
                 format_func={"admission": "admission (first) scan", "all": "all scans"}.get)
data = features[features["source"] == source]
data = biomarker_stats.admission_rows(data) if scans == "admission" else data
names = biomarker_stats.numeric_features(data)
if not names:
    st.info(f"No numeric biomarkers stored for the {source} masks.")
    st.stop()
feature = c3.selectbox("Biomarker", names, key="bio_feature", format_func=heading)
st.caption(f"{len(data)} series of {data['pseudo_id'].nunique()} patients · {label(source, 'mask_source')}")
mixed = provenance.mixed_models_notice(data)
if mixed:  # the notice names each model with its number of series
    st.warning(mixed)

left, right = st.columns(2)
with left:
    st.plotly_chart(figures.feature_by_group_figure(data, feature, "center", f"{heading(feature)} by center"),
                    key="bio_by_center")
    by_center = biomarker_stats.summary_by_group(data, feature, "center").round(2)
    st.dataframe(display_columns(by_center, "summary"), hide_index=True)
with right:
    outcome = st.radio("Outcome", ["mortality", "unfavourable"], horizontal=True, key="bio_outcome",
                       format_func=label)
    labelled = data.assign(outcome=biomarker_stats.outcome_labels(data, outcome))
    if labelled["outcome"].notna().any():
        st.plotly_chart(figures.feature_by_group_figure(labelled, feature, "outcome",
                                                        f"{heading(feature)} by outcome"),
                        key="bio_by_outcome")
        by_outcome = biomarker_stats.summary_by_group(labelled, feature, "outcome").round(2)
        st.dataframe(display_columns(by_outcome, "summary"), hide_index=True)
    else:
        st.info("No 6-month outcomes yet: `ctstudy registry import-outcomes outcomes.csv`.")

st.subheader("Outcome by CT class")
outcome_column = {"mortality": "died", "unfavourable": "unfavourable"}[outcome]
by_class = st.columns(2)
for col, score in zip(by_class, ("marshall_ct_class", "rotterdam_ct_score"), strict=True):
    table = score_panel.outcome_by_class(data, score, outcome_column)
    with col:
        if table.empty:
            st.info(f"No series with a known {score_panel.label(score)} and an outcome.")
            continue
        st.plotly_chart(score_panel.outcome_by_class_figure(table, score_panel.label(score), outcome),
                        key=f"bio_outcome_by_{score}")
        unknown = int(data[score].isna().sum()) if score in data else len(data)
        if unknown:
            st.caption(f"{unknown} series left out: their {score_panel.label(score)} is a range (a component unknown).")

st.subheader("Where a value comes from")
traced = biomarker_stats.traceable_values(data, feature)
trace_label = {i: f"{r.value:.2f} · {r.pseudo_id} · {r.center} · {day_text(r.days_from_injury)} · "
                  f"{short_uid(r.series_uid)}" for i, r in traced.iterrows()}
picked = st.selectbox(f"{heading(feature)}: pick a value (largest first) to see its series, mask, model and slices",
                      list(trace_label), format_func=trace_label.get, index=None, key=f"bio_trace_{feature}",
                      placeholder="a value shown above")
if picked is not None:
    chosen = traced.loc[picked]
    provenance_panel.show(home.db_url, str(home.root), scope, chosen["series_uid"], chosen["source"], feature,
                          float(chosen["value"]))

st.subheader("ABC/2 against segmented hematoma volume")
if {"abc2_ml", "hematoma_ml"} <= set(data.columns):
    agreement = biomarker_stats.abc2_agreement(data)
    m = st.columns(3)
    m[0].metric("Series", agreement["n"])
    m[1].metric("Mean ABC/2 − segmented", f"{agreement['mean_difference_ml']:+.2f} mL")
    m[2].metric("Pearson r", "n/a (< 3 series)" if agreement["n"] < 3 else f"{agreement['pearson_r']:.3f}")
    st.plotly_chart(figures.abc2_scatter_figure(data), key="bio_abc2")
    st.caption("ABC/2 is measured on the largest lesion; points above the dashed line are over-estimates.")
else:
    st.info(f"These features have no {label('abc2_ml')}: recompute them with `ctstudy biomarkers extract`.")
