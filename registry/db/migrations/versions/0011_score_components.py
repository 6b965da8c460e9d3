"""reviewer-set components of the CT classifications (basal cisterns, tSAH, evacuation, EDH) per series.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""
import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'score_component_review',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('series_id', sa.Integer(), nullable=False),
        sa.Column('component', sa.String(length=40), nullable=False),
        sa.Column('value', sa.String(length=16), nullable=False),
        sa.Column('reviewer', sa.String(length=120), nullable=False),
        sa.Column('note', sa.Text(), nullable=True),
        sa.Column('set_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['series_id'], ['series.id'], ),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('score_component_review', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_score_component_review_series_id'), ['series_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('score_component_review', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_score_component_review_series_id'))
    op.drop_table('score_component_review')
