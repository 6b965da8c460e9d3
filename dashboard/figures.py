"""Plotly figures for the dashboard pages: DataFrames in, figures out (no database, no Streamlit)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from vocabulary.dictionary import heading, label, short_uid, unit
from vocabulary.labels import LESION_CLASSES


def cumulative_arrivals_figure(cumulative: pd.DataFrame, date_label: str = "date received") -> go.Figure:
    """Cumulative patients and series per center over time (one panel per kind)."""
    fig = px.line(cumulative, x="date", y="cumulative", color="center", facet_col="kind", line_shape="hv",
                  markers=True, labels={"cumulative": "cumulative count", "date": date_label})
    fig.update_yaxes(matches=None, showticklabels=True)
    fig.update_xaxes(tickformat="%Y-%m-%d")
    if len(cumulative):
        first, last = pd.to_datetime(cumulative["date"]).agg(["min", "max"])
        if last - first < pd.Timedelta(days=7):  # a single week would otherwise be labelled in milliseconds
            fig.update_xaxes(range=[first - pd.Timedelta(days=3), last + pd.Timedelta(days=3)])
    fig.for_each_annotation(lambda a: a.update(text=a.text.split("=")[-1]))
    fig.update_layout(height=340, margin=dict(l=10, r=10, t=30, b=10), legend_title_text="center")
    return fig


QC_COLOURS = {"passed": "#2ca02c", "failed": "#d62728", "auto_failed": "#ff7f0e", "pending": "#7f7f7f"}
# The per-class volumes of the case viewer, one colour per lesion class (vocabulary.labels); `hematoma_ml` is
# label 1 (intraparenchymal), so it stands for IPH where a series has no `iph_ml`.
CLASS_VOLUMES = {c.key: f"{c.key}_ml" for c in LESION_CLASSES}
CLASS_COLOURS = {c.name: c.colour for c in LESION_CLASSES}
SOURCE_DASHES = {"segmentation": "solid", "manual": "dash", "truth": "dot"}


def timeline_figure(series: pd.DataFrame) -> go.Figure:
    """A patient's dated scans along days from injury, coloured by QC status (in words)."""
    data = series.dropna(subset=["days_from_injury"]).assign(
        status=lambda d: d["qc_status"].map(lambda q: label(q, "qc_status")),
        reference=lambda d: d["series_uid"].map(short_uid), row=lambda d: ["CT"] * len(d),
        series_text=lambda d: d["description"].fillna(""))
    fig = px.scatter(data, x="days_from_injury", y="row", color="status",
                     color_discrete_map={label(k, "qc_status"): v for k, v in QC_COLOURS.items()},
                     hover_data={"series_text": True, "slices": True, "reference": True, "row": False},
                     labels={"days_from_injury": heading("days_from_injury"), "row": "", "status": heading("qc_status"),
                             "series_text": label("description"), "slices": label("slices"),
                             "reference": label("short_id")})
    fig.update_traces(marker=dict(size=16, symbol="square"))
    fig.update_layout(height=180, margin=dict(l=10, r=10, t=10, b=10), legend_title_text=label("qc_status"))
    return fig


def class_volumes(features: pd.DataFrame) -> pd.DataFrame:
    """Per series and mask source, one row per lesion class: x (day, else scan number), class name, volume (mL).

    Every class of the label map is there (a class with no column, as in masks measured before extra-axial and
    intraventricular blood had volumes of their own, is left out rather than drawn as zero)."""
    rows = []
    dated = features["days_from_injury"].notna().any()
    order = {uid: k + 1 for k, uid in enumerate(dict.fromkeys(features["series_uid"]))} if "series_uid" in features \
        else {}
    for r in features.to_dict("records"):
        x = r["days_from_injury"] if dated else order.get(r.get("series_uid"), 1)
        for c in LESION_CLASSES:
            column = CLASS_VOLUMES[c.key] if CLASS_VOLUMES[c.key] in r else ("hematoma_ml" if c.key == "iph" else None)
            value = r.get(column) if column else None
            if value is not None and not pd.isna(value):
                rows.append({"x": x, "lesion class": c.name, "volume": float(value),
                             "mask": label(r["source"], "mask_source")})
    return pd.DataFrame(rows, columns=["x", "lesion class", "volume", "mask"])


