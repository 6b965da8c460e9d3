"""Reading a center's table as text, whatever the spreadsheet program wrote: encoding, delimiter, .xlsx.

Centers export from Excel, LibreOffice or their own databases: UTF-8 with or without a BOM,
UTF-16 ("Unicode text"), Windows-1252/latin-1, comma-, semicolon- or tab-separated, or an .xlsx
workbook (sometimes renamed .csv). The encoding is taken from a BOM, else UTF-8 if the bytes decode
as UTF-8, else charset-normalizer's best guess; the delimiter is the one that splits the header
into the most expected column names. When neither works, the error says what was found and what
is expected.
"""

from __future__ import annotations

import codecs
import csv
import io
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from charset_normalizer import from_bytes

DELIMITERS = (",", ";", "\t", "|")
DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "vertical bar"}
_XLSX_MAGIC = b"PK\x03\x04"  # a zip archive: .xlsx (and .ods, refused below)
_XLS_MAGIC = b"\xd0\xcf\x11\xe0"  # the old binary Excel format (OLE2)
_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


class TableReadError(ValueError):
    """The file could not be read as a table; the message names the file, what was found and what to do."""


@dataclass
class TextTable:
    """Every cell as text ('' when empty), with how the file was read (for the import report)."""

    table: pd.DataFrame
    how: str  # e.g. "CSV, utf-8, semicolon-separated" or "xlsx, sheet 'clinical'"


def read_table_as_text(path: Path, expected_columns: list[str]) -> TextTable:
    """Read a CSV (any common encoding and delimiter) or .xlsx file, every cell as text."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TableReadError(f"{path}: cannot be read ({exc.strerror})") from None
    if not data.strip():
        raise TableReadError(f"{path}: empty file (a header line is required)")
    if data.startswith(_XLSX_MAGIC):
        read = _read_xlsx(path, data)
        _refuse_title_rows(path, read.table, expected_columns)
        return read
    if data.startswith(_XLS_MAGIC):
        raise TableReadError(f"{path}: an old binary Excel workbook (.xls); save it as .xlsx or as "
                             "'CSV UTF-8' and import that")
    text, encoding = _decoded(path, data)
    delimiter = _delimiter(text, expected_columns)
    try:
        table = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, sep=delimiter,
                            skipinitialspace=True, quoting=csv.QUOTE_MINIMAL)
    except pd.errors.EmptyDataError:
        raise TableReadError(f"{path}: empty file (a header line is required)") from None
    except pd.errors.ParserError as exc:
        raise TableReadError(f"{path}: not a well-formed {DELIMITER_NAMES[delimiter]}-separated file: {exc}; "
                             "check for a stray delimiter or an unclosed quote on that line") from None
    _refuse_title_rows(path, table, expected_columns)
    return TextTable(table=table, how=f"CSV, {encoding}, {DELIMITER_NAMES[delimiter]}-separated")


TITLE_ROWS_SEARCHED = 10


def _refuse_title_rows(path: Path, table: pd.DataFrame, expected_columns: list[str]) -> None:
    """Raise when row 1 holds none of the column names but a row below it does: a title above the header.

    Spreadsheets often open with a title ("Clinical data, center IT064", merged across the columns) over
    the real header; read as it is, every expected column would be reported missing, which hides the cause.
    """
    expected = set(expected_columns)
    if expected & {str(c).strip() for c in table.columns}:
        return
    for index in range(min(TITLE_ROWS_SEARCHED, len(table))):
        if len(expected & {str(v).strip() for v in table.iloc[index]}) >= min(2, len(expected)):
            header_row = index + 2  # spreadsheet rows count from 1, and row 1 was read as the header
            above = "row 1" if header_row == 2 else f"rows 1 to {header_row - 1}"
            raise TableReadError(
                f"{path}: the column names are on row {header_row}, not on row 1; {above} above them look like a "
                f"title (often merged cells). Delete {above} so that the first row holds the column names "
                f"({', '.join(expected_columns[:3])}, ...) and import again")


def _read_xlsx(path: Path, data: bytes) -> TextTable:
    try:
        sheets = pd.read_excel(io.BytesIO(data), sheet_name=None, dtype=str, keep_default_na=False,
                               engine="openpyxl")
    except Exception as exc:  # noqa: BLE001 - openpyxl raises many types for a zip that is no workbook
        raise TableReadError(f"{path}: a zip archive but not a readable .xlsx workbook ({type(exc).__name__}); "
                             "save it from the spreadsheet as .xlsx or 'CSV UTF-8'") from None
    filled = {name: df for name, df in sheets.items() if len(df.columns)}
    if len(filled) != 1:
        found = ", ".join(repr(n) for n in filled) or "none with data"
        raise TableReadError(f"{path}: an .xlsx workbook must have exactly one sheet with data; found {found}")
    (name, table), = filled.items()
    return TextTable(table=table, how=f"xlsx, sheet {name!r}")


def _decoded(path: Path, data: bytes) -> tuple[str, str]:
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return data.decode(encoding), encoding
    if b"\x00" in data:
        # Text never holds NUL bytes, but UTF-16 without a BOM does, in every other byte (ASCII text);
        # it would otherwise "decode" as UTF-8 with a NUL after every character.
        sample = data[:4096]
        if sample[1::2].count(0) > 0.4 * len(sample) / 2:
            return data.decode("utf-16-le", errors="strict"), "utf-16-le"
        if sample[0::2].count(0) > 0.4 * len(sample) / 2:
            return data.decode("utf-16-be", errors="strict"), "utf-16-be"
        raise TableReadError(f"{path}: not a text file in a known encoding (binary data?); expected a CSV "
                             "in UTF-8, UTF-16 or latin-1, or an .xlsx workbook")
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    best = from_bytes(data).best()
    if best is None:
        raise TableReadError(f"{path}: not a text file in a known encoding (binary data?); expected a CSV "
                             "in UTF-8, UTF-16 or latin-1, or an .xlsx workbook")
    return str(best), best.encoding


def _delimiter(text: str, expected_columns: list[str]) -> str:
    # Chosen from the header, not by csv.Sniffer: we know which names must appear, and the delimiter
    # that yields the most of them is right even when data cells contain commas or semicolons.
    header = text.lstrip("\ufeff").splitlines()[0] if text.strip() else ""
    expected = set(expected_columns)

    def matches(delimiter: str) -> int:
        return sum(name.strip().strip('"') in expected for name in header.split(delimiter))

    best = max(DELIMITERS, key=matches)
    return best if matches(best) > 0 else ","
