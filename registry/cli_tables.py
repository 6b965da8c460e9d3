"""Tables on the command line that people read, and that a pipe to a file never cuts.

Rich sizes a table to the terminal and cuts what does not fit with "…"; piped to a file it assumes
80 columns, so UIDs and headers were lost exactly where a coordinator saves the output to send it on.
`print_table` measures the table and, when the output is not a terminal, prints it at its full
width; on a terminal long cells fold onto a second line instead of being cut. Headers are the data
dictionary's words with units; counts print as whole numbers with thousands separators.

Every package's `cli.py` uses this (registry is the leftmost package they all import).
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

from vocabulary.dictionary import heading


def is_integer_column(values: pd.Series) -> bool:
    """Numeric with every present value a whole number (counts that pandas turned into floats by a merge)."""
    if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        return False
    present = pd.to_numeric(values, errors="coerce").dropna()
    return bool(len(present)) and bool((present == present.round()).all()) and bool((present.abs() < 2**53).all())


def number_text(value: Any, integer: bool = False) -> str:
    """A number for people: '1,234' for counts, '0.736', '12.4', '1,523' by magnitude; '' when missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if integer:
        return f"{int(round(float(value))):,}"
    if isinstance(value, int):
        return f"{value:,}"
    v = float(value)
    if v == 0:
        return "0"
    magnitude = abs(v)
    if magnitude >= 1000:
        return f"{v:,.0f}"
    if magnitude >= 100:
        return f"{v:.1f}"
    if magnitude >= 0.01:
        return f"{v:.3f}".rstrip("0").rstrip(".") if magnitude < 1 else f"{v:.2f}"
    return f"{v:.2g}"


def cell_text(value: Any, integer: bool = False) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list | tuple | set):
        return ", ".join(str(v) for v in value)
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%d %H:%M")
    try:
        return number_text(value, integer)
    except (TypeError, ValueError):
        return str(value)


def rich_table(frame: pd.DataFrame, title: str | None = None, labels: bool = True) -> Table:
    """A rich Table of `frame`: dictionary headings (when `labels`), numbers right-aligned and formatted."""
    table = Table(title=title, box=None, pad_edge=False, padding=(0, 2, 0, 0), title_justify="left")
    integer = {c: is_integer_column(frame[c]) for c in frame.columns}
    for column in frame.columns:
        numeric = pd.api.types.is_numeric_dtype(frame[column]) and not pd.api.types.is_bool_dtype(frame[column])
        name = heading(column) if labels and isinstance(column, str) else str(column)
        table.add_column(name, justify="right" if numeric else "left", overflow="fold")
    for row in frame.itertuples(index=False):
        table.add_row(*(cell_text(v, integer[c]) for c, v in zip(frame.columns, row, strict=True)))
    return table


def print_table(console: Console, frame: pd.DataFrame, title: str | None = None, labels: bool = True) -> None:
    """Print `frame` as a table; never cut a cell: full width when the output is not a terminal."""
    table = rich_table(frame, title, labels)
    if console.is_terminal:
        console.print(table)
        return
    wide = console.options.update(max_width=1_000_000)
    width = max(Measurement.get(console, wide, table).maximum, 20)
    # Console.print clamps `width` to the console's own (80 when piped), so widen the console itself.
    saved = console._width  # noqa: SLF001 - rich has a setter but no way to read back "not set"
    console.width = max(width, console.width)
    try:
        console.print(table, crop=False)
    finally:
        console._width = saved  # noqa: SLF001
