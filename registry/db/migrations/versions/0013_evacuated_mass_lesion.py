"""evacuated mass lesion: the clinical record's surgery field, which makes the computed Marshall class V.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07
"""
from alembic import op
import sqlalchemy as sa


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('clinical_record', schema=None) as batch_op:
        batch_op.add_column(sa.Column('evacuated_mass_lesion', sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('clinical_record', schema=None) as batch_op:
        batch_op.drop_column('evacuated_mass_lesion')
