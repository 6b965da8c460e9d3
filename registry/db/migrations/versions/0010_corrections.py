"""corrections: per-class agreement between a model's mask and the annotator's correction of it.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""
from alembic import op
import sqlalchemy as sa


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('correction_agreement',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('annotation_id', sa.Integer(), nullable=False),
    sa.Column('segmentation_run_id', sa.Integer(), nullable=False),
    sa.Column('lesion_class', sa.String(length=16), nullable=False),
    sa.Column('dice', sa.Float(), nullable=True),
    sa.Column('model_ml', sa.Float(), nullable=False),
    sa.Column('corrected_ml', sa.Float(), nullable=False),
    sa.Column('overlap_ml', sa.Float(), nullable=False),
    sa.Column('computed_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['annotation_id'], ['manual_annotation.id'],
                            name=op.f('fk_correction_agreement_annotation_id_manual_annotation')),
    sa.ForeignKeyConstraint(['segmentation_run_id'], ['segmentation_run.id'],
                            name=op.f('fk_correction_agreement_segmentation_run_id_segmentation_run')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_correction_agreement')),
    sa.UniqueConstraint('annotation_id', 'segmentation_run_id', 'lesion_class',
                        name=op.f('uq_correction_agreement_annotation_id_segmentation_run_id_lesion_class'))
    )
    with op.batch_alter_table('correction_agreement', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_correction_agreement_annotation_id'), ['annotation_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_correction_agreement_segmentation_run_id'), ['segmentation_run_id'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('correction_agreement', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_correction_agreement_segmentation_run_id'))
        batch_op.drop_index(batch_op.f('ix_correction_agreement_annotation_id'))
    op.drop_table('correction_agreement')
