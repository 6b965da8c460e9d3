"""One self-contained HTML report: latest fits (coefficients, metrics, ROC, calibration, forest plot),
the clinical vs clinical+imaging comparison, the IMPACT reference, Kaplan-Meier by hematoma
tertile and the missingness report. Plotly's JavaScript is inlined once, so the file opens offline.
"""

from __future__ import annotations

import datetime as dt
import html
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from prognosis.kaplan_meier import KaplanMeierByStrata
from prognosis.plots import calibration_figure, forest_figure, km_figure, roc_figure

_CSS = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
table{border-collapse:collapse;font-size:13px;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 6px;
text-align:right}th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}h2{margin-top:2em;
border-bottom:2px solid #ddd}.note{color:#555;font-size:13px}"""


class _Figures:
    """Embeds figures, the plotly library with the first one only."""

    def __init__(self) -> None:
        self.first = True

    def __call__(self, fig: go.Figure) -> str:
        out = fig.to_html(full_html=False, include_plotlyjs=self.first)
        self.first = False
        return out


def _table(df: pd.DataFrame, digits: int = 3) -> str:
    return df.to_html(index=False, float_format=lambda v: f"{v:.{digits}g}" if abs(v) < 1e-3 else f"{v:.{digits}f}",
                      na_rep="", border=0)


def _fit_section(fit: dict[str, Any], figure: _Figures) -> str:
    m = fit["metrics"]
    head = (f"<h3>{html.escape(fit['outcome'])} · {html.escape(fit['feature_set'])} · "
            f"{html.escape(fit['model_kind'])} (fit #{fit['id']})</h3><p class='note'>n = {fit['n_patients']}, "
            f"events = {fit['n_events']}, CV = {fit['cv']}, imputation = {fit['spec'].get('imputation')} "
            f"(m = {fit['spec'].get('m')}), data snapshot {fit['data_hash'][:12]}, {fit['created_at']:%Y-%m-%d %H:%M}"
            "</p>")
    scalars = {k: v for k, v in m.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    parts = [head, _table(pd.DataFrame([scalars]))]
    if fit["coefficients"]:
        coef = pd.DataFrame(fit["coefficients"])
        ratio = next((c for c in ("odds_ratio", "hazard_ratio") if c in coef), None)
        cols = ["term", "coef", "se"] + ([ratio, f"{ratio}_lower", f"{ratio}_upper"] if ratio else []) + ["p"]
        cols += [c for c in ("fmi",) if c in coef]
        parts.append(_table(coef[cols]))
        if ratio:
            kind = "Odds" if ratio == "odds_ratio" else "Hazard"
            parts.append(figure(forest_figure(coef, f"{kind} ratios (95% CI)")))
    curves = m.get("curves", {})
    if "roc" in curves:
        roc = {f"apparent (AUC {m['auc']:.3f})": pd.DataFrame(curves["roc"])}
        if "cv_roc" in curves:
            roc[f"cross-validated (AUC {m['cv_auc']:.3f})"] = pd.DataFrame(curves["cv_roc"])
        parts.append(figure(roc_figure(roc)))
        cal = {"apparent": pd.DataFrame(curves["calibration"])}
        if "cv_calibration" in curves:
            cal["cross-validated"] = pd.DataFrame(curves["cv_calibration"])
        parts.append(figure(calibration_figure(cal)))
    if "ph_test" in m:
        parts.append("<p class='note'>Proportional-hazards test (Schoenfeld residuals, rank time):</p>")
        parts.append(_table(pd.DataFrame(m["ph_test"])))
    return "\n".join(parts)


def report_html(fits: list[dict[str, Any]], comparison: pd.DataFrame | None, comparison_curves: dict[str, Any],
                impact: pd.DataFrame | None, km: KaplanMeierByStrata | None, missingness: pd.DataFrame | None,
                title: str = "ctstudy outcome models") -> str:
    """The whole report as one HTML string."""
    figure = _Figures()
    body = [f"<h1>{html.escape(title)}</h1><p class='note'>Generated {dt.datetime.now():%Y-%m-%d %H:%M}. "
            "AUC CIs: DeLong; ΔAUC and NRI CIs: bootstrap over patients (stratified by outcome) on "
            "out-of-fold risks averaged over CV repeats; NRI is the continuous (category-free) NRI.</p>"]
    if comparison is not None and len(comparison):
        body.append("<h2>Do CT biomarkers add to clinical predictors?</h2>")
        body.append(_table(comparison))
        for outcome, curves in comparison_curves.items():
            body.append(figure(roc_figure(curves, f"{outcome}: cross-validated ROC, clinical vs clinical+imaging")))
    if impact is not None and len(impact):
        body.append("<h2>IMPACT reference (published coefficients, Steyerberg et al. PLoS Med 2008)</h2>")
        body.append("<p class='note'>Intercepts, CT and lab coefficients unchecked against the paper; "
                    "complete cases for each model's predictors.</p>")
        body.append(_table(impact))
    if km is not None:
        body.append("<h2>Survival by admission hematoma volume</h2>")
        body.append(_table(km.counts))
        body.append(figure(km_figure(km)))
    if fits:
        body.append("<h2>Latest model fits</h2>")
        body.extend(_fit_section(f, figure) for f in fits)
    if missingness is not None:
        body.append("<h2>Missing data (% per variable and center)</h2>")
        body.append(_table(missingness.reset_index(), digits=1))
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{_CSS}</style></head><body>{''.join(body)}</body></html>")
