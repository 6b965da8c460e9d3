"""A dashboard upload of a clinical or outcome table (CSV or .xlsx) -> `registry.clinical.csv_import.import_table`.

A coordinator may upload rows of their own center only: rows naming another center are listed and
nothing is imported. The uploaded bytes live in a private temporary file for the import only.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from sqlalchemy import Engine

from registry.clinical.csv_validation import expected_columns
from registry.clinical.table_reading import read_table_as_text
from registry.home import Home
from registry.identifiers import normalized_center

TABLE_KINDS = ("clinical", "outcomes")
SUFFIXES = (".csv", ".xlsx", ".txt", ".tsv")


class OutsideCenter(ValueError):
    """Rows of another center in a coordinator's upload; `lines` are their line numbers in the file."""

    def __init__(self, name: str, center: str, lines: list[int]) -> None:
        shown = ", ".join(map(str, lines[:20])) + (f" and {len(lines) - 20} more" if len(lines) > 20 else "")
        super().__init__(f"{name}: line(s) {shown} name another center than {center}; you may upload rows of "
                         f"your own center only. Nothing was imported.")
        self.lines = lines


def lines_outside_center(path: Path, kind: str, center: str) -> list[int]:
    """Line numbers (header = line 1) whose `center` cell is not `center` (as the registry normalizes codes)."""
    table = read_table_as_text(path, expected_columns(kind)).table
    if "center" not in table.columns:
        return []  # the import names the missing column itself
    own = normalized_center(center)
    return [i + 2 for i, value in enumerate(table["center"]) if normalized_center(str(value)) != own]


def import_uploaded_table(engine: Engine, home: Home, name: str, data: bytes, kind: str, *,
                          center_scope: str | None, actor: str, create: bool = False):  # -> ImportReport
    """Import an uploaded table; `center_scope` (a coordinator's center) refuses rows of other centers."""
    from registry.clinical.csv_import import import_table

    if kind not in TABLE_KINDS:
        raise ValueError(f"unknown table kind {kind!r}: one of {', '.join(TABLE_KINDS)}")
    suffix = Path(name).suffix.lower()
    if suffix not in SUFFIXES:
        raise ValueError(f"{name}: a clinical or outcome table is a .csv or .xlsx file")
    folder = home.root / "spool" / "tables"
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="upload-", suffix=suffix, dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        path = Path(tmp)
        if center_scope is not None and (lines := lines_outside_center(path, kind, center_scope)):
            raise OutsideCenter(name, center_scope, lines)
        return import_table(engine, home, path, kind, actor=actor, create=create)
    finally:
        Path(tmp).unlink(missing_ok=True)
