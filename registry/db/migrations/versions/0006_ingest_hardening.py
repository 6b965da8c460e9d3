"""ingest hardening: run status (interrupted runs told apart), source roots for in-place files,
no institution names.

- ingest_run.status / pid / host: a run whose process is gone without finishing is marked
  'interrupted' at the next start instead of staying 'running' forever;
- source_root + instance.source_root_id: files indexed in place are stored relative to a declared
  root (no absolute paths, whose folders may name the patient);
- series.institution emptied and no longer written: an identifier of the place of care (DICOM PS3.15
  Annex E: remove); the column stays, because dropping it rebuilds `series` on SQLite, which its
  foreign keys forbid on a registry with data;
- stored series and study descriptions cleaned to the technical vocabulary (registry.deid.phi_text), and
  rejection paths and path-like parts of their details removed (folder names may name the patient).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""
import re

from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


# Columns whose existing values the upgrade rewrites on purpose (identifying text scrubbed), so that the
# generic round-trip test (tests/registry/test_migration_round_trips.py) knows they may change.
SCRUBBED_COLUMNS = {"series": ("institution", "description"), "study": ("description",),
                    "rejection": ("path", "detail")}


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
    # (The server default stays: removing it would rebuild ingest_run on SQLite, which rejection's
    # foreign key forbids once there are rows.)
    op.execute("UPDATE ingest_run SET status = 'interrupted' WHERE finished_at IS NULL")
    op.execute("UPDATE series SET institution = NULL")
    _scrub_identifying_text()


def _scrub_identifying_text() -> None:
    """Rows written before this revision: descriptions cleaned, rejection paths dropped (not recoverable)."""
    from registry.deid.phi_text import cleaned_text

    conn = op.get_bind()
    for table in ('series', 'study'):
        rows = conn.execute(sa.text(f"SELECT id, description FROM {table} WHERE description IS NOT NULL")).all()
        for row_id, description in rows:
            cleaned = cleaned_text(description)[0]
            if cleaned != description:
                conn.execute(sa.text(f"UPDATE {table} SET description = :d WHERE id = :i"),
                             {"d": cleaned, "i": row_id})
    path_like = re.compile(r"(?:(?<=\s)|^)(?:[A-Za-z]:)?[\\/][^\s:;,)]+")
    rows = conn.execute(sa.text("SELECT id, detail FROM rejection")).all()
    for row_id, detail in rows:
        conn.execute(sa.text("UPDATE rejection SET path = :p, detail = :d WHERE id = :i"),
                     {"p": "(path removed by migration 0006)", "d": path_like.sub("<path>", detail or ""),
                      "i": row_id})


def downgrade() -> None:
    # Institution names, descriptions and rejection paths removed by the upgrade are gone for good
    # (that is the point); the rest of the data survives the round trip.
    # Plain ALTER TABLE ... DROP COLUMN (SQLite >= 3.35 and PostgreSQL): a batch rebuild of ingest_run
    # is refused by rejection's foreign key as soon as there are rows.
    for column in ('host', 'pid', 'status'):
        op.drop_column('ingest_run', column)
    with op.batch_alter_table('instance', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_instance_source_root_id_source_root'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_instance_source_root_id'))
        batch_op.drop_column('source_root_id')
    op.drop_table('source_root')
