"""Upload (coordinators for their own center, administrators for any): DICOM files or zips, clinical and
outcome tables. Every file goes through the registry's one ingest or table import, and the page shows
each file's verdict."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import auth, queries
from registry.intake.dicom_upload import UploadTooLarge, ingest_upload, spool_upload
from registry.intake.limits import upload_limit_mb
from registry.intake.table_upload import OutsideCenter, import_uploaded_table

ident = auth.require_identity()
home = queries.current_home()

st.title("Upload")
if ident.role not in ("coordinator", "admin"):
    st.error("Only coordinators (for their center) and administrators upload data.")
    st.stop()

if ident.role == "admin":
    codes = queries.center_codes(home.db_url)
    chosen = st.selectbox("Center", [*codes, "another center..."], key="upload_center")
    center = st.text_input("New center code", key="upload_new_center") if chosen == "another center..." else chosen
else:
    center = ident.center_code
    st.caption(f"Uploads are stored for center {center}.")
limit_mb = upload_limit_mb()
engine = queries.engine_for(home.db_url)
actor = f"dashboard:{ident.username}"

dicom_tab, table_tab = st.tabs(["DICOM", "Clinical or outcome table"])
with dicom_tab:
    st.caption(f"DICOM files, or zips of a CD export (at most {limit_mb} MB unpacked per upload). Each file is "
               "checked, de-identified and grouped into series with automatic QC, as `registry ingest` does.")
    with st.form("dicom_upload", clear_on_submit=True):
        files = st.file_uploader("DICOM files or zip", accept_multiple_files=True, key="dicom_files")
        send = st.form_submit_button("Upload and ingest")
    if send and files and center:
        bar = st.progress(0.0, text="Writing the files to the spool...")
        try:
            batch, names = spool_upload(home, center, ((f.name, f.getvalue()) for f in files),
                                        limit_bytes=limit_mb << 20)
        except (UploadTooLarge, ValueError) as exc:
            bar.empty()
            st.error(str(exc))
        else:
            def progress(phase: str, done: int, total: int) -> None:
                what = "Reading headers" if phase == "files" else "Storing series"
                bar.progress(done / max(total, 1), text=f"{what}: {done} of {total}")

            result = ingest_upload(engine, home, batch, names, actor=actor, progress=progress)
            bar.progress(1.0, text="Done")
            stored = sum(f.verdict == "stored" for f in result.files)
            st.success(f"{len(result.files)} file(s): {stored} accepted ({result.new_instances} new, "
                       f"{result.already_present} already present), {len(result.files) - stored} not ingested; "
                       f"{result.series_new} new series for center {center}"
                       + (f" (ingest run {result.run_id})." if result.run_id else "."))
            st.dataframe(pd.DataFrame([{"file": f.name, "result": f.verdict, "why": f.detail} for f in result.files]),
                         hide_index=True)

with table_tab:
    st.caption("A clinical or outcome table as described in docs/data-formats.md (.csv or .xlsx). "
               + ("Rows of other centers are refused." if ident.role == "coordinator" else ""))
    with st.form("table_upload", clear_on_submit=True):
        kind = st.radio("Table", ["clinical", "outcomes"], horizontal=True, key="table_kind")
        table = st.file_uploader("Table", type=["csv", "xlsx"], key="table_file")
        create = st.checkbox("Add patients the registry does not know yet", key="table_create")
        go = st.form_submit_button("Upload and import")
    if go and table is not None:
        from registry.clinical.csv_import import CSVValidationError

        data = table.getvalue()
        try:
            if len(data) > limit_mb << 20:
                raise UploadTooLarge(f"{table.name} is larger than {limit_mb} MB")
            report = import_uploaded_table(engine, home, table.name, data, kind,
                                           center_scope=ident.center_scope if ident.role != "admin" else None,
                                           actor=actor, create=create)
        except CSVValidationError as exc:
            st.error(f"{table.name}: {len(exc.errors)} problem(s); nothing was imported. Fix them and upload again.")
            st.dataframe(exc.errors, hide_index=True)
        except (OutsideCenter, UploadTooLarge, ValueError, LookupError) as exc:
            st.error(str(exc))
        else:
            st.success(f"{table.name} ({report.read_as}): {report.rows} rows; {report.created} created, "
                       f"{report.updated} updated, {report.unchanged} unchanged, {report.patients_new} new patients "
                       f"(import run {report.run_id}).")
