"""The ctstudy dashboard: `streamlit run dashboard/app.py` (or `ctstudy dashboard`).

The entry script only logs the user in and lists the pages their role may open; each page in
`pages/` lays out what `dashboard.queries` returns for that user's scope.
"""

from __future__ import annotations

import streamlit as st

from dashboard import auth

st.set_page_config(page_title="ctstudy", page_icon=":material/neurology:", layout="wide")

ident = auth.identity()
if ident is None:
    navigation = st.navigation([st.Page(auth.login_form, title="Log in", icon=":material/login:")])
else:
    pages = [
        st.Page("pages/1_Collection.py", title="Collection", icon=":material/inventory_2:", default=True),
        st.Page("pages/2_Quality_control.py", title="Quality control", icon=":material/fact_check:"),
        st.Page("pages/3_Case_viewer.py", title="Case viewer", icon=":material/radiology:"),
        st.Page("pages/4_Biomarkers.py", title="Biomarkers", icon=":material/scatter_plot:"),
        st.Page("pages/9_Model_quality.py", title="Model quality", icon=":material/rule:"),
        st.Page("pages/5_Outcome_models.py", title="Outcome models", icon=":material/monitoring:"),
        st.Page("pages/6_Risk_calculator.py", title="Risk calculator", icon=":material/calculate:"),
    ]
    if ident.role in ("coordinator", "admin"):
        pages.append(st.Page("pages/8_Upload.py", title="Upload", icon=":material/upload:"))
    if ident.role == "admin":
        pages.append(st.Page("pages/7_Users.py", title="Users", icon=":material/group:"))
    auth.sidebar(ident)
    navigation = st.navigation(pages)
navigation.run()
