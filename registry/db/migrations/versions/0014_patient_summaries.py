"""patient summaries: per-patient series counts, admission scan, arrivals per day and patient-level features, kept in step with the rows they
summarise by a per-patient revision that triggers bump on every write to a patient's studies, series,
segmentation runs and series features.

The summaries themselves are computed by the code that reads them (`registry.summary`, `biomarkers.
patient_summary`) for the patients whose revision moved; this migration creates the tables and triggers and
gives every patient with a study a first revision, so the first read after the upgrade fills the summaries of
the existing registry.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07
"""
from alembic import op
import sqlalchemy as sa


revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None

# The patients a row of each table belongs to, as a SELECT over the trigger's row R (OLD or NEW).
_PATIENTS_OF = {
    "study": "SELECT R.patient_id AS patient_id WHERE R.patient_id IS NOT NULL",
    "series": "SELECT study.patient_id AS patient_id FROM study WHERE study.id = R.study_id",
    "segmentation_run": ("SELECT study.patient_id AS patient_id FROM series JOIN study ON study.id = series.study_id "
                         "WHERE series.id = R.series_id"),
    "series_features": ("SELECT study.patient_id AS patient_id FROM series JOIN study ON study.id = series.study_id "
                        "WHERE series.id = R.series_id"),
}
_BUMP = ("INSERT INTO patient_revision (patient_id, revision) SELECT DISTINCT patient_id, 1 FROM ({rows}) AS changed "
         "WHERE patient_id IS NOT NULL ON CONFLICT (patient_id) DO UPDATE SET revision = patient_revision.revision + 1")


def _sqlite_triggers() -> None:
    for table, rows in _PATIENTS_OF.items():
        for event, records in (("INSERT", ("NEW",)), ("UPDATE", ("OLD", "NEW")), ("DELETE", ("OLD",))):
            body = "; ".join(_BUMP.format(rows=rows.replace("R.", f"{r}.")) for r in records)
            op.execute(f"CREATE TRIGGER trg_{table}_{event.lower()}_patient_revision AFTER {event} ON {table} "
                       f"FOR EACH ROW BEGIN {body}; END")


def _postgresql_triggers() -> None:
    for table, rows in _PATIENTS_OF.items():
        old, new = (_BUMP.format(rows=rows.replace("R.", f"{r}.")) for r in ("OLD", "NEW"))
        op.execute(f"""
            CREATE FUNCTION {table}_patient_revision() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF TG_OP <> 'INSERT' THEN {old}; END IF;
                IF TG_OP <> 'DELETE' THEN {new}; END IF;
                RETURN NULL;
            END $$""")
        op.execute(f"CREATE TRIGGER trg_{table}_patient_revision AFTER INSERT OR UPDATE OR DELETE ON {table} "
                   f"FOR EACH ROW EXECUTE FUNCTION {table}_patient_revision()")


def upgrade() -> None:
    op.create_table('patient_revision',
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['patient_id'], ['patient.id'], name=op.f('fk_patient_revision_patient_id_patient'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('patient_id', name=op.f('pk_patient_revision'))
    )
    op.create_table('patient_series_counts',
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('series', sa.Integer(), nullable=False),
    sa.Column('qc_passed', sa.Integer(), nullable=False),
    sa.Column('qc_failed_auto', sa.Integer(), nullable=False),
    sa.Column('qc_failed_manual', sa.Integer(), nullable=False),
    sa.Column('qc_pending', sa.Integer(), nullable=False),
    sa.Column('segmented', sa.Integer(), nullable=False),
    sa.Column('usable_studies', sa.Integer(), nullable=False),
    sa.Column('admission_study_id', sa.Integer(), nullable=True),
    sa.Column('admission_passed', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['admission_study_id'], ['study.id'],
                            name=op.f('fk_patient_series_counts_admission_study_id_study'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['patient_id'], ['patient.id'], name=op.f('fk_patient_series_counts_patient_id_patient'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('patient_id', name=op.f('pk_patient_series_counts'))
    )
    op.create_table('patient_arrival_day',
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('basis', sa.String(length=8), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('series', sa.Integer(), nullable=False),
    sa.Column('first_day', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['patient_id'], ['patient.id'], name=op.f('fk_patient_arrival_day_patient_id_patient'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('patient_id', 'basis', 'day', name=op.f('pk_patient_arrival_day'))
    )
    op.create_table('patient_feature_summary',
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('definitions', sa.String(length=64), nullable=False),
    sa.Column('values', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['patient_id'], ['patient.id'],
                            name=op.f('fk_patient_feature_summary_patient_id_patient'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('patient_id', name=op.f('pk_patient_feature_summary'))
    )
    if op.get_bind().dialect.name == "postgresql":
        _postgresql_triggers()
    else:
        _sqlite_triggers()
    op.execute("INSERT INTO patient_revision (patient_id, revision) SELECT DISTINCT patient_id, 1 FROM study")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in _PATIENTS_OF:
            op.execute(f"DROP TRIGGER trg_{table}_patient_revision ON {table}")
            op.execute(f"DROP FUNCTION {table}_patient_revision()")
    else:
        for table in _PATIENTS_OF:
            for event in ("insert", "update", "delete"):
                op.execute(f"DROP TRIGGER trg_{table}_{event}_patient_revision")
    op.drop_table('patient_feature_summary')
    op.drop_table('patient_arrival_day')
    op.drop_table('patient_series_counts')
    op.drop_table('patient_revision')
