"""Plotly figures for the dashboard pages: DataFrames in, figures out (no database, no Streamlit)."""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go


def cumulative_arrivals_figure(cumulative: pd.DataFrame) -> go.Figure:
    """Cumulative patients and series per center over time (one panel per kind)."""
    fig = px.line(cumulative, x="date", y="cumulative", color="center", facet_col="kind", line_shape="hv",
                  labels={"cumulative": "cumulative count", "date": "arrival date"})
    fig.update_yaxes(matches=None, showticklabels=True)
    fig.for_each_annotation(lambda a: a.update(text=a.text.split("=")[-1]))
    fig.update_layout(height=340, margin=dict(l=10, r=10, t=30, b=10), legend_title_text="center")
    return fig
