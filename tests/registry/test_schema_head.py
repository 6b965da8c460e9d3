"""The schema check every command runs reads the head revision without Alembic: it must be Alembic's head."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory

from registry.db.engine import alembic_config, current_revision, make_engine, schema_head, upgrade


def test_schema_head_is_alembics_head() -> None:
    assert schema_head() == ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def test_a_branched_chain_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    versions = tmp_path / "versions"
    versions.mkdir()
    (versions / "a.py").write_text('revision = "0001"\ndown_revision = None\n')
    (versions / "b.py").write_text('revision: str = "0002"\ndown_revision: str | None = "0001"\n')
    (versions / "c.py").write_text('revision = "0003"\ndown_revision = "0001"\n')
    monkeypatch.setattr("registry.db.engine.MIGRATIONS_DIR", tmp_path)
    schema_head.cache_clear()
    try:
        with pytest.raises(RuntimeError, match="2 heads"):
            schema_head()
    finally:
        schema_head.cache_clear()


def test_current_revision_of_a_new_and_an_upgraded_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    engine = make_engine(url)
    assert current_revision(engine) is None
    upgrade(url)
    assert current_revision(engine) == schema_head()
    engine.dispose()


def test_a_registry_command_imports_no_alembic_and_no_heavy_library(tmp_path: Path) -> None:
    """Start-up: a registry read command must not load Alembic, torch, statsmodels or pydicom."""
    code = ("import sys; from ctstudy.cli import main; sys.argv = ['ctstudy', '--home', sys.argv[1], 'registry', "
            "'progress']\ntry:\n    main()\nexcept SystemExit:\n    pass\n"
            "print('LOADED', sorted(m for m in ('alembic', 'torch', 'statsmodels', 'pydicom', 'monai', 'scipy') "
            "if m in sys.modules))")
    home = tmp_path / "home"
    subprocess.run([sys.executable, "-c", "from ctstudy.cli import main; main()", "--home", str(home), "init"],
                   check=True, capture_output=True)
    out = subprocess.run([sys.executable, "-c", code, str(home)], check=True, capture_output=True, text=True).stdout
    assert out.strip().splitlines()[-1] == "LOADED []"
