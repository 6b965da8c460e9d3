"""Case viewer: a patient's scans over time, a slice viewer with window presets and mask overlay, volumes."""

from __future__ import annotations

import streamlit as st

from dashboard import auth, case_view, figures, imageview, queries, score_panel
from dashboard.text import day_text
from vocabulary.dictionary import label, short_heading, short_uid
from vocabulary.labels import LESION_CLASSES, annotated_fraction

ident = auth.require_identity()
home = queries.current_home()
scope = ident.center_scope

st.title("Case viewer")
patients = queries.patients(home.db_url, scope)
if patients.empty:
    st.info("No CT series yet: ingest DICOM series with `ctstudy registry ingest DIR`.")
    st.stop()

findings = queries.patient_findings(home.db_url, scope).set_index("pseudo_id")["lesion_ml"]
label_of = {r.pseudo_id: f"{r.pseudo_id} · {r.center} · {r.series} series"
            + (f" · lesions up to {findings[r.pseudo_id]:.1f} mL" if findings.get(r.pseudo_id, 0) > 0 else "")
            for r in patients.itertuples()}
# Open on the patient with the largest lesion (a case worth looking at), preferring one whose scans are dated
# (on the timeline); the one with most scans only when no patient has biomarkers.
dated = set(patients.loc[patients["first_day"].notna(), "pseudo_id"])
with_findings = sorted((p for p in findings.index if findings[p] > 0 and p in label_of),
                       key=lambda p: p not in dated)  # stable: the largest lesion first within each group
first = with_findings[0] if with_findings else patients["pseudo_id"].iloc[int(patients["series"].to_numpy().argmax())]
pseudo_id = st.selectbox("Patient (pseudonymized)", list(label_of), format_func=label_of.get, key="case_patient",
                         index=list(label_of).index(first))
series = queries.patient_series(home.db_url, scope, pseudo_id)

st.subheader("Scans")
undated = int(series["days_from_injury"].isna().sum())
if undated == len(series):
    st.info("No injury time in this patient's clinical data, so no scan has a day from injury: the scans are "
            "shown in the order they were taken. Import the clinical table with the time of injury "
            "(`ctstudy registry import-clinical clinical.csv`) to place them on a timeline.")
else:
    st.plotly_chart(figures.timeline_figure(series), key="case_timeline")
    if undated:
        st.caption(f"{undated} scan(s) not on the timeline: no injury time in this patient's clinical data.")

st.subheader("Lesion volumes over time")
features = queries.series_features(home.db_url, scope, pseudo_id)
if features.empty or "hematoma_ml" not in features:
    st.info("No imaging biomarkers for this patient yet: `ctstudy imaging segment --all`, then "
            "`ctstudy biomarkers extract`.")
else:
    st.plotly_chart(figures.volumes_over_time_figure(features), key="case_volumes")
    scans = case_view.scan_table(features)
    # Short headings keep every column (IVH, midline shift, lesions) in view; the full heading is each tooltip.
    st.dataframe(scans.table, hide_index=True, column_config={
        title: st.column_config.Column(help=help_text, width="medium" if title == short_heading("source") else "small")
        for title, help_text in scans.help.items()})

st.subheader("CT classifications")
if features.empty or "marshall_ct_class_low" not in features:
    st.info("No CT classifications for this patient yet: `ctstudy biomarkers extract` computes them.")
else:
    scored = features[features["marshall_ct_class_low"].notna()].reset_index(drop=True)
    score_label = {i: f"{day_text(r.days_from_injury)} · {r.source}" for i, r in enumerate(scored.itertuples())}
    pick = st.selectbox("Scan", list(score_label), format_func=score_label.get, key=f"case_scores_{pseudo_id}")
    row = scored.iloc[pick].to_dict()
    c = st.columns(2)
    c[0].dataframe(score_panel.score_rows(row), hide_index=True)
    c[1].dataframe(score_panel.component_rows(row), hide_index=True)
    if ident.can_qc:
        st.markdown("**Set a component** (audited; shown as reviewer-entered)")
        component = st.selectbox("Component", list(score_panel.COMPONENT_CHOICES), key=f"case_component_{pseudo_id}",
                                 format_func=lambda n: score_panel.label(f"ct_{n}"))
        with st.form(f"score_component_{pseudo_id}_{pick}"):
            fc = st.columns(2)
            value = fc[0].selectbox("Value", score_panel.COMPONENT_CHOICES[component])
            note = fc[1].text_input("Note (optional)")
            if st.form_submit_button("Save component"):
                try:
                    score_panel.set_series_component(home.db_url, row["series_uid"], component, value,
                                                     ident.username, scope, note)
                    st.success(f"{score_panel.label(f'ct_{component}')} set to {value}.")
                except (ValueError, PermissionError, LookupError) as exc:
                    st.error(str(exc))

