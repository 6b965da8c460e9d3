"""ingest hardening: run status (interrupted runs told apart), source roots for in-place files,
no institution names.

- ingest_run.status / pid / host: a run whose process is gone without finishing is marked
  'interrupted' at the next start instead of staying 'running' forever;
- source_root + instance.source_root_id: files indexed in place are stored relative to a declared
  root (no absolute paths, whose folders may name the patient);
- series.institution dropped: an identifier of the place of care (DICOM PS3.15 Annex E: remove).

Revision ID: 0006
Revises: 0001
Create Date: 2026-11-29
"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('source_root',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('path', sa.Text(), nullable=False),
    sa.Column('declared_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_source_root')),
    sa.UniqueConstraint('path', name=op.f('uq_source_root_path'))
    )
    with op.batch_alter_table('instance', schema=None) as batch_op:
        batch_op.add_column(sa.Column('source_root_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_instance_source_root_id'), ['source_root_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_instance_source_root_id_source_root'), 'source_root',
                                    ['source_root_id'], ['id'])
    with op.batch_alter_table('ingest_run', schema=None) as batch_op:
        batch_op.add_column(sa.Column('status', sa.String(length=16), nullable=False, server_default='done'))
        batch_op.add_column(sa.Column('pid', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('host', sa.String(length=255), nullable=True))
    # Runs that never finished before this migration cannot be running now: the migration runs alone.
    op.execute("UPDATE ingest_run SET status = 'interrupted' WHERE finished_at IS NULL")
    with op.batch_alter_table('ingest_run', schema=None) as batch_op:
        batch_op.alter_column('status', server_default=None)
    with op.batch_alter_table('series', schema=None) as batch_op:
        batch_op.drop_column('institution')


def downgrade() -> None:
    # The institution names are gone for good (that is the point); the column comes back empty.
    with op.batch_alter_table('series', schema=None) as batch_op:
        batch_op.add_column(sa.Column('institution', sa.String(length=200), nullable=True))
    with op.batch_alter_table('ingest_run', schema=None) as batch_op:
        batch_op.drop_column('host')
        batch_op.drop_column('pid')
        batch_op.drop_column('status')
    with op.batch_alter_table('instance', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_instance_source_root_id_source_root'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_instance_source_root_id'))
        batch_op.drop_column('source_root_id')
    op.drop_table('source_root')
