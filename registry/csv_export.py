"""CSV files people open in a spreadsheet: cells that a spreadsheet would run as a formula are neutralized.

A value such as `=HYPERLINK("http://...")` that arrived in an input file (a center code, a free-text
reason) would otherwise run when a coordinator opens the export in Excel or LibreOffice (CSV
injection, OWASP). Every CSV the project writes goes through `write_csv`; the rule follows OWASP:
a text cell starting with = + - @ or a tab/carriage return is prefixed with a single quote, which
spreadsheets show as text. Numbers, including negative ones, are written as they are.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import IO, Any

import pandas as pd

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


def neutralized_cell(value: Any) -> Any:
    """The value, with a leading ' when it is text a spreadsheet would evaluate as a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS) and not _PLAIN_NUMBER.match(value):
        return "'" + value
    return value


def neutralized(table: pd.DataFrame) -> pd.DataFrame:
    """A copy of the table whose text cells (and column names) cannot run as spreadsheet formulas."""
    out = table.copy()
    for column in out.columns:
        if out[column].dtype == object or pd.api.types.is_string_dtype(out[column]):
            out[column] = out[column].map(neutralized_cell)
    out.columns = [neutralized_cell(c) if isinstance(c, str) else c for c in out.columns]
    return out


def write_csv(table: pd.DataFrame, target: str | Path | IO[str], **to_csv: Any) -> None:
    """`DataFrame.to_csv` (without the index unless asked) with formula cells neutralized."""
    to_csv.setdefault("index", False)
    neutralized(table).to_csv(target, **to_csv)
