"""Validation of the centers' clinical and outcome CSV files (docs/data-formats.md). Pure.

A table of strings in (read with every cell as text), a table of typed valid rows and a table of
ALL errors out: one row per problem with the CSV line, column, value and the rule broken, so that a
center fixes its file in one round. Unknown and missing columns are errors too (a typo in a header
must not silently drop a variable).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

Flag = Annotated[int, Field(ge=0, le=1)]


class _Row(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    center: Annotated[str, Field(min_length=1, max_length=32)]
    patient_id: Annotated[str, Field(min_length=1, max_length=64)]

    @model_validator(mode="before")
    @classmethod
    def _empty_is_missing(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: (None if isinstance(v, str) and not v.strip() else v) for k, v in data.items()}
        return data


class ClinicalRow(_Row):
    """One patient's admission data: the IMPACT predictors and the center's CT reading."""

    injury_datetime: dt.datetime | None = None
    age: Annotated[float, Field(ge=0, le=110)] | None = None
    sex: Literal["M", "F"] | None = None
    gcs_total: Annotated[int, Field(ge=3, le=15)] | None = None
    gcs_motor: Annotated[int, Field(ge=1, le=6)] | None = None
    pupils_unreactive: Annotated[int, Field(ge=0, le=2)] | None = None
    hypoxia: Flag | None = None
    hypotension: Flag | None = None
    glucose_mmol_l: Annotated[float, Field(ge=1, le=40)] | None = None
    hemoglobin_g_dl: Annotated[float, Field(ge=3, le=22)] | None = None
    marshall_ct: Annotated[int, Field(ge=1, le=6)] | None = None
    tsah: Flag | None = None
    edh: Flag | None = None
    major_extracranial_injury: Flag | None = None

    @field_validator("injury_datetime")
    @classmethod
    def _local_wall_time(cls, value: dt.datetime | None) -> dt.datetime | None:
        # Stored as local wall time, like DICOM acquisition times, so days from injury compare like with like.
        return value.replace(tzinfo=None) if value is not None else None


class OutcomeRow(_Row):
    """Six-month outcome: GOS 1 (dead) - 5, death, days to death or last contact."""

    gos_6m: Annotated[int, Field(ge=1, le=5)] | None = None
    died: Flag | None = None
    days_to_death_or_censor: Annotated[float, Field(gt=0)] | None = None

    @model_validator(mode="after")
    def _gos_matches_death(self) -> OutcomeRow:
        if self.gos_6m is not None and self.died is not None and (self.gos_6m == 1) != (self.died == 1):
            raise ValueError("gos_6m == 1 (dead) if and only if died == 1")
        return self


ROW_MODELS: dict[str, type[_Row]] = {"clinical": ClinicalRow, "outcomes": OutcomeRow}
ERROR_COLUMNS = ["row", "column", "value", "rule"]
FIRST_DATA_LINE = 2  # line 1 of the file is the header


def expected_columns(kind: str) -> list[str]:
    return list(_model(kind).model_fields)


@dataclass
class ValidatedTable:
    """`valid`: typed rows with their CSV line in `row`; `errors`: row, column, value, rule."""

    valid: pd.DataFrame
    errors: pd.DataFrame
    header_errors: bool

    @property
    def invalid_rows(self) -> list[int]:
        return sorted(set(self.errors["row"]) - {1})


def validate_table(table: pd.DataFrame, kind: str) -> ValidatedTable:
    """Validate every row of a CSV read as text (`dtype=str, keep_default_na=False`); all errors at once."""
    model = _model(kind)
    expected = list(model.model_fields)
    errors: list[dict[str, Any]] = []
    columns = [str(c).strip() for c in table.columns]
    table = table.set_axis(columns, axis=1)
    for column in columns:
        if column not in expected:
            rule = f"unknown column (expected: {', '.join(expected)})"
            errors.append({"row": 1, "column": column, "value": "", "rule": rule})
    for column in expected:
        if column not in columns:
            errors.append({"row": 1, "column": column, "value": "", "rule": "missing column"})
    header_errors = bool(errors)
    present = [c for c in columns if c in expected]

    valid: list[dict[str, Any]] = []
    first_line: dict[tuple[str, str], int] = {}
    for i, record in enumerate(table[present].to_dict("records")):
        line = i + FIRST_DATA_LINE
        try:
            row = model.model_validate(record)
        except ValidationError as exc:
            for err in exc.errors():
                column = str(err["loc"][0]) if err["loc"] else "/".join(c for c in ("gos_6m", "died") if c in present)
                value = record.get(column, "") if err["loc"] else ""
                rule = err["msg"].removeprefix("Value error, ")
                errors.append({"row": line, "column": column, "value": "" if value is None else str(value),
                               "rule": rule})
            continue
        key = (row.center, row.patient_id)
        if key in first_line:
            rule = f"duplicate patient: center {row.center} patient_id already on line {first_line[key]}"
            errors.append({"row": line, "column": "patient_id", "value": row.patient_id, "rule": rule})
            continue
        first_line[key] = line
        valid.append({"row": line, **row.model_dump()})

    errors_df = pd.DataFrame(errors, columns=ERROR_COLUMNS)
    # object dtype keeps ints as ints and missing as None (a numeric column with gaps would become float)
    valid_df = pd.DataFrame(valid, columns=["row", *expected], dtype=object)
    return ValidatedTable(valid=valid_df, errors=errors_df, header_errors=header_errors)


def _model(kind: str) -> type[_Row]:
    try:
        return ROW_MODELS[kind]
    except KeyError:
        raise ValueError(f"unknown table kind {kind!r}; expected one of {', '.join(ROW_MODELS)}") from None
