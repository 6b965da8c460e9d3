"""Outcome models: fitted models with ROC, calibration and forest plots; clinical against clinical+imaging;
Kaplan-Meier survival by biomarker strata."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from biomarkers.store import SOURCE_PREFERENCE
from dashboard import auth, biomarker_stats, models_view, provenance, provenance_panel, queries, words
from dashboard.text import day_text
from prognosis import plots, staleness
from prognosis.ct_inputs import ct_source_counts
from prognosis.kaplan_meier import kaplan_meier_by_strata
from vocabulary.dictionary import heading, label, unit

COMPARISON_HEADINGS = {"features": "Predictors", "fit": "Fit", "patients": "Patients"}
KM_COUNT_HEADINGS = {"stratum": "Group", "n": "Patients", "deaths": "Deaths"}


@st.cache_data(ttl=queries.CACHE_TTL_S, show_spinner=False)
def analysis_table(db_url: str, center: str | None) -> pd.DataFrame:
    """The analysis table the models are fitted on (one row per patient, pseudonymous ids), of the viewer's scope."""
    from sqlalchemy.orm import Session

    from prognosis.store import analysis_table_from_registry

    try:
        with Session(queries.engine_for(db_url)) as session, session.begin():  # commits the summaries the read updates
            table = analysis_table_from_registry(session)
    except ValueError:  # no patients yet
        return pd.DataFrame()
    return table if center is None else table[table["center"] == center].reset_index(drop=True)


@st.cache_data(ttl=queries.CACHE_TTL_S, show_spinner=False)
def current_data_hash(db_url: str) -> str | None:
    """The data snapshot of the whole study's analysis table now (what `prognosis fit` would record); None without
    patients."""
    from sqlalchemy.orm import Session

    from prognosis.analysis_table import analysis_table_hash
    from prognosis.store import analysis_table_from_registry

    try:
        with Session(queries.engine_for(db_url)) as session, session.begin():  # commits the summaries the read updates
            return analysis_table_hash(analysis_table_from_registry(session))
    except ValueError:  # no patients yet
        return None


# What `ctstudy prognosis report --out <home>/reports` writes (the demo does).
REPORT_NAME = "prognosis_report.html"

ident = auth.require_identity()
home = queries.current_home()
scope = ident.center_scope

st.title("Outcome models")
fits = queries.model_fits(home.db_url)
if fits.empty:
    st.info("No outcome model has been fitted yet: `ctstudy prognosis fit` (after `ctstudy biomarkers extract`).")
