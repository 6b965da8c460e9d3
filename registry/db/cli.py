"""`ctstudy db ...`: the registry's schema (upgrade, downgrade) and its backups.

A downgrade removes the tables and columns that later revisions added, with their data. It is
refused without `--yes` while the database holds any rows, and the database is always backed up
first (registry.db.backup: SQLite backup API, pg_dump or a per-table CSV export), so that even a
mistaken `--yes` loses nothing for good.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from sqlalchemy.engine import make_url

from registry.db.backup import back_up, row_counts
from registry.db.engine import alembic_config, current_revision, downgrade, make_engine, schema_head, upgrade
from registry.home import Home

app = typer.Typer(help="The registry database: schema upgrade and downgrade, backups.", no_args_is_help=True)
console = Console()
err = Console(stderr=True)

BACKUP_DIR = typer.Option(None, "--backup-dir", help="Where backups go (default <home>/backups).")


def _home(ctx: typer.Context) -> Home:
    return ctx.obj if isinstance(ctx.obj, Home) else Home.resolve()


def _safe(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def _fail(message: str) -> None:
    err.print(f"[red]error:[/red] {message}")
    raise typer.Exit(1)


def _revisions_between(url: str, current: str | None, target: str) -> list[str]:
    """The revisions a downgrade from `current` to `target` undoes, newest first."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config(url))
    if current is None:
        return []
    lower = None if target == "base" else target
    try:
        return [s.revision for s in script.iterate_revisions(current, lower) if s.revision != lower]
    except Exception as exc:  # noqa: BLE001 - alembic raises several types for an unknown or later revision
        raise ValueError(f"cannot downgrade from {current} to {target}: {exc}") from None


@app.command("upgrade")
def upgrade_cmd(
    ctx: typer.Context,
    revision: str = typer.Argument("head", help="Target revision (default: the latest)."),
) -> None:
    """Upgrade the schema (what `ctstudy init` does, to any revision)."""
    home = _home(ctx)
    engine = make_engine(home.db_url)
    try:
        before = current_revision(engine)
        upgrade(home.db_url, revision)
        after = current_revision(engine)
    except Exception as exc:  # noqa: BLE001 - shown as one line naming the database and revision
        _fail(f"upgrading {_safe(home.db_url)} to {revision} failed: {exc}")
    finally:
        engine.dispose()
    console.print(f"{_safe(home.db_url)}: schema {before or 'empty'} -> {after}.")


@app.command("downgrade")
def downgrade_cmd(
    ctx: typer.Context,
    revision: str = typer.Argument(..., help="Target revision, or `base` for an empty database."),
    yes: bool = typer.Option(False, "--yes", help="Downgrade even though data in the removed tables and columns "
                                                  "will be lost (a backup is made first in any case)."),
    backup_dir: Path | None = BACKUP_DIR,
) -> None:
    """Downgrade the schema; refused without --yes while the database holds data; always backs up first."""
    home = _home(ctx)
    engine = make_engine(home.db_url)
    try:
        current = current_revision(engine)
        undone = _revisions_between(home.db_url, current, revision)
        if not undone:
            console.print(f"{_safe(home.db_url)} is at {current or 'no schema'}: nothing to downgrade.")
            return
        counts = row_counts(engine)
        if counts and not yes:
            held = ", ".join(f"{t} {n}" for t, n in sorted(counts.items()))
            _fail(f"downgrading {_safe(home.db_url)} from {current} to {revision} undoes revision(s) "
                  f"{', '.join(undone)} and drops the tables and columns they added, with their data. The database "
                  f"holds rows ({held}). Give --yes to go ahead; a backup is made first.")
        backup = back_up(engine, backup_dir or home.root / "backups") if counts else None
    except ValueError as exc:
        _fail(str(exc))
    finally:
        engine.dispose()
    if backup is not None:
        console.print(f"Backup ({backup.method}, schema {backup.revision}): {backup.path}")
    try:
        downgrade(home.db_url, revision)
    except Exception as exc:  # noqa: BLE001 - shown as one line; the backup above is intact
        _fail(f"downgrading {_safe(home.db_url)} to {revision} failed: {exc}"
              + (f"; the backup is at {backup.path}" if backup else ""))
    console.print(f"{_safe(home.db_url)}: schema {current} -> {revision}.")


@app.command("backup")
def backup_cmd(ctx: typer.Context, backup_dir: Path | None = BACKUP_DIR) -> None:
    """Back up the whole database now (SQLite backup API, pg_dump, or a per-table CSV export)."""
    home = _home(ctx)
    engine = make_engine(home.db_url)
    try:
        backup = back_up(engine, backup_dir or home.root / "backups")
    except (ValueError, OSError) as exc:
        _fail(f"backing up {_safe(home.db_url)} failed: {exc}")
    finally:
        engine.dispose()
    console.print(f"Backup ({backup.method}, schema {backup.revision}): {backup.path}")


@app.command("current")
def current_cmd(ctx: typer.Context) -> None:
    """The schema revision of the database and the latest one this ctstudy knows."""
    home = _home(ctx)
    engine = make_engine(home.db_url)
    try:
        current = current_revision(engine)
    finally:
        engine.dispose()
    head = schema_head()
    console.print(f"{_safe(home.db_url)}: schema {current or 'none'} (latest {head}).")
