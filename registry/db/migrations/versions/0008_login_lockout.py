"""log-in lockout counter: the wrong passwords of the current counting window, on the user's row.

The lockout reserves a slot in this counter with one conditional UPDATE before a password is
verified (registry.access.users.log_in), which is what makes check-and-count atomic on SQLite and
PostgreSQL alike. `failures_reset_at` is the start of that window.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""
import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('app_user', sa.Column('failed_logins', sa.Integer(), nullable=False, server_default='0'))


def downgrade() -> None:
    # Plain ALTER TABLE ... DROP COLUMN (SQLite >= 3.35 and PostgreSQL), as in 0005.
    op.drop_column('app_user', 'failed_logins')