else:
    st.caption("Validated performance first: cross-validated (imputation inside each fold) or bootstrap-corrected; "
               "apparent figures are optimistic by construction. Models are fitted on the whole study.")
    current = current_data_hash(home.db_url)
    latest = fits.drop_duplicates(["outcome", "feature_set", "model_kind", "cv"])  # newest first
    stale = [] if current is None else staleness.stale_fits(latest.to_dict("records"), current)
    if stale:
        st.warning(staleness.stale_notice(stale, current), icon="⚠️")
        st.code("\n".join(staleness.refit_command(f) for f in stale), language="bash")
    overview = models_view.overview_table(fits)
    st.dataframe(overview, hide_index=True, width="stretch", key="om_overview")

    labels = {fit.id: models_view.fit_label(fit) for fit in fits.itertuples()}
    ids = list(labels)
    fit_id = st.selectbox("Model", ids, index=ids.index(models_view.default_fit_id(fits)), format_func=labels.get,
                          key="om_fit")
    fit = fits.set_index("id").loc[fit_id]
    fit["id"] = fit_id
    metrics = fit["metrics"] or {}
    if current is not None and staleness.is_stale(fit, current):
        st.warning(f"This fit is out of date: it was fitted on data snapshot {fit['data_hash'][:12]}, and the data "
                   f"have changed since (now {current[:12]}). Refit it with `{staleness.refit_command(fit)}`.")
    for caution in models_view.cautions(fit):
        st.warning(caution)
    auc, what = models_view.validated_auc(metrics)
    cols = st.columns(4)
    if auc is not None:
        cols[0].metric(what[:1].upper() + what[1:], f"{auc:.3f}")
    if isinstance(metrics.get("shrinkage"), int | float):
        cols[1].metric("Shrinkage factor", f"{metrics['shrinkage']:.2f}")
    if isinstance(metrics.get("auc"), int | float):
        cols[2].metric("AUC (apparent)", f"{metrics['auc']:.3f}")
    if isinstance(metrics.get("events_per_variable"), int | float):
        cols[3].metric("Events per model parameter", f"{metrics['events_per_variable']:.1f}")

    validate = models_view.validate_table(metrics)
    if len(validate):
        st.dataframe(validate, hide_index=True, key="om_validate")
        st.caption("Harrell's bootstrap validation with rms's definitions: intercept, slope and R² are scored after "
                   "recalibrating each refit on the original data. The corrected slope, capped at 1, is the shrinkage "
                   "factor applied to the risk calculator's model; at or below 0 the model is not usable for "
                   "individual risks."
                   + (f" {validate.attrs['separated']}." if validate.attrs.get("separated") else ""))

    curves = models_view.fit_curves(fit)
    left, right = st.columns(2)
    if "roc" in curves or "cv_roc" in curves:
        roc, calibration = models_view.named_curves(curves, metrics)
        left.plotly_chart(plots.roc_figure(roc), key="om_roc")
        if "cv_calibration_smooth" in curves:
            right.plotly_chart(plots.smooth_calibration_figure(curves["cv_calibration_smooth"],
                                                               curves.get("cv_calibration")), key="om_calibration")
        else:
            right.plotly_chart(plots.calibration_figure(calibration), key="om_calibration")
        if "calibrate" in curves:
            left.plotly_chart(plots.calibrate_figure(curves["calibrate"]), key="om_calibrate")
            left.caption(f"Optimism-corrected calibration (as rms calibrate) from the {metrics.get('n_boot')} "
                         "bootstrap refits of the validate table.")
    else:
        st.caption("Ordinal and Cox models are judged by the AUCs of death / unfavourable outcome or Harrell's C "
                   "above; ROC and calibration curves are drawn for the binary models.")

    table = models_view.coefficient_table(fit)
    ratio = models_view.ratio_columns(table) if len(table) else None
    st.subheader("Effects")
    if ratio:
        from prognosis.labels import term_label

        labelled = table.assign(term=table["term"].map(term_label))
        st.plotly_chart(plots.forest_figure(labelled, title=f"{ratio[0].replace('_', ' ')}s (95% CI)"),
                        key="om_forest")
        st.dataframe(models_view.coefficient_display(fit), hide_index=True, width="stretch", key="om_coef")
    else:
        st.caption("No coefficient table for this model kind.")

    variables = provenance.imaging_variables(list(fit["variables"] or []))
    if variables:
        st.subheader("Where this fit's imaging values come from")
        features = queries.series_features(home.db_url, scope)
        source = next((src for src in SOURCE_PREFERENCE if len(features) and (features["source"] == src).any()),
                      None)
        p1, p2 = st.columns([2, 3])
        variable = p1.selectbox("Imaging predictor", variables, format_func=heading, key=f"om_trace_var_{fit_id}")
        traced = (provenance.patient_values(features[features["source"] == source], variable) if source
                  else pd.DataFrame())
        if traced.empty:
            p2.caption("No stored imaging biomarkers of these patients in your scope.")
        else:
            trace_label = {i: f"{r.value:.2f} · {r.pseudo_id} · {r.center} · {day_text(r.days_from_injury)}"
                           for i, r in traced.iterrows()}
            picked = p2.selectbox("Patient: pick a value (largest first) to see its series, mask, model and slices",
                                  list(trace_label), format_func=trace_label.get, index=None,
                                  key=f"om_trace_{fit_id}_{variable}", placeholder="a patient of the study")
            if picked is not None:
                chosen = traced.loc[picked]
                provenance_panel.show(home.db_url, str(home.root), scope, chosen["series_uid"], chosen["source"],
                                      variable, float(chosen["value"]))
            st.caption(f"Fit #{fit_id} was fitted on data snapshot {str(fit['data_hash'])[:12]}: each patient's "
                       f"value is read from the {label(source, 'mask_source').lower()} of one scan (the first for "
                       "admission values, the largest for peak values).")

    d1, d2, d3 = st.columns(3)
    if len(table):
        d1.download_button("Coefficients (CSV)", table.to_csv(index=False), f"fit{fit_id}_coefficients.csv",
                           "text/csv", key="om_dl_coef")
    predictions = models_view.predictions_csv(fit)
    if predictions is not None:
        risks = curves["cv_risk"]
        if scope is not None:  # a coordinator sees their own center's patients only
            risks = risks[risks["center"] == scope]
        d2.download_button("Cross-validated risks (CSV)", risks.to_csv(index=False), f"fit{fit_id}_predictions.csv",
                           "text/csv", key="om_dl_pred")
    analysis = analysis_table(home.db_url, scope)
    if len(analysis):
        d3.download_button("Analysis table (CSV)", analysis.to_csv(index=False), "analysis_table.csv", "text/csv",
                           key="om_dl_table")
        sources = ct_source_counts(analysis)
        if len(sources):
            st.dataframe(sources.rename(columns={"predictor": "CT predictor", "computed": "Computed from the "
                                                 "admission scan", "clinical record": "Clinical record",
                                                 "unknown": "Unknown"}), hide_index=True)
            st.caption("Where the models' CT predictors came from, in patients: the admission scan's computed CT "
                       "classification where it is known, else the clinical record's. The analysis table says "
                       "which for each patient.")
    if "imputation_trace" in curves:
        with st.expander("Imputation diagnostics"):
            labels = models_view.imputation_labels(curves)
            st.plotly_chart(plots.imputation_trace_figure(curves["imputation_trace"], labels), key="om_imp_trace")
            st.caption("Mean of each variable's imputed values after each iteration, one line per imputation "
                       "(chain): chains that intermingle without a trend have converged.")
            if "imputation_distribution" in curves:
                st.plotly_chart(plots.observed_imputed_figure(curves["imputation_distribution"], labels),
                                key="om_imp_dist")
                st.caption("Observed values (blue) against each imputation's imputed values (red): imputed values "
                           "unlike any observed ones would question the imputation model.")
    with st.expander("All metrics of this fit"):
        st.dataframe(models_view.metrics_display(metrics), hide_index=True, key="om_metrics")
        st.caption(f"Data snapshot {fit['data_hash'][:12]}, validation {fit['cv']}, "
                   f"{len(fit['variables'] or [])} terms.")

    st.subheader("The report")
    report_html = home.reports_dir / REPORT_NAME
    if report_html.is_file():
        written = pd.Timestamp(report_html.stat().st_mtime, unit="s").strftime("%Y-%m-%d %H:%M")
        r1, r2 = st.columns(2)
        r1.download_button("Outcome-model report (HTML)", report_html.read_bytes(), REPORT_NAME, "text/html",
                           key="om_dl_report", help="One self-contained file: opens offline in any browser.")
        report_pdf = report_html.with_suffix(".pdf")
        if report_pdf.is_file():
            r2.download_button("Outcome-model report (PDF)", report_pdf.read_bytes(), report_pdf.name,
                               "application/pdf", key="om_dl_report_pdf")
        else:
            r2.caption("No PDF yet: `ctstudy prognosis report --out DIR --pdf` prints one (needs Chromium).")
        st.caption(f"Written {written} (UTC); `ctstudy prognosis report --out {home.reports_dir}` writes it again "
                   "from the latest fits.")
    else:
        st.caption(f"No report written yet: `ctstudy prognosis report --out {home.reports_dir} --pdf`.")

    st.subheader("Clinical only against clinical + imaging")
    outcomes = [o for o in ("mortality", "unfavourable") if (fits["outcome"] == o).any()]
    if outcomes:
        c1, c2 = st.columns(2)
        outcome = c1.radio("Outcome", outcomes, horizontal=True, key="om_cmp_outcome", format_func=label)
        kinds = sorted(fits.loc[fits["outcome"] == outcome, "model_kind"].unique())
        kind = c2.radio("Model", kinds, horizontal=True, key="om_cmp_kind")
        comparison = models_view.comparison_table(fits, outcome, kind)
        st.dataframe(words.blank_missing(comparison.round(3)).rename(columns=COMPARISON_HEADINGS), hide_index=True,
                     key="om_comparison")
        gain = models_view.imaging_gain(comparison)
        if gain is not None:
            st.metric(f"Change in {gain[1]} from adding imaging", f"{gain[0]:+.3f}")
            st.caption("From validated AUCs; the apparent AUCs in the table are optimistic and not compared.")
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
    biomarker = c1.selectbox("Admission biomarker", choices, key="om_km_feature", format_func=heading)
    n_groups = c2.radio("Groups", [2, 3, 4], index=1, horizontal=True, key="om_km_groups")
    data = admission[["pseudo_id", biomarker]].merge(outcomes_table, on="pseudo_id").dropna(
        subset=[biomarker, "days_to_death_or_censor", "died"])
    if data[biomarker].nunique() < 2:
        st.caption(f"Too few patients with {label(biomarker).lower()} and an outcome to form strata ({len(data)}).")
    else:
        data["died"] = data["died"].astype(float)
        strata = biomarker_stats.quantile_groups(data[biomarker].astype(float), n_groups, unit(biomarker))
        km = kaplan_meier_by_strata(data.reset_index(drop=True), strata.reset_index(drop=True))
        st.plotly_chart(plots.km_figure(km, title=f"Survival by {heading(biomarker)} (log-rank p = "
                                                  f"{km.logrank_p:.2g})"), key="om_km")
        st.dataframe(km.counts.rename(columns=KM_COUNT_HEADINGS), hide_index=True, key="om_km_counts")
        st.caption(f"Log-rank test across strata: χ² = {km.logrank_statistic:.2f}, p = {km.logrank_p:.3g} "
                   f"({source} masks, admission scan)")
