"""The `ctstudy` shell: heavy libraries load only with the commands that use them; unexpected errors read as words."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from ctstudy import cli
from ctstudy.errors import command_words, failure_line
from ctstudy.lazy import LAZY_COMMANDS, load_command
from registry.home import Home

HEAVY = ("torch", "monai", "statsmodels", "lifelines", "sklearn", "streamlit", "plotly", "highdicom", "SimpleITK",
         "matplotlib", "nibabel")


def _heavy_loaded_after(code: str) -> list[str]:
    probe = f"import sys\n{code}\nprint(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return [m for m in out.stdout.strip().split(",") if m]


def test_help_and_registry_commands_import_no_heavy_library() -> None:
    assert _heavy_loaded_after("import ctstudy.cli") == []
    # what `ctstudy registry progress` and `ctstudy users list` load
    loaded = _heavy_loaded_after("import ctstudy.cli, registry.cli, registry.access.cli, registry.collection.progress")
    assert loaded == []


def test_every_lazy_command_loads_and_its_help_line_is_the_modules_own() -> None:
    for name, spec in LAZY_COMMANDS.items():
        command = load_command(name)
        assert command.name == name
        assert (command.help or "").strip().splitlines()[0] == spec.help, name


def test_help_lists_every_command_without_loading_them() -> None:
    out = subprocess.run([sys.executable, "-c", "import sys; from ctstudy.cli import app; sys.argv=['ctstudy', "
                          "'--help']\ntry:\n    app()\nexcept SystemExit:\n    pass\n"
                          f"print('HEAVY', [m for m in {HEAVY!r} if m in sys.modules])"],
                         capture_output=True, text=True, env={"COLUMNS": "200", "PATH": ""}, check=True)
    for name in LAZY_COMMANDS:
        assert f" {name} " in out.stdout, name
    assert "HEAVY []" in out.stdout


def _main(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, home: Home, *args: str) -> str:
    monkeypatch.setattr(sys, "argv", ["ctstudy", "--home", str(home.root), "--db-url", home.db_url, *args])
    monkeypatch.delenv("CTSTUDY_DEBUG", raising=False)
    with pytest.raises(SystemExit) as stop:
        cli.main(ends_process=False)
    assert stop.value.code == 1
    return capsys.readouterr().err


def test_a_library_error_is_one_line_naming_the_command(monkeypatch, capsys, home: Home) -> None:  # noqa: ANN001
    import registry.cli

    def singular(*_args, **_kwargs):  # noqa: ANN002, ANN003, ANN202
        raise np.linalg.LinAlgError("Singular matrix")

    monkeypatch.setattr(registry.cli, "progress_rows", singular)
    err = _main(monkeypatch, capsys, home, "registry", "progress")
    line = " ".join(err.split())
    assert "`ctstudy registry progress` stopped" in line and "linear-algebra" in line and "Singular matrix" in line
    assert "--debug" in line and "Traceback" not in err
    assert not err.strip().startswith("error: Singular")

    def bare_key(*_args, **_kwargs):  # noqa: ANN002, ANN003, ANN202
        raise KeyError(1)

    monkeypatch.setattr(registry.cli, "progress_rows", bare_key)
    err = " ".join(_main(monkeypatch, capsys, home, "registry", "progress").split())
    assert "`ctstudy registry progress` stopped" in err and "KeyError: 1" in err and "error: 1" not in err


def test_debug_shows_the_traceback_and_user_errors_stay_one_line(monkeypatch, capsys, home: Home) -> None:  # noqa: ANN001
    import registry.cli

    monkeypatch.setattr(registry.cli, "progress_rows", lambda *a, **k: 1 / 0)
    monkeypatch.setattr(sys, "argv", ["ctstudy", "--debug", "--home", str(home.root), "registry", "progress"])
    with pytest.raises(ZeroDivisionError):
        cli.main(ends_process=False)
    # a user error from our own code keeps its own one-line message
    err = _main(monkeypatch, capsys, home, "registry", "qc", "1.2.3", "--pass")
    assert "no series whose UID ends in '1.2.3'" in " ".join(err.split()) and "stopped" not in err


def test_usage_errors_are_typers_own(monkeypatch, capsys) -> None:  # noqa: ANN001
    monkeypatch.setattr(sys, "argv", ["ctstudy", "registry", "progress", "--no-such-option"])
    with pytest.raises(SystemExit) as stop:
        cli.main(ends_process=False)
    assert stop.value.code == 2 and "No such option" in capsys.readouterr().err


def test_command_words_and_failure_line() -> None:
    assert command_words(["--home", "h", "--debug", "prognosis", "fit", "--outcome", "x"]) == "ctstudy prognosis fit"
    assert command_words(["synth", "--out", "d"]) == "ctstudy synth"
    assert "out of memory" in failure_line(["imaging", "segment"], MemoryError())
