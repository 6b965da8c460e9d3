"""Users (administrators only): who may log in, with which role and center; add and deactivate accounts."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import auth, queries
from registry.models import ROLES
from registry.users import UserError
from vocabulary.dictionary import display_columns

ident = auth.require_identity()
home = queries.current_home()

st.title("Users")
if ident.role != "admin":
    st.error("Only administrators manage users.")
    st.stop()

flash = st.session_state.pop("users_flash", None)
if flash:
    st.success(flash)
table = queries.users(home.db_url)
shown = table.assign(center=table["center"].fillna("all centers"),
                     active=table["active"].map({True: "yes", False: "no"}),
                     locked_until=table["locked_until"].map(lambda t: "" if pd.isna(t) else f"{t:%Y-%m-%d %H:%M}"))
st.dataframe(display_columns(shown, "user"), hide_index=True)

left, right = st.columns(2)
with left, st.form("add_user", clear_on_submit=True):
    st.markdown("**Add a user**")
    username = st.text_input("User name", key="u_name")
    role = st.selectbox("Role", ROLES, key="u_role")
    center = st.selectbox("Center (coordinators)", ["", *queries.center_codes(home.db_url)], key="u_center")
    password = st.text_input("Initial password (at least 8 characters)", type="password", key="u_password")
    if st.form_submit_button("Add user"):
        try:
            queries.add_dashboard_user(home.db_url, username, role, password, center, ident.username)
        except UserError as exc:
            st.error(str(exc))
        else:
            st.session_state["users_flash"] = f"User {username} added as {role}."
            st.rerun()
with right, st.form("deactivate_user"):
    st.markdown("**Deactivate a user**")
    active = [u for u in table.loc[table["active"], "username"] if u != ident.username]
    who = st.selectbox("User", active, key="u_deactivate")
    if st.form_submit_button("Deactivate", disabled=not active) and who:
        queries.deactivate_dashboard_user(home.db_url, who, ident.username)
        st.session_state["users_flash"] = f"User {who} deactivated: they can no longer log in."
        st.rerun()
