"""Tables on the command line that people read, and that a pipe to a file never cuts.

Rich sizes a table to the terminal and cuts what does not fit with "…"; piped to a file it assumes
80 columns, so UIDs and headers were lost exactly where a coordinator saves the output to send it on.
`print_table` measures the table and, when the output is not a terminal, prints it at its full
width; on a terminal long cells fold onto a second line instead of being cut. Headers are the data
dictionary's words with units; counts print as whole numbers with thousands separators.

It takes `registry.db.rows.Rows` (what the registry commands read, without pandas: start-up under a
second) or a DataFrame (imaging and prognosis tables); both are printed by the same rules, decided
from the values themselves.

Every package's `cli.py` uses this (registry is the leftmost package they all import).
"""

from __future__ import annotations

import datetime as dt
import math
from numbers import Real
from typing import TYPE_CHECKING, Any

from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

from registry.db.rows import Rows
from vocabulary.dictionary import heading

if TYPE_CHECKING:
    import pandas as pd


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _is_number(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def is_numeric_column(values: list[Any]) -> bool:
    """Some value present, and every present value a number (booleans are not)."""
    present = [v for v in values if not _is_missing(v)]
    return bool(present) and all(_is_number(v) for v in present)


def _all_whole(values: list[Any]) -> bool:
    """Every present value a whole number (counts that pandas turned into floats by a merge print as counts)."""
    return all(float(v) == round(float(v)) and abs(float(v)) < 2**53 for v in values if not _is_missing(v))


def number_text(value: Any, integer: bool = False) -> str:
    """A number for people: '1,234' for counts, '0.736', '12.4', '1,523' by magnitude; '' when missing."""
    if _is_missing(value):
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
    if isinstance(value, dt.datetime):  # pandas' Timestamp too
        return value.strftime("%Y-%m-%d %H:%M")
    try:
        return number_text(value, integer)
    except (TypeError, ValueError):
        return str(value)


def frame_rows(frame: pd.DataFrame) -> Rows:
    """A DataFrame as Rows of Python values, every missing value (NaN, NA, NaT) None."""
    values = frame.astype(object).where(frame.notna(), None)
    return Rows(tuple(str(c) for c in frame.columns), [tuple(row) for row in values.itertuples(index=False)])


def table_cells(table: Rows | pd.DataFrame, labels: bool = True) -> tuple[list[str], list[list[str]], list[bool]]:
    """Headings (the dictionary's, when `labels`), every cell as text, and which columns are numeric."""
    rows = table if isinstance(table, Rows) else frame_rows(table)
    headings, numeric, integer = [], [], []
    for i, column in enumerate(rows.columns):
        values = [row[i] for row in rows.rows]
        headings.append(heading(column) if labels else column)
        numeric.append(is_numeric_column(values))
        integer.append(numeric[-1] and _all_whole(values))
    cells = [[cell_text(v, whole) for v, whole in zip(row, integer, strict=True)] for row in rows.rows]
    return headings, cells, numeric


def rich_table(table: Rows | pd.DataFrame, title: str | None = None, labels: bool = True) -> Table:
    """A rich Table: dictionary headings (when `labels`), numbers right-aligned and formatted."""
    headings, cells, numeric = table_cells(table, labels)
    out = Table(title=title, box=None, pad_edge=False, padding=(0, 2, 0, 0), title_justify="left")
    for name, right in zip(headings, numeric, strict=True):
        out.add_column(name, justify="right" if right else "left", overflow="fold")
    for row in cells:
        out.add_row(*(Text(cell) for cell in row))  # as typed: a "[...]" in a value is not rich markup
    return out


def plain_text(table: Rows | pd.DataFrame, title: str | None = None, labels: bool = True) -> str:
    """The table as lines of text at its full width: the layout of `rich_table` (two spaces between columns,
    numbers right-aligned) without styles, for output that is not a terminal.

    Written here rather than by rich: rich measured and laid out every cell twice, 0.44 s for the 1,077 rows
    of `registry missing --detail` (warm, in one process; more in a fresh one) against 0.025 s for padding
    strings to known widths. Widths are terminal cells (`rich.cells.cell_len`), so wide characters still
    line up.
    """
    headings, cells, numeric = table_cells(table, labels)
    widths = [max([cell_len(h), *(cell_len(row[i]) for row in cells)]) for i, h in enumerate(headings)]

    def line(values: list[str]) -> str:
        parts = [" " * (w - cell_len(v)) + v if right else v + " " * (w - cell_len(v))
                 for v, w, right in zip(values, widths, numeric, strict=True)]
        return "  ".join(parts).rstrip()

    return "\n".join([*([title] if title else []), line(headings), *(line(row) for row in cells)]) + "\n"


def print_table(console: Console, table: Rows | pd.DataFrame, title: str | None = None, labels: bool = True) -> None:
    """Print `table` (Rows or a DataFrame); never cut a cell. On a terminal long cells fold onto more lines; any
    other output (a pipe, a file) gets every line at its full width."""
    if console.is_terminal:
        console.print(rich_table(table, title, labels))
        return
    console.print(plain_text(table, title, labels), end="", markup=False, highlight=False, emoji=False,
                  soft_wrap=True, crop=False)
