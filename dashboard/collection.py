"""Collection progress computed from per-center counts: arrivals over time and progress against targets.

Pure pandas: the counts come from `dashboard.queries`, the targets from `targets.toml`.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pandas as pd

from registry.collection.targets import TARGET_METRICS

DEFAULT_TARGETS_FILE = Path(__file__).with_name("targets.toml")
# A data home may carry its own targets; it replaces the packaged defaults key by key.
HOME_TARGETS_FILE = "dashboard-targets.toml"

COUNT_COLUMNS = [
    "patients", "series", "qc_passed", "qc_failed", "qc_auto_failed", "qc_pending",
    "with_clinical", "with_outcome", "with_followup", "series_annotated", "series_segmented",
]

# The counts shown above the per-center table, in its order.
HEADLINE_COLUMNS = ["patients", "series", "qc_passed", "qc_failed", "qc_auto_failed", "qc_pending",
                    "series_annotated"]


def totals_row(counts: pd.DataFrame) -> pd.Series:
    """Column sums of the per-center counts (0 for an empty table)."""
    return counts[COUNT_COLUMNS].sum().astype(int) if len(counts) else pd.Series(0, index=COUNT_COLUMNS)


def daily_counts(events: pd.DataFrame) -> pd.DataFrame:
    """Arrivals per center, kind and day (column `n`), from one row per arrival (center, kind, at)."""
    return (events.assign(date=pd.to_datetime(events["at"]).dt.floor("D"))
            .groupby(["center", "kind", "date"]).size().rename("n").reset_index())


def cumulative_by_center(events: pd.DataFrame) -> pd.DataFrame:
    """Cumulative counts per center and kind by day, from one row per arrival (center, kind, at)."""
    if events.empty:
        return pd.DataFrame(columns=["center", "kind", "date", "cumulative"])
    return cumulative_from_daily(daily_counts(events))


def cumulative_from_daily(daily: pd.DataFrame) -> pd.DataFrame:
    """Cumulative counts per center and kind by day, from counts per day (center, kind, date, n), e.g. the
    database's own (`queries.arrival_counts`)."""
    if daily.empty:
        return pd.DataFrame(columns=["center", "kind", "date", "cumulative"])
    daily = daily.sort_values(["center", "kind", "date"]).reset_index(drop=True)
    daily["cumulative"] = daily.groupby(["center", "kind"])["n"].cumsum()
    return daily.drop(columns="n").reset_index(drop=True)


def load_targets(home_root: Path | None = None) -> dict:
    """Study and per-center targets: the packaged defaults, overridden by `<home>/dashboard-targets.toml`."""
    targets = tomllib.loads(DEFAULT_TARGETS_FILE.read_text())
    if home_root is not None and (home_root / HOME_TARGETS_FILE).is_file():
        path = home_root / HOME_TARGETS_FILE
        try:
            override = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"{path}: not valid TOML ({exc})") from exc
        targets["study"] = {**targets.get("study", {}), **override.get("study", {})}
        targets["center"] = {**targets.get("center", {}), **override.get("center", {})}
    for scope, values in [("study", targets.get("study", {})), *targets.get("center", {}).items()]:
        for key, value in values.items():
            if key not in TARGET_METRICS:
                raise ValueError(f"targets [{scope}]: unknown target {key!r} (known: {', '.join(TARGET_METRICS)})")
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"targets [{scope}] {key}: a positive whole number is required, got {value!r}")
    return targets


def study_defaults(home_root: Path | None = None) -> dict[str, int]:
    """Study-wide default targets: dashboard/targets.toml (and a home's dashboard-targets.toml, if an older
    deployment has one). Admins override them, and set per-center targets, in the registry."""
    return dict(load_targets(home_root).get("study", {}))


def file_center_targets(home_root: Path | None = None) -> dict[str, dict[str, int]]:
    """Per-center targets still in a targets file (imported into the registry once by an admin)."""
    return {code: dict(v) for code, v in load_targets(home_root).get("center", {}).items()}


def with_file_targets(stored: pd.DataFrame, file_centers: dict[str, dict[str, int]]) -> pd.DataFrame:
    """Stored targets plus per-center ones still only in an old targets file (a stored one wins)."""
    have = set(zip(stored["center"], stored["metric"], strict=True))
    extra = [{"center": code, "metric": m, "target": v, "updated_at": None, "updated_by": "targets file"}
             for code, values in file_centers.items() for m, v in values.items() if (code, m) not in have]
    return pd.concat([stored, pd.DataFrame(extra, columns=stored.columns)], ignore_index=True) if extra else stored


def targets_by_center(counts: pd.DataFrame, stored: pd.DataFrame) -> pd.DataFrame:
    """One row per center with stored targets and metric: center, label, done, target, fraction (capped at 1)."""
    rows = []
    for r in stored.dropna(subset=["center"]).itertuples():
        line = counts[counts["center"] == r.center]
        if line.empty:
            continue
        done = int(progress_against_targets(totals_row(line), {r.metric: int(r.target)})["done"].iloc[0])
        rows.append({"center": r.center, "metric": r.metric, "label": TARGET_METRICS[r.metric], "done": done,
                     "target": int(r.target), "fraction": min(done / int(r.target), 1.0)})
    return pd.DataFrame(rows, columns=["center", "metric", "label", "done", "target", "fraction"])


def progress_against_targets(totals: pd.Series, targets: dict[str, int]) -> pd.DataFrame:
    """One row per target: label, done, target and the fraction reached (capped at 1 for the bar)."""
    done_of = {
        "patients": int(totals["patients"]),
        "series_qc_passed": int(totals["qc_passed"]),
        "series_annotated": int(totals["series_annotated"]),
        "series_segmented": int(totals["series_segmented"]),
    }
    rows = [
        {"metric": key, "label": TARGET_METRICS[key], "done": done_of[key], "target": int(target),
         "fraction": min(done_of[key] / target, 1.0)}
        for key, target in targets.items()
    ]
    return pd.DataFrame(rows, columns=["metric", "label", "done", "target", "fraction"])
