"""Plotly figures for the dashboard pages: DataFrames in, figures out (no database, no Streamlit)."""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go


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
LABEL_LINE_COLOURS = {"hematoma_ml": "#e61919", "edema_ml": "#1e5aff"}


def timeline_figure(series: pd.DataFrame) -> go.Figure:
    """A patient's scans along days from injury, coloured by QC status."""
    fig = px.scatter(series, x="days_from_injury", y=["CT"] * len(series), color="qc_status",
                     color_discrete_map=QC_COLOURS, hover_data=["description", "slices", "series_uid"],
                     labels={"days_from_injury": "days from injury", "y": ""})
    fig.update_traces(marker=dict(size=16, symbol="square"))
    fig.update_layout(height=180, margin=dict(l=10, r=10, t=10, b=10), legend_title_text="QC")
    return fig


def volumes_over_time_figure(features: pd.DataFrame) -> go.Figure:
    """Hematoma (red) and edema (blue) volume per scan day, one line style per mask source."""
    long = features.melt(id_vars=["days_from_injury", "source"], value_vars=["hematoma_ml", "edema_ml"],
                         var_name="label", value_name="mL")
    fig = px.line(long, x="days_from_injury", y="mL", color="label", line_dash="source", markers=True,
                  color_discrete_map=LABEL_LINE_COLOURS, labels={"days_from_injury": "days from injury"})
    fig.update_layout(height=300, margin=dict(l=10, r=10, t=10, b=10))
    return fig


def feature_by_group_figure(features: pd.DataFrame, feature: str, group: str, title: str) -> go.Figure:
    """Box plot with every point of one biomarker per group (center or outcome)."""
    data = features.dropna(subset=[group, feature])
    fig = px.box(data, x=group, y=feature, color=group, points="all", title=title,
                 hover_data=["pseudo_id", "days_from_injury"])
    fig.update_layout(height=360, showlegend=False, margin=dict(l=10, r=10, t=40, b=10))
    return fig


def abc2_scatter_figure(features: pd.DataFrame) -> go.Figure:
    """ABC/2 estimate against segmented hematoma volume, with the line of identity."""
    data = features.dropna(subset=["abc2_ml", "hematoma_ml"])
    fig = px.scatter(data, x="hematoma_ml", y="abc2_ml", color="center", hover_data=["pseudo_id", "days_from_injury"],
                     labels={"hematoma_ml": "segmented hematoma (mL)", "abc2_ml": "ABC/2 (mL)"})
    top = float(max(data["hematoma_ml"].max(), data["abc2_ml"].max(), 1.0)) if len(data) else 1.0
    fig.add_trace(go.Scatter(x=[0, top], y=[0, top], mode="lines", line=dict(dash="dash", color="grey"),
                             name="identity"))
    fig.update_layout(height=420, margin=dict(l=10, r=10, t=10, b=10))
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
