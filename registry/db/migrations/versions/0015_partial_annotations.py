"""partial annotations: the share of a scan a correction annotated, beside its agreement with the model's mask.

A manual annotation may leave voxels unannotated (`vocabulary.labels.UNANNOTATED`); its agreement with the
model's mask is computed over the annotated voxels only, and `annotated_fraction` says what share of the
scan that was (1.0 for a whole annotation). Rows stored before this revision compared whole masks: 1.0.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07
"""
from alembic import op
import sqlalchemy as sa


revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('correction_agreement', schema=None) as batch_op:
        batch_op.add_column(sa.Column('annotated_fraction', sa.Float(), nullable=False, server_default='1.0'))


def downgrade() -> None:
    with op.batch_alter_table('correction_agreement', schema=None) as batch_op:
        batch_op.drop_column('annotated_fraction')
