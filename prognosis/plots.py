"""Plotly figures of outcome models: ROC, calibration, forest plot of ratios, Kaplan-Meier.

Functions of plain data (DataFrames as stored in ModelFit.metrics / coefficients), so the report
and the dashboard's Outcome-models page draw the same pictures from a stored fit.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from prognosis.kaplan_meier import KaplanMeierByStrata

_LAYOUT = {"template": "plotly_white", "height": 420, "margin": {"l": 60, "r": 20, "t": 50, "b": 50}}


def roc_figure(curves: dict[str, pd.DataFrame], title: str = "ROC") -> go.Figure:
    """ROC curves by name (DataFrames with fpr, tpr); put the AUC in the name."""
    fig = go.Figure()
    for name, curve in curves.items():
        fig.add_trace(go.Scatter(x=curve["fpr"], y=curve["tpr"], mode="lines", name=name))
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dot", "color": "grey"},
                             name="chance", showlegend=False))
    fig.update_layout(title=title, xaxis_title="1 - specificity", yaxis_title="sensitivity", **_LAYOUT)
    # A square plot: the x axis gives up width (constrain="domain") rather than stretch its range past [0, 1].
    fig.update_xaxes(range=[0, 1], constrain="domain")
    fig.update_yaxes(range=[0, 1], scaleanchor="x", constrain="domain")
    return fig


def calibration_figure(curves: dict[str, pd.DataFrame], title: str = "Calibration") -> go.Figure:
    """Observed vs predicted risk by groups (DataFrames with predicted, observed, lower, upper), with the ideal line."""
    fig = go.Figure()
    for name, c in curves.items():
        fig.add_trace(go.Scatter(
            x=c["predicted"], y=c["observed"], mode="lines+markers", name=name,
            error_y={"type": "data", "symmetric": False, "array": c["upper"] - c["observed"],
                     "arrayminus": c["observed"] - c["lower"]},
        ))
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dot", "color": "grey"},
                             name="ideal", showlegend=False))
    fig.update_layout(title=title, xaxis_title="predicted risk", yaxis_title="observed proportion (95% CI)", **_LAYOUT)
    fig.update_xaxes(range=[0, 1])
    fig.update_yaxes(range=[0, 1])
    return fig


def forest_figure(summary: pd.DataFrame, title: str = "Odds ratios (95% CI)") -> go.Figure:
    """Forest plot of a coefficient table (rows `term`, columns `<ratio>`, `<ratio>_lower`, `<ratio>_upper`)."""
    table = summary.reset_index() if "term" not in summary.columns else summary
    table = table[table["term"] != "const"]
    ratio = next(c for c in ("odds_ratio", "hazard_ratio", "ratio") if c in table.columns)
    fig = go.Figure(go.Scatter(
        x=table[ratio], y=table["term"], mode="markers", marker={"size": 8},
        error_x={"type": "data", "symmetric": False, "array": table[f"{ratio}_upper"] - table[ratio],
                 "arrayminus": table[ratio] - table[f"{ratio}_lower"]},
        customdata=table[["p"]].to_numpy() if "p" in table else None,
        hovertemplate="%{y}: %{x:.2f}<br>p = %{customdata[0]:.3g}<extra></extra>" if "p" in table else None,
    ))
    fig.add_vline(x=1, line_dash="dot", line_color="grey")
    fig.update_layout(title=title, xaxis_title=ratio.replace("_", " ") + " (log scale)", xaxis_type="log",
                      **{**_LAYOUT, "height": max(300, 28 * len(table) + 100)})
    fig.update_yaxes(autorange="reversed")
    return fig


def km_figure(km: KaplanMeierByStrata, title: str | None = None) -> go.Figure:
    """Kaplan-Meier curves per stratum with their 95% bands, and the log-rank p in the title."""
    fig = go.Figure()
    for name, c in km.curves.groupby("stratum", sort=True):
        fig.add_trace(go.Scatter(x=c["time"], y=c["survival"], mode="lines", line_shape="hv", name=str(name)))
        fig.add_trace(go.Scatter(x=pd.concat([c["time"], c["time"][::-1]]), y=pd.concat([c["upper"], c["lower"][::-1]]),
                                 fill="toself", opacity=0.15, line={"width": 0}, line_shape="hv", showlegend=False,
                                 hoverinfo="skip"))
    fig.update_layout(title=title or f"Survival by {km.variable} (log-rank p = {km.logrank_p:.2g})",
                      xaxis_title="days from injury", yaxis_title="survival", **_LAYOUT)
    fig.update_yaxes(range=[0, 1.02])
    return fig
