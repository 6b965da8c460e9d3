"""DICOM senders: the calling AE titles the receiver accepts, each registered to one center.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""
import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('dicom_sender',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('ae_title', sa.String(length=16), nullable=False),
    sa.Column('center_id', sa.Integer(), nullable=False),
    sa.Column('host', sa.String(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('created_by', sa.String(length=100), nullable=False),
    sa.ForeignKeyConstraint(['center_id'], ['center.id'], name=op.f('fk_dicom_sender_center_id_center')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dicom_sender')),
    sa.UniqueConstraint('ae_title', name=op.f('uq_dicom_sender_ae_title'))
    )
    with op.batch_alter_table('dicom_sender', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_dicom_sender_center_id'), ['center_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('dicom_sender', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_dicom_sender_center_id'))
    op.drop_table('dicom_sender')