st.subheader("Slices")
has_mask = series["auto_mask"].notna() | series["manual_mask"].notna()
series_label = {r.series_uid: f"{day_text(r.days_from_injury)} · {r.description or ''} · "
                f"{label(r.qc_status, 'qc_status')} · {short_uid(r.series_uid)}"
                for r in series.itertuples()}
uids = list(series_label)
default = int(has_mask.to_numpy().argmax()) if has_mask.any() else 0
series_uid = st.selectbox("Series", uids, index=default, format_func=series_label.get,
                          key=f"case_series_{pseudo_id}")
row = series.set_index("series_uid").loc[series_uid]

try:
    volume = queries.series_volume(home.db_url, scope, series_uid, str(home.root))
except ValueError as exc:
    st.error(f"Cannot show the slices: {exc}")
    st.stop()
if volume is None:
    st.info("No image files are registered for this series.")
    st.stop()

sources = {"automatic": row["auto_mask"], "manual": row["manual_mask"]}
options = [name for name, path in sources.items() if isinstance(path, str)] + ["none"]
c1, c2 = st.columns(2)
source = c1.radio("Mask", options, horizontal=True, key=f"case_mask_{series_uid}",
                  help="Automatic: the latest segmentation run; manual: the latest imported annotation.")
window_label = {name: f"{name} {lw[0]:.0f}/{lw[1]:.0f}" for name, lw in imageview.WINDOW_PRESETS.items()}
preset = c2.radio("Window", list(window_label), horizontal=True, key="case_window", format_func=window_label.get)
if options == ["none"]:
    st.caption("No mask for this series yet: `ctstudy imaging segment --all` or "
               "`ctstudy registry import-annotations DIR`.")

labels = None
if source != "none":
    labels, problem = queries.overlay_labels(sources[source], str(home.root), volume, source)
    if problem:
        st.error(problem)

n = volume.shape[0]
level, width = imageview.WINDOW_PRESETS[preset]
# Keyed by series and mask, so that a new choice opens on its own most informative slice.
slice_key = f"case_slice_{series_uid}_{source}"
if slice_key not in st.session_state:
    st.session_state[slice_key] = imageview.richest_slice(labels, n) + 1


def step(by: int) -> None:
    st.session_state[slice_key] = min(n, max(1, st.session_state[slice_key] + by))


s1, s2, s3 = st.columns([1, 10, 1], vertical_alignment="bottom")
s1.button("◀", key=f"case_prev_{series_uid}", on_click=step, args=(-1,), help="Previous slice",
          disabled=n < 2)
index = (s2.slider("Slice", 1, n, key=slice_key, disabled=n < 2) if n > 1 else 1) - 1
s3.button("▶", key=f"case_next_{series_uid}", on_click=step, args=(1,), help="Next slice", disabled=n < 2)
image = imageview.overlay_rgb(imageview.windowed_uint8(volume.hu[index], level, width),
                              None if labels is None else labels[index])
st.plotly_chart(figures.slice_figure(image, volume.spacing[1:]), key="case_slice_image",
                config={"scrollZoom": True, "displaylogo": False})
st.caption(f"slice {index + 1}/{n} · {preset} window · drag a box or scroll on the image to zoom, double-click "
           "to see the whole slice")
if labels is not None:
    voxel_ml = volume.voxel_ml
    st.markdown(imageview.legend_html(), unsafe_allow_html=True)  # one colour per class, from vocabulary.labels
    share = annotated_fraction(labels)
    st.caption(f"{source} mask: " + ", ".join(f"{c.name} {(labels == c.value).sum() * voxel_ml:.1f} mL"
                                             for c in LESION_CLASSES)
               + ("" if share == 1.0 else f" · partial annotation: {share:.0%} of the scan annotated, volumes of "
                                          "that part only"))
