"""Risk calculator: a patient's predicted 6-month mortality and unfavourable outcome from a fitted model
(with its interval) and from the IMPACT reference models."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from biomarkers.store import SOURCE_PREFERENCE
from biomarkers.timecourse import admission_ct_classes, patient_level_features
from dashboard import auth, figures, models_view, queries
from prognosis.ct_inputs import impact_ct_inputs

ident = auth.require_identity()
home = queries.current_home()
scope = ident.center_scope

st.title("Risk calculator")
st.caption("Predicted risks support, never replace, clinical judgement; they are only as good as the data the "
           "models were fitted on.")

source = st.radio("Values from", ["entered", "patient"], horizontal=True, key="risk_source",
                  format_func={"entered": "values I enter", "patient": "a patient in the registry"}.get)
clinical = imaging = admission_ct = None
suffix = "manual"
if source == "patient":
    patients = queries.patients(home.db_url, scope)
    if patients.empty:
        st.info("No patients in the registry yet.")
        st.stop()
    pseudo_id = st.selectbox("Patient (pseudonymized)", patients["pseudo_id"], key="risk_patient")
    suffix = pseudo_id
    clinical = queries.patient_clinical(home.db_url, scope, pseudo_id)
    if clinical is None:
        st.warning("This patient has no clinical record: the values below are defaults, not theirs.")
    feats = queries.series_features(home.db_url, scope, pseudo_id)
    # One mask source per patient, in the order the biomarkers exports use (segmentation, manual, truth).
    available = [src for src in SOURCE_PREFERENCE if len(feats) and (feats["source"] == src).any()]
    feats = feats[feats["source"] == available[0]] if available else feats
    needed = {"days_from_injury", "hematoma_ml", "edema_ml", "lesion_count", "midline_shift_mm", "largest_lesion_left"}
    if len(feats) and needed <= set(feats.columns):
        named = feats.rename(columns={"pseudo_id": "patient_id"})
        imaging = patient_level_features(named).iloc[0].to_dict()
        admission_ct = admission_ct_classes(named).iloc[0].to_dict()
    else:
        st.caption("No imaging biomarkers for this patient: imaging values are defaults.")

values = models_view.prefill(clinical, imaging)
ct_sources = None
if source == "patient":
    # IMPACT's CT predictors from the computed CT classifications where known (prognosis.ct_inputs), with sources.
    ct_values, ct_sources = impact_ct_inputs(clinical, admission_ct)
    values.update({k: v for k, v in ct_values.items() if v is not None})
    st.caption("CT predictors of this patient: " + "; ".join(
        f"{name} {ct_values[key] if ct_values[key] is not None else 'not known (default shown)'} from "
        f"{ct_sources[key]}" for key, name in models_view.CT_INPUT_NAMES.items()))
prefilled = dict(values)
with st.form("risk_inputs"):
    st.markdown("**Admission (IMPACT predictors)**")
    c = st.columns(5)
    values["age"] = c[0].number_input("Age (years)", 0.0, 110.0, float(values["age"]), 1.0, key=f"r_age_{suffix}")
    values["gcs_motor"] = c[1].selectbox("GCS motor score", [1, 2, 3, 4, 5, 6], index=int(values["gcs_motor"]) - 1,
                                         key=f"r_motor_{suffix}")
    values["pupils_unreactive"] = c[2].selectbox("Unreactive pupils", [0, 1, 2],
                                                 index=int(values["pupils_unreactive"]), key=f"r_pupils_{suffix}")
    values["hypoxia"] = int(c[3].checkbox("Hypoxia", bool(values["hypoxia"]), key=f"r_hypoxia_{suffix}"))
    values["hypotension"] = int(c[4].checkbox("Hypotension", bool(values["hypotension"]), key=f"r_hypot_{suffix}"))
    c = st.columns(5)
    values["marshall_ct"] = c[0].selectbox("Marshall CT class", [1, 2, 3, 4, 5, 6],
                                           index=int(values["marshall_ct"]) - 1, key=f"r_marshall_{suffix}")
    values["tsah"] = int(c[1].checkbox("tSAH", bool(values["tsah"]), key=f"r_tsah_{suffix}"))
    values["edh"] = int(c[2].checkbox("Epidural hematoma", bool(values["edh"]), key=f"r_edh_{suffix}"))
    values["glucose_mmol_l"] = c[3].number_input("Glucose (mmol/L)", 1.0, 40.0, float(values["glucose_mmol_l"]),
                                                 0.1, key=f"r_glucose_{suffix}")
    values["hemoglobin_g_dl"] = c[4].number_input("Hemoglobin (g/dL)", 3.0, 22.0, float(values["hemoglobin_g_dl"]),
                                                  0.1, key=f"r_hb_{suffix}")
    st.markdown("**Imaging biomarkers**")
    c = st.columns(5)
    values["adm_hematoma_ml"] = c[0].number_input("Admission hematoma (mL)", 0.0, 500.0,
                                                  float(values["adm_hematoma_ml"]), 0.5, key=f"r_hem_{suffix}")
    values["peak_edema_ml"] = c[1].number_input("Peak edema (mL)", 0.0, 500.0, float(values["peak_edema_ml"]),
                                                0.5, key=f"r_edema_{suffix}")
    values["adm_midline_shift_mm"] = c[2].number_input("Midline shift (mm)", 0.0, 40.0,
                                                       float(values["adm_midline_shift_mm"]), 0.5,
                                                       key=f"r_shift_{suffix}")
    values["adm_lesion_count"] = c[3].number_input("Lesions on admission", 0, 50, int(values["adm_lesion_count"]),
                                                   key=f"r_count_{suffix}")
    values["adm_lesion_left"] = int(c[4].checkbox("Largest lesion left", bool(values["adm_lesion_left"]),
                                                  key=f"r_left_{suffix}"))
    st.form_submit_button("Calculate")

st.caption(models_view.ct_input_caption(values, models_view.ct_input_labels(values, prefilled, ct_sources)),
           help="Computed: from the admission scan's CT classification; clinical record: the center's record; "
                "typed: a value entered or changed here.")
rows = []
used: list[str] = []
fits = queries.model_fits(home.db_url)
logistic = models_view.logistic_fits(fits) if len(fits) else fits
if len(logistic):
    feature_sets = list(dict.fromkeys(logistic["feature_set"]))
    feature_set = st.radio("Fitted model features", feature_sets, horizontal=True, key="risk_feature_set")
    show_weak = st.checkbox(f"Also show models whose validated AUC is below {models_view.MIN_CALCULATOR_AUC}",
                            False, key="risk_show_weak")
    for outcome in models_view.BINARY_OUTCOMES:
        chosen = logistic[(logistic["feature_set"] == feature_set) & (logistic["outcome"] == outcome)]
        if chosen.empty:
            continue
        fit = chosen.iloc[0]  # the newest
        auc, what = models_view.validated_auc(fit["metrics"] or {})
        weak = auc is not None and auc < models_view.MIN_CALCULATOR_AUC
        for caution in models_view.cautions(fit):
            st.warning(f"Fit #{fit['id']} ({outcome}): {caution}")
        unusable = models_view.not_usable(fit)
        if unusable:
            st.error(f"Fit #{fit['id']} ({outcome}) is refused by the calculator: {unusable}.")
            continue
        if weak and not show_weak:
            st.error(f"Fit #{fit['id']} ({outcome}) is not offered as a calculator: its {what} is {auc:.3f}, below "
                     f"{models_view.MIN_CALCULATOR_AUC}. Tick the box above to see its risks anyway.")
            continue
        spec, shrunk = models_view.calculator_spec(fit)
        try:
            r = models_view.fitted_risk(spec, values)
        except ValueError as exc:
            st.warning(f"Fit #{fit['id']} ({outcome}) cannot predict: {exc}.")
            continue
        # One row label per feature set (not per fit id), so both outcomes share a row.
        label = f"fitted {feature_set}" + (" (shrunken)" if shrunk else "") + (" ⚠ weak" if weak else "")
        rows.append({"source": label, "outcome": outcome, **r})
        used.append(f"#{fit['id']} {outcome}" + (f", {what} {auc:.3f}" if auc is not None else "")
                    + (f", shrinkage {spec.get('shrinkage'):.2f}" if shrunk and spec.get("shrinkage") else ""))
else:
    st.info("No fitted logistic model yet (`ctstudy prognosis fit`): only the IMPACT reference is shown.")

impact = models_view.impact_risks(values)
for r in impact.itertuples():
    for outcome in models_view.BINARY_OUTCOMES:
        rows.append({"source": r.model, "outcome": outcome, "risk": getattr(r, outcome), "lower": None, "upper": None})
risks = pd.DataFrame(rows)
st.subheader("Predicted 6-month risk")
st.plotly_chart(figures.risk_figure(risks), key="risk_chart")
st.dataframe(models_view.risk_table(risks), hide_index=True)
if used:
    st.caption("Fitted models used: " + "; ".join(used) + ". Shrunken: coefficients multiplied by the bootstrap-"
               "corrected calibration slope (Harrell), a factor between 0 and 1, so risks lie closer to the average "
               "risk than the raw fit's. A model whose factor is at or below 0 is refused.")
st.caption("Fitted models: 95% interval from the coefficient covariance (logit scale). IMPACT (Steyerberg et al., "
           "PLoS Med 2008; the calculator's coefficient document): published coefficients without covariance, "
           "hence no interval; developed on patients with GCS 12 or less.")
