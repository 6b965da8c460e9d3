"""segmentation runs record their ensemble members and what was done to the series before the model.

- `model_members`: the networks a run averaged (name and content hash of each), so an ensemble's
  `model_version` (the hash of its members' hashes) can be read back as what it is;
- `notes`: what the run did to the series (e.g. irregular slice spacing resampled to a regular
  grid, the mask mapped back onto the received instances).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('segmentation_run', schema=None) as batch_op:
        batch_op.add_column(sa.Column('model_members', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('notes', sa.Text(), nullable=True))


def downgrade() -> None:
    # Plain ALTER TABLE ... DROP COLUMN (SQLite >= 3.35 and PostgreSQL): a batch rebuild of
    # segmentation_run is refused by the foreign keys pointing at it as soon as they have rows.
    op.drop_column('segmentation_run', 'notes')
    op.drop_column('segmentation_run', 'model_members')
