"""indexes for a consortium-sized registry (100k series): QC history and queue order, progress counts,
segmented series, a series' audit trail.

Each one serves a query of the progress table, the dashboard's Collection and Quality-control
pages or `biomarkers extract`; `bench/scale_bench.py` prints their EXPLAIN plans at 100,000 series
and tests/registry/test_registry_query_plans.py checks that none of those queries needs a full
scan of a big table on PostgreSQL.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29
"""
from alembic import op


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

# (table, index name, columns)
INDEXES = [
    ('qc_decision', 'ix_qc_decision_decided_at', ['decided_at']),
    ('series', 'ix_series_ingested_at', ['ingested_at']),
    ('series', 'ix_series_study_id_qc_status', ['study_id', 'qc_status']),
    ('segmentation_run', 'ix_segmentation_run_status_series_id', ['status', 'series_id']),
    ('audit_event', 'ix_audit_event_entity_type_entity_id', ['entity_type', 'entity_id']),
]


def upgrade() -> None:
    for table, name, columns in INDEXES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_index(name, columns, unique=False)


def downgrade() -> None:
    for table, name, _columns in reversed(INDEXES):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(name)
