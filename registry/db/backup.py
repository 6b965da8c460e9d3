"""Backups of the registry database, and what a schema downgrade would put at risk.

- SQLite: a consistent copy through SQLite's online backup API (`sqlite3.Connection.backup`), safe
  while the dashboard or an ingest has the database open (a plain file copy of a WAL database is not).
- PostgreSQL: `pg_dump --format=custom` when a pg_dump is on PATH and accepts the server (restore
  with `pg_restore --clean --dbname URL FILE`); otherwise a folder with one CSV file per table
  written by `COPY ... TO STDOUT (FORMAT csv, HEADER)`, plus `schema_revision.txt` (restore: create
  the schema at that revision with `ctstudy db upgrade REV`, then `\\copy TABLE FROM 'TABLE.csv' CSV
  HEADER` for each table, parents first). The per-patient summaries (`registry.summary.TABLES`) are not
  exported: the restored rows recreate them.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, MetaData, func, inspect, select
from sqlalchemy.engine import make_url

from registry import summary
from registry.db.engine import current_revision
from registry.db.models import utcnow


@dataclass
class Backup:
    path: Path
    method: str  # "sqlite backup API" | "pg_dump" | "per-table CSV export"
    revision: str | None


def row_counts(engine: Engine) -> dict[str, int]:
    """Rows in every table of the database (Alembic's own table left out), tables with rows only."""
    meta = MetaData()
    names = [t for t in inspect(engine).get_table_names() if t != "alembic_version"]
    meta.reflect(engine, only=names)
    counts: dict[str, int] = {}
    with engine.connect() as conn:
        for name in names:
            n = conn.scalar(select(func.count()).select_from(meta.tables[name])) or 0
            if n:
                counts[name] = n
    return counts


def back_up(engine: Engine, folder: Path) -> Backup:
    """A backup of the whole database into `folder` (created), named by time and schema revision."""
    folder.mkdir(parents=True, exist_ok=True)
    revision = current_revision(engine)
    stem = f"ctstudy-{utcnow():%Y%m%dT%H%M%S}-rev{revision or 'none'}"
    url = engine.url
    if url.get_backend_name() == "sqlite":
        return Backup(_sqlite_backup(url.database, folder / f"{stem}.sqlite"), "sqlite backup API", revision)
    if url.get_backend_name() == "postgresql":
        dumped = _pg_dump(url.render_as_string(hide_password=False), folder / f"{stem}.pgdump")
        if dumped is not None:
            return Backup(dumped, "pg_dump", revision)
        return Backup(_per_table_export(engine, folder / stem, revision), "per-table CSV export", revision)
    raise ValueError(f"cannot back up a {url.get_backend_name()} database: SQLite and PostgreSQL are supported")


def _sqlite_backup(database: str | None, target: Path) -> Path:
    if not database or database == ":memory:":
        raise ValueError("an in-memory SQLite database has nothing to back up")
    source = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        dest = sqlite3.connect(target)
        try:
            source.backup(dest)
        finally:
            dest.close()
    finally:
        source.close()
    return target


def _pg_dump(url: str, target: Path) -> Path | None:
    """`pg_dump` of the database, or None when there is no pg_dump or it refuses (e.g. an older client)."""
    pg_dump = shutil.which("pg_dump")
    if pg_dump is None:
        return None
    libpq_url = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    done = subprocess.run([pg_dump, "--format=custom", "--file", str(target), "--dbname", libpq_url],
                          capture_output=True, text=True, timeout=3600, check=False)
    if done.returncode != 0:
        target.unlink(missing_ok=True)
        return None
    return target


def _per_table_export(engine: Engine, folder: Path, revision: str | None) -> Path:
    folder.mkdir(parents=True)
    (folder / "schema_revision.txt").write_text(f"{revision}\n")
    names = [t for t in inspect(engine).get_table_names() if t != "alembic_version" and t not in summary.TABLES]
    raw = engine.raw_connection()
    try:
        with raw.cursor() as cur:
            for name in names:
                with open(folder / f"{name}.csv", "wb") as out, \
                        cur.copy(f'COPY "{name}" TO STDOUT (FORMAT csv, HEADER)') as copy:
                    for chunk in copy:
                        out.write(chunk)
    finally:
        raw.close()
    return folder
