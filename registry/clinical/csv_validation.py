"""Validation of the centers' clinical and outcome CSV files (docs/data-formats.md). Pure.

A table of strings in (read with every cell as text), a table of typed valid rows and a table of
ALL errors out: one row per problem with the CSV line, column, value and the rule broken, so that a
center fixes its file in one round. Unknown and missing columns are errors too (a typo in a header
must not silently drop a variable).

The rules are declared once, as one pandera schema per table kind (`SCHEMAS`): ranges, allowed
values and cross-field consistency. Before the schema runs, each cell is parsed from text by its
column's type (`COLUMN_TYPES`); a cell that cannot be parsed is an error of its own ("not a date",
"not a number", "a finite number", a bare number in a date column) and is then treated as missing,
so one bad cell gives exactly one error.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors

from registry.identifiers import CENTER_CODE_RULE, PATIENT_ID_RULE, normalized_center, normalized_patient_id

ERROR_COLUMNS = ["row", "column", "value", "rule"]
FIRST_DATA_LINE = 2  # line 1 of the file is the header

# Injuries before this are outside any study this registry serves: a date this old is a typo or a
# spreadsheet default (Excel's day 0 is 1899-12-30, a 0 read as a Unix time is 1970-01-01).
EARLIEST_INJURY = dt.datetime(1990, 1, 1)
# The 6-month outcome (GOS-E/GOS at 6 months) is assessed in a window of 5 to 8 months after injury:
# a death or last contact later than 8 months is not a 6-month outcome.
FOLLOW_UP_WINDOW_DAYS = 240.0

# Column types: how a cell's text is parsed before the schema checks it.
TEXT, DATETIME, NUMBER, INTEGER, FLAG = "text", "datetime", "number", "integer", "flag"


def _in(low: float, high: float, what: str) -> pa.Check:
    return pa.Check.in_range(low, high, error=f"{what}: between {low:g} and {high:g}")


def _whole() -> pa.Check:
    return pa.Check(lambda s: s == np.round(s), element_wise=False, ignore_na=True, error="a whole number")


def _flag(what: str, required: bool = True) -> pa.Column:
    """A 0/1 column; `required=False`: a file may leave the column out."""
    return pa.Column(float, pa.Check.isin([0, 1], error=f"{what}: 0 (no) or 1 (yes)"), nullable=True,
                     required=required)


def _injury_not_in_future(s: pd.Series) -> pd.Series:
    return s <= pd.Timestamp(dt.datetime.now() + dt.timedelta(days=1))


_KEY_COLUMNS = {
    "center": pa.Column(object, pa.Check.str_matches(CENTER_CODE_RULE[0], error=CENTER_CODE_RULE[1]),
                        nullable=False),
    "patient_id": pa.Column(object, pa.Check.str_matches(PATIENT_ID_RULE[0], error=PATIENT_ID_RULE[1]),
                            nullable=False),
}

CLINICAL_SCHEMA = pa.DataFrameSchema(
    {
        **_KEY_COLUMNS,
        "injury_datetime": pa.Column("datetime64[ns]", [
            pa.Check.ge(pd.Timestamp(EARLIEST_INJURY), error=f"an injury on or after {EARLIEST_INJURY:%Y-%m-%d}"),
            pa.Check(_injury_not_in_future, error="an injury date not in the future"),
        ], nullable=True),
        "age": pa.Column(float, _in(0, 110, "age in years"), nullable=True),
        "sex": pa.Column(object, pa.Check.isin(["M", "F"], error="M or F"), nullable=True),
        "gcs_total": pa.Column(float, [_whole(), _in(3, 15, "GCS total")], nullable=True),
        "gcs_motor": pa.Column(float, [_whole(), _in(1, 6, "GCS motor score")], nullable=True),
        "pupils_unreactive": pa.Column(float, pa.Check.isin([0, 1, 2], error="0, 1 or 2 unreactive pupils"),
                                       nullable=True),
        "hypoxia": _flag("hypoxia"),
        "hypotension": _flag("hypotension"),
        "glucose_mmol_l": pa.Column(float, _in(1, 40, "glucose in mmol/L"), nullable=True),
        "hemoglobin_g_dl": pa.Column(float, _in(3, 22, "hemoglobin in g/dL"), nullable=True),
        "marshall_ct": pa.Column(float, pa.Check.isin([1, 2, 3, 4, 5, 6], error="Marshall CT class 1-6"),
                                 nullable=True),
        "tsah": _flag("tsah"),
        "edh": _flag("edh"),
        "major_extracranial_injury": _flag("major_extracranial_injury"),
        # Optional column: whether a mass lesion was surgically evacuated (Marshall class V).
        "evacuated_mass_lesion": _flag("evacuated_mass_lesion", required=False),
    },
    checks=[
        # GCS total = eye (1-4) + verbal (1-5) + motor (1-6), so total - motor lies between 2 and 9.
        pa.Check(lambda df: ~(df["gcs_total"] < df["gcs_motor"] + 2), name="gcs_total,gcs_motor",
                 error="GCS total >= motor + 2 (eye and verbal are at least 1 each)"),
        pa.Check(lambda df: ~(df["gcs_total"] > df["gcs_motor"] + 9), name="gcs_total,gcs_motor",
                 error="GCS total <= motor + 9 (eye at most 4, verbal at most 5)"),
    ],
)

OUTCOME_SCHEMA = pa.DataFrameSchema(
    {
        **_KEY_COLUMNS,
        "gos_6m": pa.Column(float, pa.Check.isin([1, 2, 3, 4, 5], error="GOS 1 (dead) to 5 (good recovery)"),
                            nullable=True),
        "died": _flag("died"),
        "days_to_death_or_censor": pa.Column(float, [
            pa.Check.gt(0, error="more than 0 days after the injury"),
            pa.Check.le(FOLLOW_UP_WINDOW_DAYS,
                        error=f"within the 6-month follow-up window (at most {FOLLOW_UP_WINDOW_DAYS:g} days)"),
        ], nullable=True),
    },
    checks=[
        pa.Check(lambda df: ~(df["gos_6m"].notna() & df["died"].notna() & ((df["gos_6m"] == 1) != (df["died"] == 1))),
                 name="gos_6m,died", error="gos_6m == 1 (dead) if and only if died == 1"),
    ],
)

SCHEMAS: dict[str, pa.DataFrameSchema] = {"clinical": CLINICAL_SCHEMA, "outcomes": OUTCOME_SCHEMA}

COLUMN_TYPES: dict[str, str] = {
    "center": TEXT, "patient_id": TEXT, "sex": TEXT, "injury_datetime": DATETIME,
    "age": NUMBER, "glucose_mmol_l": NUMBER, "hemoglobin_g_dl": NUMBER, "days_to_death_or_censor": NUMBER,
    "gcs_total": INTEGER, "gcs_motor": INTEGER, "pupils_unreactive": INTEGER, "marshall_ct": INTEGER,
    "gos_6m": INTEGER,
    "hypoxia": FLAG, "hypotension": FLAG, "tsah": FLAG, "edh": FLAG, "major_extracranial_injury": FLAG, "died": FLAG,
    "evacuated_mass_lesion": FLAG,
}
_NORMALIZE: dict[str, Callable[[str], str]] = {
    "center": normalized_center, "patient_id": normalized_patient_id, "sex": str.upper,
}


def expected_columns(kind: str) -> list[str]:
    return list(_schema(kind).columns)


@dataclass
class ValidatedTable:
    """`valid`: typed rows with their CSV line in `row`; `errors`: row, column, value, rule."""

    valid: pd.DataFrame
    errors: pd.DataFrame
    header_errors: bool

    @property
    def invalid_rows(self) -> list[int]:
        return sorted(set(self.errors["row"]) - {1})

    def with_errors(self, more: list[dict[str, Any]]) -> ValidatedTable:
        """This table with `more` errors added and their rows moved out of `valid`."""
        if not more:
            return self
        errors = pd.concat([self.errors, pd.DataFrame(more, columns=ERROR_COLUMNS)], ignore_index=True)
        errors = errors.sort_values("row", kind="stable", ignore_index=True)
        bad = {e["row"] for e in more}
        return ValidatedTable(valid=self.valid[~self.valid["row"].isin(bad)].reset_index(drop=True),
                              errors=errors, header_errors=self.header_errors)


def validate_table(table: pd.DataFrame, kind: str) -> ValidatedTable:
    """Validate every row of a CSV read as text (`dtype=str, keep_default_na=False`); all errors at once."""
    schema = _schema(kind)
    expected = list(schema.columns)
    errors: list[dict[str, Any]] = []
    columns = [str(c).strip() for c in table.columns]
    table = table.set_axis(columns, axis=1)
    for column in columns:
        if column not in expected:
            rule = f"unknown column (expected: {', '.join(expected)})"
            errors.append({"row": 1, "column": column, "value": "", "rule": rule})
    for column in expected:
        if column not in columns and schema.columns[column].required:
            errors.append({"row": 1, "column": column, "value": "", "rule": "missing column"})
    header_errors = bool(errors)
    if header_errors:
        return ValidatedTable(valid=pd.DataFrame(columns=["row", *expected]),
                              errors=pd.DataFrame(errors, columns=ERROR_COLUMNS), header_errors=True)
    # An optional column the file leaves out is not read at all: an import then leaves its stored values alone.
    expected = [c for c in expected if c in columns]

    text = table[expected].copy()
    text.index = pd.RangeIndex(FIRST_DATA_LINE, FIRST_DATA_LINE + len(text))
    text = text.map(lambda v: "" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v).strip())
    typed = pd.DataFrame(index=text.index)
    for column in expected:
        typed[column], parse_errors = _parsed(text[column], COLUMN_TYPES[column], _NORMALIZE.get(column))
        errors.extend({"row": line, "column": column, "value": text.at[line, column], "rule": rule}
                      for line, rule in parse_errors)
    errors.extend(_schema_errors(schema, typed, text))

    bad_lines = {e["row"] for e in errors}
    first_line: dict[tuple[str, str], int] = {}
    for line in typed.index:
        key = (typed.at[line, "center"], typed.at[line, "patient_id"])
        if line in bad_lines or None in key:
            continue
        if key in first_line:
            rule = f"duplicate patient: center {key[0]} patient_id already on line {first_line[key]}"
            errors.append({"row": line, "column": "patient_id", "value": text.at[line, "patient_id"], "rule": rule})
        else:
            first_line[key] = line

    errors_df = pd.DataFrame(errors, columns=ERROR_COLUMNS).sort_values("row", kind="stable", ignore_index=True)
    good = typed.loc[[line for line in typed.index if line not in set(errors_df["row"])]]
    # object dtype keeps ints as ints and missing as None (a numeric column with gaps would become float)
    valid = [{"row": int(line), **{c: _python_value(good.at[line, c], COLUMN_TYPES[c]) for c in expected}}
             for line in good.index]
    valid_df = pd.DataFrame(valid, columns=["row", *expected], dtype=object)
    return ValidatedTable(valid=valid_df, errors=errors_df, header_errors=False)


_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?$")
_NUMBER_ONLY = re.compile(r"^[+-]?\d+([.,]\d+)?$")
DATE_RULE = "a date as YYYY-MM-DD or YYYY-MM-DDTHH:MM (ISO 8601)"


def _parsed(cells: pd.Series, kind: str, normalize: Callable[[str], str] | None) -> tuple[pd.Series, list]:
    """The column typed (missing as None/NaN/NaT) and the (line, rule) of every cell that could not be parsed."""
    errors: list[tuple[int, str]] = []
    values: list[Any] = []
    for line, cell in cells.items():
        if cell == "":
            values.append(None)
            continue
        try:
            values.append(_parse_cell(cell, kind, normalize))
        except ValueError as exc:
            errors.append((line, str(exc)))
            values.append(None)
    if kind == DATETIME:
        return pd.Series(pd.to_datetime(pd.Series(values, dtype=object)).values, index=cells.index), errors
    if kind == TEXT:
        return pd.Series(values, index=cells.index, dtype=object), errors
    return pd.Series([np.nan if v is None else v for v in values], index=cells.index, dtype=float), errors


def _parse_cell(cell: str, kind: str, normalize: Callable[[str], str] | None) -> Any:
    if kind == TEXT:
        return normalize(cell) if normalize else cell
    if kind == DATETIME:
        if _NUMBER_ONLY.match(cell):
            # A bare number here is a spreadsheet's serial date (days since 1899-12-30) or a 0 for
            # "unknown"; read as a date it would become 1900 or 1970.
            raise ValueError(f"a number, not a date (an Excel serial date or 0?): write {DATE_RULE}; "
                             "leave the cell empty when unknown")
        if not _ISO_DATE.match(cell):
            raise ValueError(f"not a date: write {DATE_RULE}")
        try:
            value = dt.datetime.fromisoformat(cell.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"not a calendar date: write {DATE_RULE}") from None
        # Stored as local wall time, like DICOM acquisition times, so days from injury compare like with like.
        return value.replace(tzinfo=None)
    try:
        number = float(cell)
    except ValueError:
        hint = " (use a point, not a comma, for decimals)" if "," in cell else ""
        raise ValueError(f"not a number{hint}") from None
    if not math.isfinite(number):
        raise ValueError("a finite number (not inf or nan); leave the cell empty when unknown")
    if kind in (INTEGER, FLAG) and number != round(number):
        raise ValueError("a whole number" if kind == INTEGER else "0 (no) or 1 (yes)")
    return number


def _schema_errors(schema: pa.DataFrameSchema, typed: pd.DataFrame, text: pd.DataFrame) -> list[dict[str, Any]]:
    try:
        schema.validate(typed, lazy=True)
    except SchemaErrors as exc:
        cases = exc.failure_cases
    else:
        return []
    errors: list[dict[str, Any]] = []
    seen: set[tuple[int, str, str]] = set()
    for case in cases.itertuples(index=False):
        if case.index is None or pd.isna(case.index):
            continue  # a dtype failure of a whole column: impossible after parsing, reported per cell otherwise
        line = int(case.index)
        rule = "required" if case.check == "not_nullable" else str(case.check)
        if case.schema_context == "DataFrameSchema":
            # A cross-field check: report it once per row, on all the columns it involves, with their values.
            name = next((c.name for c in schema.checks if c.error == rule), "") or ""
            involved = [c for c in name.split(",") if c in text.columns]
            column = ",".join(involved)
            value = ", ".join(f"{c}={text.at[line, c]}" for c in involved)
        else:
            column = str(case.column)
            value = text.at[line, column]
        key = (line, column, rule)
        if key not in seen:
            seen.add(key)
            errors.append({"row": line, "column": column, "value": value, "rule": rule})
    return errors


def _python_value(value: Any, kind: str) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT:
        return None
    if kind == DATETIME:
        return pd.Timestamp(value).to_pydatetime()
    if kind in (INTEGER, FLAG):
        return int(value)
    if kind == NUMBER:
        return float(value)
    return value


def _schema(kind: str) -> pa.DataFrameSchema:
    try:
        return SCHEMAS[kind]
    except KeyError:
        raise ValueError(f"unknown table kind {kind!r}; expected one of {', '.join(SCHEMAS)}") from None