def volumes_over_time_figure(features: pd.DataFrame) -> go.Figure:
    """Volume of every lesion class (its label-map colour) per scan, one line style per mask source; along days
    from injury, or along scan order when the patient's injury time is unknown."""
    long = class_volumes(features)
    dated = features["days_from_injury"].notna().any()
    fig = px.line(long, x="x", y="volume", color="lesion class", line_dash="mask", markers=True,
                  color_discrete_map=CLASS_COLOURS,
                  line_dash_map={label(k, "mask_source"): v for k, v in SOURCE_DASHES.items()},
                  labels={"x": heading("days_from_injury") if dated else "Scan (in order; no injury time)",
                          "volume": "Volume (mL)", "lesion class": "Lesion class", "mask": label("source")})
    if not dated:
        fig.update_xaxes(dtick=1)
    fig.update_layout(height=320, margin=dict(l=10, r=10, t=10, b=10), legend_title_text="")
    return fig


def feature_by_group_figure(features: pd.DataFrame, feature: str, group: str, title: str) -> go.Figure:
    """Box plot with every point of one biomarker per group (center or outcome), labelled from the dictionary."""
    data = features.dropna(subset=[group, feature])
    fig = px.box(data, x=group, y=feature, color=group, points="all", title=title,
                 hover_data=["pseudo_id", "days_from_injury"],
                 labels={feature: heading(feature), group: label(group), "pseudo_id": label("pseudo_id"),
                         "days_from_injury": heading("days_from_injury")})
    fig.update_layout(height=360, showlegend=False, margin=dict(l=10, r=10, t=40, b=10))
    return fig


def abc2_scatter_figure(features: pd.DataFrame) -> go.Figure:
    """ABC/2 estimate against segmented hematoma volume, with the line of identity."""
    data = features.dropna(subset=["abc2_ml", "hematoma_ml"])
    fig = px.scatter(data, x="hematoma_ml", y="abc2_ml", color="center", hover_data=["pseudo_id", "days_from_injury"],
                     labels={"hematoma_ml": f"Segmented {label('hematoma_ml').lower()} ({unit('hematoma_ml')})",
                             "abc2_ml": heading("abc2_ml"),
                             "center": label("center"), "pseudo_id": label("pseudo_id"),
                             "days_from_injury": heading("days_from_injury")})
    top = float(max(data["hematoma_ml"].max(), data["abc2_ml"].max(), 1.0)) if len(data) else 1.0
    fig.add_trace(go.Scatter(x=[0, top], y=[0, top], mode="lines", line=dict(dash="dash", color="grey"),
                             name="identity"))
    fig.update_layout(height=420, margin=dict(l=10, r=10, t=10, b=10), legend_title_text=label("center"))
    return fig


def slice_figure(rgb: np.ndarray, spacing_yx: tuple[float, float] = (1.0, 1.0)) -> go.Figure:
    """A CT slice (RGB, overlay blended in) as a zoomable image: drag a box to zoom, scroll to zoom, double-click
    to see the whole slice again. Pixels keep their physical aspect ratio (row and column spacing in mm)."""
    fig = px.imshow(rgb, binary_string=True)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, scaleanchor="x", scaleratio=spacing_yx[0] / spacing_yx[1])
    fig.update_traces(hovertemplate="column %{x}, row %{y}<extra></extra>")
    # One UI revision for every slice: a zoom stays while scrolling through the slices of a series.
    fig.update_layout(height=560, margin=dict(l=0, r=0, t=0, b=0), dragmode="zoom", uirevision="slice-viewer")
    return fig


def risk_figure(risks: pd.DataFrame) -> go.Figure:
    """Predicted risks (with intervals where known) per source and outcome, as horizontal bars."""
    fig = go.Figure()
    for outcome, colour in (("mortality", "#b2182b"), ("unfavourable", "#ef8a62")):
        part = risks[risks["outcome"] == outcome]
        risk, lower, upper = (pd.to_numeric(part[c], errors="coerce") for c in ("risk", "lower", "upper"))
        error = dict(type="data", symmetric=False, array=(upper - risk).fillna(0.0),
                     arrayminus=(risk - lower).fillna(0.0))
        fig.add_trace(go.Bar(y=part["source"], x=part["risk"], orientation="h", name=outcome,
                             marker_color=colour, error_x=error))
    fig.update_xaxes(range=[0, 1], tickformat=".0%", title="predicted risk at 6 months")
    fig.update_layout(barmode="group", height=max(240, 60 * risks["source"].nunique() + 80),
                      margin=dict(l=10, r=10, t=10, b=10))
    return fig
