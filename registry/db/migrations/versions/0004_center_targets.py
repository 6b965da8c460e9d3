"""center targets: per-center (and study-wide) collection targets set by an admin in the dashboard.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('center_target',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('center_id', sa.Integer(), nullable=True),
    sa.Column('metric', sa.String(length=32), nullable=False),
    sa.Column('target', sa.Integer(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.Column('updated_by', sa.String(length=100), nullable=False),
    sa.ForeignKeyConstraint(['center_id'], ['center.id'], name=op.f('fk_center_target_center_id_center')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_center_target')),
    sa.UniqueConstraint('center_id', 'metric', name=op.f('uq_center_target_center_id_metric'))
    )
    with op.batch_alter_table('center_target', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_center_target_center_id'), ['center_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('center_target', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_center_target_center_id'))
    op.drop_table('center_target')
