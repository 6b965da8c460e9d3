"""The case viewer's CT-classification panel: each score with its components and where each came from, and a
reviewer's setting of a component (biomarkers.review_components). The table building is pure pandas."""

from __future__ import annotations

from typing import Any

import pandas as pd

from biomarkers.ct_scores import REVIEWABLE, SCORES
from vocabulary.dictionary import label

SOURCE_WORDS = {"measured": "measured", "reviewer": "reviewer-entered", "clinical_record": "clinical record",
                "not_recorded": "not recorded (taken as no)", "unknown": "unknown"}
COMPONENT_CHOICES = {"basal_cisterns": ("present", "compressed", "absent", "unset"),
                     "tsah": ("yes", "no", "unset"), "evacuated": ("yes", "no", "unset"), "edh": ("yes", "no", "unset")}
assert set(COMPONENT_CHOICES) == set(REVIEWABLE)


def _known(v: Any) -> bool:
    return v is not None and not (isinstance(v, float) and v != v)


def score_rows(values: dict[str, Any]) -> pd.DataFrame:
    """One row per score: its value (or range with the unknown components named)."""
    rows = []
    for name in SCORES:
        if f"{name}_low" not in values:
            continue
        value = values.get(name)
        if _known(value):
            text = f"{int(value)}"
        else:
            text = f"{int(values[f'{name}_low'])}–{int(values[f'{name}_high'])} " \
                   f"({', '.join(str(values.get(f'{name}_missing') or '').split(','))} unknown)"
        rows.append({"Score": label(name), "Value": text})
    return pd.DataFrame(rows, columns=["Score", "Value"])


def component_rows(values: dict[str, Any]) -> pd.DataFrame:
    """One row per component the scores use: value and source in words."""
    rows = []
    for name in sorted({u for _fn, uses in SCORES.values() for u in uses}):
        if f"ct_{name}_source" not in values:
            continue
        v = values.get(f"ct_{name}")
        if not _known(v):
            text = "unknown"
        elif isinstance(v, str):
            text = v
        else:
            text = "yes" if float(v) >= 0.5 else "no"
        rows.append({"Component": label(f"ct_{name}"), "Value": text,
                     "Source": SOURCE_WORDS.get(values[f"ct_{name}_source"], values[f"ct_{name}_source"])})
    return pd.DataFrame(rows, columns=["Component", "Value", "Source"])


def set_series_component(db_url: str, series_uid: str, component: str, value: str, reviewer: str,
                         center: str | None, note: str | None = None) -> None:
    """Store a reviewer's component for a series the user may see (audited), rescoring its stored features."""
    from sqlalchemy import select

    from biomarkers.review_components import set_component
    from dashboard import queries
    from registry.db.models import Series

    owner = queries.series_center(db_url, series_uid)
    if owner is None:
        raise ValueError(f"No series {series_uid} in the registry.")
    if center is not None and owner != center:
        raise PermissionError(f"Series {series_uid} belongs to center {owner}: you may only review center {center}.")
    with queries._session(db_url) as s, s.begin():
        sid = s.scalars(select(Series.id).where(Series.series_instance_uid == series_uid)).one()
        set_component(s, sid, component, value, reviewer, note or None)
    queries.clear_caches()


def outcome_by_class(data: pd.DataFrame, score: str, outcome_column: str) -> pd.DataFrame:
    """Per class of `score` (series where it is known): series, events and the event rate of `outcome_column`
    (`died` or `unfavourable`, True / False, missing outcomes left out)."""
    if score not in data or outcome_column not in data:
        return pd.DataFrame(columns=["class", "series", "events", "rate"])
    y = data[outcome_column].map(lambda v: None if v is None or v != v else float(bool(v)))
    keep = data[score].notna() & y.notna()
    table = pd.DataFrame({"class": data.loc[keep, score].astype(int), "event": y[keep].astype(float)})
    out = table.groupby("class")["event"].agg(series="size", events="sum").reset_index()
    out["rate"] = out["events"] / out["series"]
    return out


def outcome_by_class_figure(table: pd.DataFrame, title: str, outcome: str):
    """Bars of the event rate per class, with n above each."""
    import plotly.graph_objects as go

    fig = go.Figure(go.Bar(x=table["class"].astype(str), y=table["rate"],
                           text=[f"{int(e)}/{int(n)}" for e, n in zip(table["events"], table["series"], strict=True)],
                           textposition="outside"))
    fig.update_layout(title=title, xaxis_title="class", yaxis_title=f"{outcome} rate", yaxis_range=[0, 1.1],
                      height=320, margin={"t": 40, "b": 40})
    return fig
