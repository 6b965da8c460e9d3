"""Every table-printing command, piped to a file, prints every cell whole: no "…", no header cut, counts as integers.

CliRunner's output is not a terminal, exactly like `ctstudy registry missing --detail > owed.txt`.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import pandas as pd
from registry_dicom_factory import write_non_dicom, write_series
from rich.console import Console
from test_registry_progress import build_registry
from typer.testing import CliRunner

from ctstudy.cli import app
from registry.cli_tables import print_table
from registry.db.rows import Rows
from registry.home import Home
from vocabulary.dictionary import heading


def _run(home: Home, *args: str) -> str:
    result = CliRunner().invoke(app, ["--home", str(home.root), "--db-url", home.db_url, *args])
    assert result.exit_code == 0, result.output
    return result.output


def _assert_whole(table_output: str, csv_output: str, drop: tuple[str, ...] = ()) -> None:
    """Every header (in words) and every cell of the CSV form appears whole in the table form."""
    assert "…" not in table_output.replace("series …", "").replace("study …", "")
    frame = pd.read_csv(io.StringIO(csv_output), dtype=str, keep_default_na=False).drop(columns=list(drop))
    for column in frame.columns:
        assert heading(column) in table_output, (column, table_output)
    for value in frame.to_numpy().ravel():
        assert value in table_output, (value, table_output)


def test_registry_tables_piped_to_a_file_are_never_cut(home: Home, tmp_path: Path) -> None:
    build_registry(home, tmp_path)
    progress = _run(home, "registry", "progress")
    _assert_whole(progress, _run(home, "registry", "progress", "--format", "csv"))
    assert ".0" not in progress  # counts are whole numbers, not 156.0…
    assert max(len(line) for line in progress.splitlines()) > 80  # wider than a terminal, and printed whole

    summary = _run(home, "registry", "missing")
    _assert_whole(summary, _run(home, "registry", "missing", "--format", "csv"))

    detail = _run(home, "registry", "missing", "--detail")
    detail_csv = _run(home, "registry", "missing", "--detail", "--format", "csv")
    # on screen: words and short references instead of codes and 40-digit UIDs; the CSV keeps both
    _assert_whole(detail, detail_csv, drop=("item", "detail"))
    frame = pd.read_csv(io.StringIO(detail_csv), dtype=str, keep_default_na=False)
    assert "Admission scan not yet usable" in detail and "no_qc_passed_admission_scan" not in detail
    assert "failed automatic checks: Slices missing" in detail
    assert frame.loc[frame["item"] == "no_qc_passed_admission_scan", "detail"].str.len().min() > 20
    assert not any(uid in detail for uid in frame["detail"] if len(uid) > 20)

    dictionary = _run(home, "dictionary")
    assert "Hematoma volume on admission" in dictionary and "…" not in dictionary


def test_ingest_summary_and_users_list_piped(home: Home, tmp_path: Path) -> None:
    src = tmp_path / "in" / "IT064"
    write_series(src / "a", "piped", patient_id="A")
    write_non_dicom(src / "notes.txt")
    ingest = _run(home, "registry", "ingest", str(tmp_path / "in"), "--in-place")
    assert "rejected: Not a DICOM file" in ingest and "…" not in ingest
    assert re.search(r"series (waiting for review|failed automatic checks)", ingest) and "QC auto_failed" not in ingest
    for name in ("coordinator_of_a_center_with_a_long_name", "statistician_two"):
        result = CliRunner().invoke(app, ["--home", str(home.root), "--db-url", home.db_url, "users", "add", name,
                                          "--role", "statistician", "--password", "a long password 1"])
        assert result.exit_code == 0, result.output
    users = _run(home, "users", "list")
    assert "coordinator_of_a_center_with_a_long_name" in users and "…" not in users


def test_print_table_folds_on_a_terminal_and_never_cuts_when_piped() -> None:
    uid = "1.2.826.0.1.3680043.10.1289.123456789012345678901234567890"
    frame = pd.DataFrame({"series_uid": [uid], "hematoma_ml": [12.3456], "lesion_count": [3.0],
                          "relative_edema": [0.004321]})
    piped = io.StringIO()
    print_table(Console(file=piped, width=40), frame)
    text = piped.getvalue()
    assert uid in text and "Hematoma volume (mL)" in text and "12.35" in text and " 3 " in f"{text} "
    terminal = io.StringIO()
    print_table(Console(file=terminal, width=40, force_terminal=True, color_system=None), frame)
    assert "…" not in terminal.getvalue() and max(len(line) for line in terminal.getvalue().splitlines()) <= 40
    lines = terminal.getvalue().splitlines()
    folded = "".join(line[:8].strip() for line in lines[3:])  # the Series column, folded onto several lines
    assert folded == uid  # every digit kept
    assert "0.0043" in text


def test_imaging_evaluate_tables_are_printed_whole(capsys) -> None:  # noqa: ANN001
    from imaging import cli as imaging_cli

    frame = pd.DataFrame({"split": ["validation"], "class": ["hematoma"], "dice_mean": [0.97612],
                          "volume_error_ml_median": [0.0413], "n_series": [106.0]})
    imaging_cli._print(frame, "Segmentation vs truth-dir by split (model 0123456789abcdef)")
    out = capsys.readouterr().out
    assert "0123456789abcdef" in out and "…" not in out and "0.976" in out and "106" in out and "106.0" not in out


def test_piped_table_lines_up_its_columns_and_right_aligns_numbers() -> None:
    rows = Rows(("center", "patients", "reason"), [("IT064", 1234, "no row in clinical.csv"), ("C1", 7, "[red]x")])
    out = io.StringIO()
    print_table(Console(file=out, width=20), rows, "Owed", labels=False)
    title, header, first, second = out.getvalue().splitlines()
    assert title == "Owed"
    end = header.index("patients") + len("patients")  # counts end under the end of their heading
    assert first[:end].endswith(" 1,234") and second[:end].endswith(" 7")
    start = header.index("reason")  # text starts under the start of its heading, whole, markup left as typed
    assert first[start:] == "no row in clinical.csv" and second[start:] == "[red]x"
    assert len(first) > 20  # wider than the console: printed whole, not wrapped
    terminal = io.StringIO()
    print_table(Console(file=terminal, width=60, force_terminal=True, color_system=None), rows, labels=False)
    assert "[red]x" in terminal.getvalue()


def test_imaging_evaluate_tables_name_classes_and_columns_in_words(capsys) -> None:  # noqa: ANN001
    import re

    from imaging import cli as imaging_cli

    frame = pd.DataFrame({"split": ["test", "test"], "class": ["eah", "ivh"], "dice_mean": [0.81, 0.52],
                          "abc2_abs_error_ml_mean": [1.25, 0.5]})
    imaging_cli._print(frame, "Segmentation vs truth-dir by split")
    out = capsys.readouterr().out
    assert "Extra-axial hemorrhage" in out and "Intraventricular hemorrhage" in out
    assert "Dice, mean" in out and "ABC/2 volume error, mean (mL)" in out
    assert not re.search(r"\b[a-z]+_[a-z_0-9]+\b|\b(eah|ivh)\b|Abc2", out), out
