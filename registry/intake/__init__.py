"""Uploads through the dashboard: DICOM (files or zip) into the spool and its one ingest; clinical and outcome
tables into the one table import, restricted to the uploader's center."""
