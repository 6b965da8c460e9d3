"""initial schema: centers, patients, clinical data, outcomes, studies, series, instances, QC,
ingest runs and rejections, audit events, annotations, segmentation runs, features, model fits, users.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""
from alembic import op
import sqlalchemy as sa


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('audit_event',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.Column('actor', sa.String(length=100), nullable=False),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('entity_type', sa.String(length=32), nullable=False),
    sa.Column('entity_id', sa.String(length=80), nullable=True),
    sa.Column('before', sa.JSON(), nullable=True),
    sa.Column('after', sa.JSON(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_event'))
    )
    with op.batch_alter_table('audit_event', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_event_at'), ['at'], unique=False)

    op.create_table('center',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_center')),
    sa.UniqueConstraint('code', name=op.f('uq_center_code'))
    )
    op.create_table('ingest_run',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('source', sa.Text(), nullable=False),
    sa.Column('actor', sa.String(length=100), nullable=False),
    sa.Column('started_at', sa.DateTime(), nullable=False),
    sa.Column('finished_at', sa.DateTime(), nullable=True),
    sa.Column('counts', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ingest_run'))
    )
    op.create_table('model_fit',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('actor', sa.String(length=100), nullable=False),
    sa.Column('outcome', sa.String(length=32), nullable=False),
    sa.Column('feature_set', sa.String(length=64), nullable=False),
    sa.Column('model_kind', sa.String(length=32), nullable=False),
    sa.Column('cv', sa.String(length=32), nullable=True),
    sa.Column('n_patients', sa.Integer(), nullable=False),
    sa.Column('n_events', sa.Integer(), nullable=True),
    sa.Column('data_hash', sa.String(length=64), nullable=False),
    sa.Column('variables', sa.JSON(), nullable=False),
    sa.Column('coefficients', sa.JSON(), nullable=False),
    sa.Column('metrics', sa.JSON(), nullable=False),
    sa.Column('spec', sa.JSON(), nullable=False),
    sa.Column('artifact_path', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_model_fit'))
    )
    op.create_table('app_user',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('password_hash', sa.String(length=200), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('center_id', sa.Integer(), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['center_id'], ['center.id'], name=op.f('fk_app_user_center_id_center')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_app_user')),
    sa.UniqueConstraint('username', name=op.f('uq_app_user_username'))
    )
    op.create_table('patient',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('pseudo_id', sa.String(length=40), nullable=False),
    sa.Column('center_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['center_id'], ['center.id'], name=op.f('fk_patient_center_id_center')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_patient')),
    sa.UniqueConstraint('pseudo_id', name=op.f('uq_patient_pseudo_id'))
    )
    with op.batch_alter_table('patient', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_patient_center_id'), ['center_id'], unique=False)

    op.create_table('rejection',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('ingest_run_id', sa.Integer(), nullable=False),
    sa.Column('path', sa.Text(), nullable=False),
    sa.Column('reason', sa.String(length=64), nullable=False),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['ingest_run_id'], ['ingest_run.id'], name=op.f('fk_rejection_ingest_run_id_ingest_run')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rejection'))
    )
    with op.batch_alter_table('rejection', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_rejection_ingest_run_id'), ['ingest_run_id'], unique=False)

    op.create_table('clinical_record',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('injury_datetime', sa.DateTime(), nullable=True),
    sa.Column('age', sa.Float(), nullable=True),
    sa.Column('sex', sa.String(length=1), nullable=True),
    sa.Column('gcs_total', sa.Integer(), nullable=True),
    sa.Column('gcs_motor', sa.Integer(), nullable=True),
    sa.Column('pupils_unreactive', sa.Integer(), nullable=True),
    sa.Column('hypoxia', sa.Boolean(), nullable=True),
    sa.Column('hypotension', sa.Boolean(), nullable=True),
    sa.Column('glucose_mmol_l', sa.Float(), nullable=True),
    sa.Column('hemoglobin_g_dl', sa.Float(), nullable=True),
    sa.Column('marshall_ct', sa.Integer(), nullable=True),
    sa.Column('tsah', sa.Boolean(), nullable=True),
    sa.Column('edh', sa.Boolean(), nullable=True),
    sa.Column('major_extracranial_injury', sa.Boolean(), nullable=True),
    sa.Column('imported_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['patient_id'], ['patient.id'], name=op.f('fk_clinical_record_patient_id_patient')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_clinical_record')),
    sa.UniqueConstraint('patient_id', name=op.f('uq_clinical_record_patient_id'))
    )
    op.create_table('outcome',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('gos_6m', sa.Integer(), nullable=True),
    sa.Column('died', sa.Boolean(), nullable=True),
    sa.Column('days_to_death_or_censor', sa.Float(), nullable=True),
    sa.Column('imported_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['patient_id'], ['patient.id'], name=op.f('fk_outcome_patient_id_patient')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outcome')),
    sa.UniqueConstraint('patient_id', name=op.f('uq_outcome_patient_id'))
    )
    op.create_table('study',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('study_instance_uid', sa.String(length=64), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('study_datetime', sa.DateTime(), nullable=True),
    sa.Column('description', sa.String(length=200), nullable=True),
    sa.ForeignKeyConstraint(['patient_id'], ['patient.id'], name=op.f('fk_study_patient_id_patient')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_study')),
    sa.UniqueConstraint('study_instance_uid', name=op.f('uq_study_study_instance_uid'))
    )
    with op.batch_alter_table('study', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_study_patient_id'), ['patient_id'], unique=False)

    op.create_table('series',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('series_instance_uid', sa.String(length=64), nullable=False),
    sa.Column('study_id', sa.Integer(), nullable=False),
    sa.Column('modality', sa.String(length=16), nullable=True),
    sa.Column('series_number', sa.Integer(), nullable=True),
    sa.Column('description', sa.String(length=200), nullable=True),
    sa.Column('image_type', sa.String(length=200), nullable=True),
    sa.Column('acquisition_datetime', sa.DateTime(), nullable=True),
    sa.Column('days_from_injury', sa.Float(), nullable=True),
    sa.Column('manufacturer', sa.String(length=100), nullable=True),
    sa.Column('manufacturer_model', sa.String(length=100), nullable=True),
    sa.Column('institution', sa.String(length=200), nullable=True),
    sa.Column('convolution_kernel', sa.String(length=100), nullable=True),
    sa.Column('rows', sa.Integer(), nullable=True),
    sa.Column('columns', sa.Integer(), nullable=True),
    sa.Column('pixel_spacing_row', sa.Float(), nullable=True),
    sa.Column('pixel_spacing_col', sa.Float(), nullable=True),
    sa.Column('slice_thickness', sa.Float(), nullable=True),
    sa.Column('slice_spacing', sa.Float(), nullable=True),
    sa.Column('image_orientation', sa.JSON(), nullable=True),
    sa.Column('gantry_tilt', sa.Float(), nullable=True),
    sa.Column('instance_count', sa.Integer(), nullable=False),
    sa.Column('z_positions', sa.JSON(), nullable=True),
    sa.Column('coverage_mm', sa.Float(), nullable=True),
    sa.Column('archive_path', sa.Text(), nullable=True),
    sa.Column('qc_status', sa.String(length=16), nullable=False),
    sa.Column('qc_reasons', sa.JSON(), nullable=False),
    sa.Column('phi_tags', sa.JSON(), nullable=False),
    sa.Column('ingested_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['study_id'], ['study.id'], name=op.f('fk_series_study_id_study')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_series')),
    sa.UniqueConstraint('series_instance_uid', name=op.f('uq_series_series_instance_uid'))
    )
    with op.batch_alter_table('series', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_series_qc_status'), ['qc_status'], unique=False)
        batch_op.create_index(batch_op.f('ix_series_study_id'), ['study_id'], unique=False)

    op.create_table('instance',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('sop_instance_uid', sa.String(length=64), nullable=False),
    sa.Column('series_id', sa.Integer(), nullable=False),
    sa.Column('instance_number', sa.Integer(), nullable=True),
    sa.Column('position_z', sa.Float(), nullable=True),
    sa.Column('file_path', sa.Text(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('file_size', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['series_id'], ['series.id'], name=op.f('fk_instance_series_id_series')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_instance')),
    sa.UniqueConstraint('sop_instance_uid', name=op.f('uq_instance_sop_instance_uid'))
    )
    with op.batch_alter_table('instance', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_instance_series_id'), ['series_id'], unique=False)

    op.create_table('manual_annotation',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('series_id', sa.Integer(), nullable=False),
    sa.Column('mask_path', sa.Text(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('annotator', sa.String(length=100), nullable=True),
    sa.Column('imported_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['series_id'], ['series.id'], name=op.f('fk_manual_annotation_series_id_series')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_manual_annotation')),
    sa.UniqueConstraint('series_id', 'sha256', name=op.f('uq_manual_annotation_series_id_sha256'))
    )
    with op.batch_alter_table('manual_annotation', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_manual_annotation_series_id'), ['series_id'], unique=False)

    op.create_table('qc_decision',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('series_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('reasons', sa.JSON(), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('actor', sa.String(length=100), nullable=False),
    sa.Column('automatic', sa.Boolean(), nullable=False),
    sa.Column('decided_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['series_id'], ['series.id'], name=op.f('fk_qc_decision_series_id_series')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_qc_decision'))
    )
    with op.batch_alter_table('qc_decision', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_qc_decision_series_id'), ['series_id'], unique=False)

    op.create_table('segmentation_run',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('series_id', sa.Integer(), nullable=False),
    sa.Column('model_name', sa.String(length=100), nullable=False),
    sa.Column('model_version', sa.String(length=64), nullable=False),
    sa.Column('device', sa.String(length=32), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('mask_path', sa.Text(), nullable=True),
    sa.Column('seconds', sa.Float(), nullable=True),
    sa.Column('timings', sa.JSON(), nullable=True),
    sa.Column('started_at', sa.DateTime(), nullable=False),
    sa.Column('finished_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['series_id'], ['series.id'], name=op.f('fk_segmentation_run_series_id_series')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_segmentation_run')),
    sa.UniqueConstraint('series_id', 'model_version', name=op.f('uq_segmentation_run_series_id_model_version'))
    )
    with op.batch_alter_table('segmentation_run', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_segmentation_run_series_id'), ['series_id'], unique=False)

    op.create_table('series_features',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('series_id', sa.Integer(), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('segmentation_run_id', sa.Integer(), nullable=True),
    sa.Column('annotation_id', sa.Integer(), nullable=True),
    sa.Column('mask_sha256', sa.String(length=64), nullable=True),
    sa.Column('definitions_version', sa.String(length=32), nullable=False),
    sa.Column('values', sa.JSON(), nullable=False),
    sa.Column('lesions', sa.JSON(), nullable=False),
    sa.Column('computed_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['annotation_id'], ['manual_annotation.id'], name=op.f('fk_series_features_annotation_id_manual_annotation')),
    sa.ForeignKeyConstraint(['segmentation_run_id'], ['segmentation_run.id'], name=op.f('fk_series_features_segmentation_run_id_segmentation_run')),
    sa.ForeignKeyConstraint(['series_id'], ['series.id'], name=op.f('fk_series_features_series_id_series')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_series_features')),
    sa.UniqueConstraint('series_id', 'source', 'definitions_version', name=op.f('uq_series_features_series_id_source_definitions_version'))
    )
    with op.batch_alter_table('series_features', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_series_features_series_id'), ['series_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('series_features', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_series_features_series_id'))

    op.drop_table('series_features')
    with op.batch_alter_table('segmentation_run', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_segmentation_run_series_id'))

    op.drop_table('segmentation_run')
    with op.batch_alter_table('qc_decision', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_qc_decision_series_id'))

    op.drop_table('qc_decision')
    with op.batch_alter_table('manual_annotation', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_manual_annotation_series_id'))

    op.drop_table('manual_annotation')
    with op.batch_alter_table('instance', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_instance_series_id'))

    op.drop_table('instance')
    with op.batch_alter_table('series', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_series_study_id'))
        batch_op.drop_index(batch_op.f('ix_series_qc_status'))

    op.drop_table('series')
    with op.batch_alter_table('study', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_study_patient_id'))

    op.drop_table('study')
    op.drop_table('outcome')
    op.drop_table('clinical_record')
    with op.batch_alter_table('rejection', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_rejection_ingest_run_id'))

    op.drop_table('rejection')
    with op.batch_alter_table('patient', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_patient_center_id'))

    op.drop_table('patient')
    op.drop_table('app_user')
    op.drop_table('model_fit')
    op.drop_table('ingest_run')
    op.drop_table('center')
    with op.batch_alter_table('audit_event', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_event_at'))

    op.drop_table('audit_event')
