"""`ctstudy db`: a downgrade that would drop data is refused without --yes and always backs up first."""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from ctstudy.cli import app
from registry.access.users import add_user
from registry.db import backup as backup_module
from registry.db.backup import back_up, row_counts
from registry.db.engine import current_revision, make_engine, session_scope
from registry.db.models import User
from registry.home import Home


def _cli(home: Home, *args: str):  # noqa: ANN202
    return CliRunner().invoke(app, ["--home", str(home.root), "--db-url", home.db_url, "db", *args])


def _with_a_user(home: Home) -> None:
    engine = make_engine(home.db_url)
    with session_scope(engine) as s:
        add_user(s, "adm", "admin", "long-password")
    engine.dispose()


def test_downgrade_refuses_without_yes_then_backs_up_first(any_home: Home, tmp_path: Path) -> None:
    _with_a_user(any_home)
    engine = make_engine(any_home.db_url)
    head = current_revision(engine)
    refused = _cli(any_home, "downgrade", "base")
    assert refused.exit_code == 1
    assert "--yes" in refused.output and "app_user 1" in refused.output and "Traceback" not in refused.output
    assert current_revision(engine) == head and row_counts(engine)["app_user"] == 1  # untouched
    engine.dispose()

    done = _cli(any_home, "downgrade", "base", "--yes", "--backup-dir", str(tmp_path / "bk"))
    assert done.exit_code == 0, done.output
    assert current_revision(engine) is None
    engine.dispose()
    (saved,) = list((tmp_path / "bk").iterdir())
    assert f"rev{head}" in saved.name
    if any_home.is_sqlite:
        with sqlite3.connect(saved) as conn:
            assert conn.execute("SELECT username FROM app_user").fetchall() == [("adm",)]
            assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [(head,)]
    else:
        assert saved.suffix == ".pgdump" and saved.stat().st_size > 0

    assert _cli(any_home, "upgrade").exit_code == 0  # and back, empty
    assert current_revision(engine) == head and row_counts(engine) == {}
    engine.dispose()


def test_downgrade_of_an_empty_database_needs_no_yes_and_no_backup(home: Home, tmp_path: Path) -> None:
    done = _cli(home, "downgrade", "0001", "--backup-dir", str(tmp_path / "bk"))
    assert done.exit_code == 0, done.output
    assert not (tmp_path / "bk").exists()
    unknown = _cli(home, "downgrade", "9999")
    assert unknown.exit_code == 1 and "9999" in unknown.output and "Traceback" not in unknown.output


def test_postgresql_backup_without_pg_dump_is_a_per_table_export(pg_url: str, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    home = Home.resolve(tmp_path / "home", pg_url)
    home.ensure()
    from registry.db.engine import upgrade

    upgrade(home.db_url)
    _with_a_user(home)
    monkeypatch.setattr(backup_module.shutil, "which", lambda _name: None)
    engine = make_engine(home.db_url)
    saved = back_up(engine, tmp_path / "bk")
    assert saved.method == "per-table CSV export"
    assert (saved.path / "schema_revision.txt").read_text().strip() == current_revision(engine)
    users = (saved.path / "app_user.csv").read_text().splitlines()
    assert users[0].startswith("id,username") and ",adm," in users[1]
    # The per-patient summaries are derived: restoring the other tables recreates them (registry.summary).
    assert (saved.path / "patient.csv").exists() and not (saved.path / "patient_revision.csv").exists()
    with session_scope(engine) as s:
        assert s.scalars(select(User.username)).all() == ["adm"]
    engine.dispose()


def test_sqlite_backup_is_consistent_while_the_database_is_open(home: Home, tmp_path: Path) -> None:
    _with_a_user(home)
    engine = make_engine(home.db_url)
    with engine.connect():  # another connection holds the WAL database open
        saved = back_up(engine, tmp_path / "bk")
    engine.dispose()
    check = subprocess.run(["python3", "-c", f"import sqlite3; c = sqlite3.connect({str(saved.path)!r}); "
                            "print(c.execute('PRAGMA integrity_check').fetchone()[0])"],
                           capture_output=True, text=True, check=True)
    assert check.stdout.strip() == "ok"
