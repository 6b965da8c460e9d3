"""Codes as people read them on the dashboard: audit actions, before/after states and empty cells, all through
the data dictionary (`vocabulary.dictionary`). Pure pandas."""

from __future__ import annotations

from typing import Any

import pandas as pd

from vocabulary import dictionary

EMPTY = ""  # an empty table cell: Streamlit shows a missing value as "None"

# Value codes that a key's values are drawn from (a QC status change reads "QC status: Passed").
_VALUE_GROUPS = {"qc_status": "qc_status", "status": "qc_status", "source": "mask_source"}


def value_text(key: str, value: Any) -> str:
    """One stored value in words: codes of a known group by their label, lists joined, None as nothing."""
    if value is None:
        return EMPTY
    if isinstance(value, list | tuple):
        return "; ".join(value_text(key, v) for v in value)
    group = _VALUE_GROUPS.get(key)
    if group and isinstance(value, str) and dictionary.entry(value, group):
        return dictionary.label(value, group)
    if isinstance(value, str) and dictionary.entry(value, "qc_reason"):
        return dictionary.label(value, "qc_reason")
    return str(value)


def change_text(state: dict[str, Any] | None) -> str:
    """An audit event's before or after state: 'QC status: Passed; QC reasons: Too few slices'."""
    if not state:
        return EMPTY
    return "; ".join(f"{dictionary.label(k)}: {value_text(k, v)}" for k, v in state.items())


def audit_table(events: pd.DataFrame) -> pd.DataFrame:
    """`queries.audit_trail` rows for people: action and entity in words, states as sentences, headings."""
    out = pd.DataFrame({
        "When": events["at"],
        "Who": events["actor"],
        "Action": events["action"].map(lambda a: dictionary.label(a, "audit")),
        "On": events["entity_type"].map(lambda e: dictionary.label(e, "audit") if dictionary.entry(e, "audit")
                                        else dictionary.label(e)),
        "Which": events["entity_id"].fillna(EMPTY).map(lambda u: dictionary.short_uid(u) if len(str(u)) > 20
                                                        else str(u)),
    })
    for column, title in (("before", "Before"), ("after", "After")):
        out[title] = [change_text(v) if isinstance(v, dict) else (EMPTY if v is None else str(v))
                      for v in events[column]]
    return out


def blank_missing(frame: pd.DataFrame, columns: list[str] | None = None) -> pd.DataFrame:
    """`frame` with missing values of `columns` (all) as empty text, so that no cell reads "None"."""
    out = frame.copy()
    for column in columns if columns is not None else list(out.columns):
        if out[column].isna().any():
            out[column] = out[column].astype(object).where(out[column].notna(), EMPTY)
    return out
