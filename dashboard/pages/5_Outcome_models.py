"""Outcome models: fitted models with ROC, calibration and forest plots; clinical against clinical+imaging;
Kaplan-Meier survival by biomarker strata."""

from __future__ import annotations

import streamlit as st

from biomarkers.store import SOURCE_PREFERENCE
from dashboard import auth, biomarker_stats, models_view, queries
from prognosis import plots
from prognosis.kaplan_meier import kaplan_meier_by_strata, quantile_strata

ident = auth.require_identity()
home = queries.current_home()
scope = ident.center_scope

st.title("Outcome models")
fits = queries.model_fits(home.db_url)
if fits.empty:
    st.info("No outcome model has been fitted yet: `ctstudy prognosis fit` (after `ctstudy biomarkers extract`).")
else:
    st.caption("Models are fitted on the whole study; the tables below hold aggregate results only.")
    st.dataframe(models_view.fits_overview(fits).round(3), hide_index=True)

    labels = {fit.id: models_view.fit_label(fit) for fit in fits.itertuples()}
    fit_id = st.selectbox("Model", list(labels), format_func=labels.get, key="om_fit")
    fit = fits.set_index("id").loc[fit_id]
    fit["id"] = fit_id
    metrics = fit["metrics"] or {}
    shown = {k: v for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    cols = st.columns(4)
    for i, (key, label) in enumerate((k, lab) for k, lab in models_view.AUC_COLUMNS.items() if k in shown):
        cols[i % 4].metric(label, f"{shown[key]:.3f}")

    curves = models_view.fit_curves(fit)
    left, right = st.columns(2)
    if curves:
        roc, calibration = models_view.named_curves(curves, metrics)
        left.plotly_chart(plots.roc_figure(roc), key="om_roc")
        right.plotly_chart(plots.calibration_figure(calibration), key="om_calibration")
    else:
        st.caption("This fit stored no ROC or calibration curve data (ordinal and Cox fits report AUC / C only).")

    table = models_view.coefficient_table(fit)
    ratio = models_view.ratio_columns(table) if len(table) else None
    st.subheader("Effects")
    if ratio:
        st.plotly_chart(plots.forest_figure(table, title=f"{ratio[0].replace('_', ' ')}s (95% CI)"), key="om_forest")
    if len(table):
        st.dataframe(table.round(4), hide_index=True)
    else:
        st.caption("No coefficient table for this model kind.")
    with st.expander("All metrics and the fit's specification"):
        st.json({"metrics": metrics, "data_hash": fit["data_hash"], "cv": fit["cv"], "variables": fit["variables"]})

    st.subheader("Clinical only against clinical + imaging")
    outcomes = [o for o in ("mortality", "unfavourable") if (fits["outcome"] == o).any()]
    if outcomes:
        c1, c2 = st.columns(2)
        outcome = c1.radio("Outcome", outcomes, horizontal=True, key="om_cmp_outcome")
        kinds = sorted(fits.loc[fits["outcome"] == outcome, "model_kind"].unique())
        kind = c2.radio("Model", kinds, horizontal=True, key="om_cmp_kind")
        comparison = models_view.comparison_table(fits, outcome, kind)
        st.dataframe(comparison.round(3), hide_index=True)
        if set(comparison["features"]) >= {"clinical", "clinical+imaging"}:
            auc = comparison.set_index("features")["AUC"]
            st.metric("AUC gained by adding imaging", f"{auc['clinical+imaging'] - auc['clinical']:+.3f}")
    else:
        st.caption("No mortality or unfavourable-outcome fits to compare.")

st.subheader("Survival by biomarker strata")
features = queries.series_features(home.db_url, scope)
outcomes_table = queries.patient_outcomes(home.db_url, scope)
if features.empty or outcomes_table.empty:
    st.info("Kaplan-Meier curves need imaging biomarkers (`ctstudy biomarkers extract`) and outcomes "
            "(`ctstudy registry import-outcomes outcomes.csv`).")
else:
    # One mask source, in the order the biomarkers exports use (segmentation, manual, truth).
    source = next(src for src in (*SOURCE_PREFERENCE, features["source"].iloc[0]) if (features["source"] == src).any())
    admission = biomarker_stats.admission_rows(features[features["source"] == source])
    choices = [c for c in ("hematoma_ml", "edema_ml", "midline_shift_mm", "lesion_count") if c in admission]
    c1, c2 = st.columns(2)
    biomarker = c1.selectbox("Admission biomarker", choices, key="om_km_feature")
    n_groups = c2.radio("Groups", [2, 3, 4], index=1, horizontal=True, key="om_km_groups")
    data = admission[["pseudo_id", biomarker]].merge(outcomes_table, on="pseudo_id").dropna(
        subset=[biomarker, "days_to_death_or_censor", "died"])
    if data[biomarker].nunique() < 2:
        st.caption(f"Too few patients with {biomarker} and an outcome to form strata ({len(data)}).")
    else:
        data["died"] = data["died"].astype(float)
        strata = quantile_strata(data[biomarker].astype(float), n_groups, biomarker)
        km = kaplan_meier_by_strata(data.reset_index(drop=True), strata.reset_index(drop=True))
        st.plotly_chart(plots.km_figure(km), key="om_km")
        st.dataframe(km.counts, hide_index=True)
        st.caption(f"Log-rank test across strata: χ² = {km.logrank_statistic:.2f}, p = {km.logrank_p:.3g} "
                   f"({source} masks, admission scan)")
