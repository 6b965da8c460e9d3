"""The registry database: engine and sessions, models, Alembic migrations, row writes and reads, backups."""
