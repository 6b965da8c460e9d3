"""Plotly figures of outcome models: ROC, calibration, forest plot of ratios, Kaplan-Meier.

Functions of plain data (DataFrames as stored in ModelFit.metrics / coefficients), so the report
and the dashboard's Outcome-models page draw the same pictures from a stored fit.
"""

from __future__ import annotations

import numpy as np
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


def _steps(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Points of the right-continuous step function through (x, y): each value held until the next x."""
    if len(x) < 2:
        return x, y
    return np.r_[np.repeat(x, 2)[1:], x[-1]][: 2 * len(x) - 1], np.repeat(y, 2)[: 2 * len(x) - 1]


def km_figure(km: KaplanMeierByStrata, title: str | None = None) -> go.Figure:
    """Kaplan-Meier curves per stratum with their 95% bands, and the log-rank p in the title."""
    fig = go.Figure()
    for name, c in km.curves.groupby("stratum", sort=True):
        fig.add_trace(go.Scatter(x=c["time"], y=c["survival"], mode="lines", line_shape="hv", name=str(name)))
        # The band is a step function too: expand both edges into explicit steps, then close the
        # polygon (upper forward, lower backward). Reversing a "hv" trace instead draws blocks.
        tx, up = _steps(c["time"].to_numpy(), c["upper"].to_numpy())
        _, lo = _steps(c["time"].to_numpy(), c["lower"].to_numpy())
        fig.add_trace(go.Scatter(x=np.r_[tx, tx[::-1]], y=np.r_[up, lo[::-1]], fill="toself", opacity=0.15,
                                 line={"width": 0}, showlegend=False, hoverinfo="skip"))
    fig.update_layout(title=title or f"Survival by {km.variable} (log-rank p = {km.logrank_p:.2g})",
                      xaxis_title="days from injury", yaxis_title="survival", **_LAYOUT)
    fig.update_yaxes(range=[0, 1.02])
    return fig


def smooth_calibration_figure(curve: pd.DataFrame, deciles: pd.DataFrame | None = None,
                              title: str = "Calibration (cross-validated risks)") -> go.Figure:
    """Loess calibration curve with its 95% bootstrap band (predicted, observed, lower, upper), the
    decile groups as points behind it, and the ideal line."""
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=pd.concat([curve["predicted"], curve["predicted"][::-1]]),
                             y=pd.concat([curve["upper"], curve["lower"][::-1]]), fill="toself", opacity=0.2,
                             line={"width": 0}, name="95% band", hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=curve["predicted"], y=curve["observed"], mode="lines", name="loess"))
    if deciles is not None and len(deciles):
        fig.add_trace(go.Scatter(x=deciles["predicted"], y=deciles["observed"], mode="markers", name="risk groups",
                                 marker={"size": 6, "color": "grey"}))
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dot", "color": "grey"},
                             name="ideal", showlegend=False))
    fig.update_layout(title=title, xaxis_title="predicted risk", yaxis_title="observed proportion", **_LAYOUT)
    fig.update_xaxes(range=[0, 1])
    fig.update_yaxes(range=[0, 1])
    return fig


def decision_curve_figure(curve: pd.DataFrame, title: str = "Decision curve") -> go.Figure:
    """Net benefit against the threshold probability for each model, treat all and treat none."""
    fig = go.Figure()
    for name in curve.columns.drop("threshold"):
        dash = "dot" if name in ("treat all", "treat none") else None
        fig.add_trace(go.Scatter(x=curve["threshold"], y=curve[name], mode="lines", name=name,
                                 line={"dash": dash} if dash else None))
    top = float(curve.drop(columns="threshold").max().max())
    fig.update_layout(title=title, xaxis_title="threshold probability", yaxis_title="net benefit", **_LAYOUT)
    fig.update_yaxes(range=[-0.05, max(0.05, top * 1.1)])
    return fig


def missing_pattern_figure(table: pd.DataFrame, columns: list[str], labels: dict[str, str] | None = None,
                           max_patterns: int = 15) -> go.Figure:
    """Missing-data patterns (as mice's md.pattern): one row per pattern of missing variables, its
    number of patients, and the variables missing in it; most frequent patterns first."""
    cols = [c for c in columns if c in table.columns]
    miss = table[cols].isna()
    patterns = miss.value_counts().reset_index(name="patients").head(max_patterns)
    z = patterns[cols].astype(int).to_numpy()
    y = [f"{n} patients ({k} missing)" for n, k in zip(patterns["patients"], z.sum(axis=1), strict=True)]
    names = [(labels or {}).get(c, c) for c in cols]
    fig = go.Figure(go.Heatmap(z=z, x=names, y=y, colorscale=[[0, "#4c78a8"], [1, "#f58518"]], showscale=False,
                               xgap=1, ygap=1, hovertemplate="%{x}: %{z}<extra>%{y}</extra>"))
    fig.update_layout(title="Missing-data patterns (orange = missing)",
                      **{**_LAYOUT, "height": max(300, 26 * len(y) + 160)})
    fig.update_yaxes(autorange="reversed")
    return fig


def calibrate_figure(table: pd.DataFrame, title: str = "Calibration, optimism-corrected") -> go.Figure:
    """rms `calibrate`'s plot: apparent and bias-corrected observed risk against predicted risk
    (`prognosis.calibrate.corrected_calibration_curve`), with the ideal line."""
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=table["predicted"], y=table["apparent"], mode="lines", name="apparent",
                             line={"dash": "dash"}))
    fig.add_trace(go.Scatter(x=table["predicted"], y=table["corrected"], mode="lines", name="bias-corrected"))
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dot", "color": "grey"},
                             name="ideal", showlegend=False))
    fig.update_layout(title=title, xaxis_title="predicted risk", yaxis_title="observed risk", **_LAYOUT)
    fig.update_xaxes(range=[0, 1])
    fig.update_yaxes(range=[0, 1])
    return fig


def _panels(variables: list[str], labels: dict[str, str] | None, columns: int = 3) -> tuple[go.Figure, int]:
    from plotly.subplots import make_subplots

    rows = max(1, -(-len(variables) // columns))
    titles = [(labels or {}).get(v, v) for v in variables]
    fig = make_subplots(rows=rows, cols=columns, subplot_titles=titles, horizontal_spacing=0.08,
                        vertical_spacing=0.5 / rows if rows > 1 else 0.1)
    return fig, rows


def imputation_trace_figure(trace: pd.DataFrame, labels: dict[str, str] | None = None,
                            title: str = "Imputation trace: mean of the imputed values") -> go.Figure:
    """mice's `plot(imp)`: per imputed variable, the mean of its imputed values after each iteration,
    one line per chain (`prognosis.imputation_diagnostics`); chains that intermingle without a trend
    have converged. `labels` maps variable names to their dictionary labels."""
    variables = list(dict.fromkeys(trace["variable"]))
    fig, rows = _panels(variables, labels)
    for k, variable in enumerate(variables):
        part = trace[trace["variable"] == variable]
        for chain, line in part.groupby("chain"):
            fig.add_trace(go.Scatter(x=line["iteration"], y=line["mean"], mode="lines+markers",
                                     name=f"chain {chain}", legendgroup=f"chain {chain}", showlegend=k == 0),
                          row=k // 3 + 1, col=k % 3 + 1)
    fig.update_layout(title=title, **{**_LAYOUT, "height": 260 * rows + 80})
    fig.update_xaxes(title_text="iteration", dtick=1)
    return fig


def observed_imputed_figure(distribution: pd.DataFrame, labels: dict[str, str] | None = None,
                            title: str = "Observed and imputed values") -> go.Figure:
    """mice's `densityplot`/`stripplot`: per imputed variable, the share of values in each bin (each value,
    for codes and flags) among the observed values (blue) and among each imputation's imputed values
    (red, one line per imputation); imputed values far from the observed ones deserve a look."""
    variables = list(dict.fromkeys(distribution["variable"]))
    fig, rows = _panels(variables, labels)
    for k, variable in enumerate(variables):
        part = distribution[distribution["variable"] == variable]
        for group, bins in part.groupby("group", sort=False):
            observed = group == "observed"
            fig.add_trace(go.Scatter(
                x=(bins["lower"] + bins["upper"]) / 2, y=bins["share"], mode="lines+markers",
                name="observed" if observed else "imputed", legendgroup=group if observed else "imputed",
                showlegend=k == 0 and group in ("observed", "imputation 1"),
                line={"color": "#1f4e9c" if observed else "#c0392b", "width": 3 if observed else 1},
                marker={"size": 5 if observed else 3}, hovertext=group),
                row=k // 3 + 1, col=k % 3 + 1)
    fig.update_layout(title=title, **{**_LAYOUT, "height": 260 * rows + 80})
    fig.update_yaxes(title_text="share")
    return fig
