"""Everything a person reads on a dashboard page run under AppTest, as (where, text) pairs.

Titles, markdown, captions, alerts, metrics, widget labels, options and help, expander labels, table
headers (after the column configuration renames them) and text cells, and Plotly figures' titles, axis
titles, legend entries, annotations, category labels and hover templates. `code_words` finds the
machine names among them (snake_case, `hematoma_ml`), and `none_cells` the empty cells a table would
show as "None".
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from typing import Any

import pandas as pd
from streamlit.testing.v1 import AppTest

# A machine name: lower-case words joined by underscores (hematoma_ml, auto_failed, created_at).
CODE_WORD = re.compile(r"(?<![\w./-])[a-z][a-z0-9]*(?:_[a-z0-9]+)+(?![\w/-])")
# The data dictionary's own table lists the machine names beside their labels: that is what it is for.
DICTIONARY_HEADERS = ["Name", "Group", "Label", "Unit", "Definition", "Values"]
_TEXT_ELEMENTS = {"title", "header", "subheader", "markdown", "caption", "text", "error", "warning", "info",
                  "success", "exception", "code", "toast"}
_OPTION_WIDGETS = {"radio", "selectbox", "multiselect", "select_slider", "button_group"}


def visible_text(at: AppTest) -> Iterator[tuple[str, str]]:
    """(where, text) for every piece of text the page shows or offers."""
    for node in at._tree:
        kind = getattr(node, "type", "")
        where = f"{kind}"
        if kind in _TEXT_ELEMENTS:
            yield where, _strip_html(str(node.value))
        elif kind == "metric":
            yield where, f"{node.label}: {node.value}"
        elif kind in ("expander", "tab"):
            yield where, str(getattr(node, "label", ""))
        elif kind == "dataframe":
            yield from _table_text(node)
        elif kind == "plotly_chart" or (kind == "unknown" and hasattr(node.proto, "spec")):
            yield from _figure_text(json.loads(node.proto.spec or "{}"))
        elif hasattr(node, "label") and isinstance(getattr(node, "label", None), str):
            yield f"{kind} label", node.label
            if kind in _OPTION_WIDGETS:
                for option in getattr(node, "options", []):
                    yield f"{kind} option ({node.label})", str(option)
            helptext = getattr(node.proto, "help", "")
            if helptext:
                yield f"{kind} help ({node.label})", helptext


def _strip_html(text: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", " ", text))


def table_frame(node: Any) -> pd.DataFrame:
    """A dataframe element's value with the headers its column configuration shows."""
    frame = node.value
    config = json.loads(getattr(node.proto, "columns", "") or "{}")
    renames = {}
    for key, spec in config.items():
        name = key.removeprefix("_pos:").removeprefix("col:") if isinstance(key, str) else key
        if isinstance(spec, dict) and spec.get("label"):
            renames[name] = spec["label"]
    return frame.rename(columns=renames)


def is_dictionary_table(frame: pd.DataFrame) -> bool:
    return [str(c) for c in frame.columns][: len(DICTIONARY_HEADERS)] == DICTIONARY_HEADERS


def _table_text(node: Any) -> Iterator[tuple[str, str]]:
    frame = table_frame(node)
    if is_dictionary_table(frame):
        return
    for column in frame.columns:
        yield "table header", str(column)
        values = frame[column]
        if values.dtype == object or pd.api.types.is_string_dtype(values):
            for cell in values.dropna().unique():
                yield f"table cell ({column})", str(cell)


def none_cells(at: AppTest) -> list[str]:
    """'table: column' for each column of a shown table with empty cells (shown as "None" by Streamlit)."""
    out = []
    for node in at._tree:
        if getattr(node, "type", "") == "dataframe":
            frame = table_frame(node)
            if is_dictionary_table(frame):
                continue
            out += [f"{list(frame.columns)[:3]}...: {column}" for column in frame.columns
                    if frame[column].isna().any()]
    return out


def _figure_text(spec: dict[str, Any]) -> Iterator[tuple[str, str]]:
    layout = spec.get("layout", {})
    yield from _titled("figure title", layout.get("title"))
    for key, axis in layout.items():
        if key.startswith(("xaxis", "yaxis")) and isinstance(axis, dict):
            yield from _titled("axis title", axis.get("title"))
    yield from _titled("legend title", (layout.get("legend") or {}).get("title"))
    for note in layout.get("annotations", []):
        yield "figure annotation", _strip_html(str(note.get("text", "")))
    for trace in spec.get("data", []):
        if trace.get("name") and trace.get("showlegend", True) is not False:
            yield "legend entry", str(trace["name"])
        if trace.get("hovertemplate"):
            yield "hover text", _strip_html(re.sub(r"%\{[^}]*\}|<extra>.*?</extra>", " ", trace["hovertemplate"]))
        for axis in ("x", "y"):
            values = trace.get(axis)
            if isinstance(values, list) and values and all(isinstance(v, str) for v in values):
                for v in sorted(set(values)):
                    yield "figure category", v


def _titled(where: str, title: Any) -> Iterator[tuple[str, str]]:
    text = title.get("text") if isinstance(title, dict) else title
    if text:
        yield where, _strip_html(str(text))


def code_words(at: AppTest) -> list[str]:
    """Each 'where: text' whose text has a machine name in it."""
    return [f"{where}: {text!r}" for where, text in visible_text(at) if CODE_WORD.search(text)]
