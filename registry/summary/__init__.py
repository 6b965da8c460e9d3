"""Per-patient summaries of the registry's rows, kept in step with them.

Database triggers (migration 0013) bump a patient's `PatientRevision` in the same transaction as any write to
the patient's studies, series, segmentation runs or series features, whichever code (or person) makes it. Each
summary row records the revision it was computed at; before a summary is read, the rows whose revision moved
are recomputed with the full query restricted to those patients (`revisions.stale_patients`,
`revisions.store`). A summary therefore always equals the full query, and a page over 100,000 series reads
20,000 summary rows instead.
"""

# The summaries' tables: derived from the other tables (a restore of those recreates the revisions through the
# triggers, and the first read recomputes the summaries), so per-table exports leave them out.
TABLES = ("patient_revision", "patient_series_counts", "patient_arrival_day", "patient_feature_summary")
