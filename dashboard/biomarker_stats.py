"""Summaries behind the Biomarkers page: numeric feature names, admission scans, group summaries, ABC/2 agreement.

Pure pandas over the frame `queries.series_features` returns.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

META_COLUMNS = frozenset({"series_uid", "pseudo_id", "center", "days_from_injury", "source", "definitions_version",
                          "died", "gos_6m", "unfavourable"})
# Direction flags and normal-vector components are numbers but not biomarkers one compares across groups.
NOT_BIOMARKERS = ("midline_normal_", "largest_lesion_left", "midline_septum_rows")
FIRST = ("hematoma_ml", "edema_ml", "total_lesion_ml", "abc2_ml", "lesion_count", "midline_shift_mm")


def numeric_features(features: pd.DataFrame) -> list[str]:
    """Names of the numeric biomarker columns: the main ones (FIRST) first, then other volumes, then the rest."""
    names = [c for c in features.columns if c not in META_COLUMNS and not c.startswith(NOT_BIOMARKERS)
             and pd.api.types.is_numeric_dtype(features[c]) and not pd.api.types.is_bool_dtype(features[c])]
    return sorted(names, key=lambda c: (FIRST.index(c) if c in FIRST else len(FIRST), not c.endswith("_ml"), c))


def admission_rows(features: pd.DataFrame) -> pd.DataFrame:
    """Each patient's first scan per mask source (earliest day from injury)."""
    return (features.sort_values(["pseudo_id", "source", "days_from_injury"], na_position="last")
            .groupby(["pseudo_id", "source"], sort=False).head(1).reset_index(drop=True))


def summary_by_group(features: pd.DataFrame, feature: str, group: str) -> pd.DataFrame:
    """n, median and quartiles of `feature` per value of `group` (rows with the value missing are left out)."""
    data = features[[group, feature]].dropna()
    out = data.groupby(group)[feature].describe()[["count", "25%", "50%", "75%"]]
    out.columns = ["n", "q1", "median", "q3"]  # headings from the data dictionary's summary group
    out["n"] = out["n"].astype(int)
    return out.reset_index()


def outcome_labels(features: pd.DataFrame, outcome: str) -> pd.Series:
    """'died' / 'survived' or 'unfavourable (GOS 1-3)' / 'favourable (GOS 4-5)' per row; missing outcome -> NA."""
    if outcome == "mortality":
        return features["died"].map({True: "died", False: "survived"})
    return features["unfavourable"].map({True: "unfavourable (GOS 1-3)", False: "favourable (GOS 4-5)"})


def abc2_agreement(features: pd.DataFrame) -> dict[str, float]:
    """ABC/2 against segmented hematoma volume: n, mean and SD of the difference (ABC/2 - segmented), Pearson r."""
    pair = features[["abc2_ml", "hematoma_ml"]].astype(float).dropna()
    pair = pair[(pair["abc2_ml"] > 0) | (pair["hematoma_ml"] > 0)]
    diff = pair["abc2_ml"] - pair["hematoma_ml"]
    r = float(np.corrcoef(pair["abc2_ml"], pair["hematoma_ml"])[0, 1]) if len(pair) > 2 else float("nan")
    return {"n": int(len(pair)), "mean_difference_ml": float(diff.mean()) if len(pair) else float("nan"),
            "sd_difference_ml": float(diff.std()) if len(pair) > 1 else float("nan"), "pearson_r": r}


def traceable_values(features: pd.DataFrame, feature: str) -> pd.DataFrame:
    """The values of `feature` shown on the page, largest first, each with what finds its source: series_uid,
    source, pseudo_id, center, days_from_injury and value."""
    data = features.dropna(subset=[feature])
    out = data[["series_uid", "source", "pseudo_id", "center", "days_from_injury"]].assign(
        value=data[feature].astype(float))
    return out.sort_values("value", ascending=False, kind="stable").reset_index(drop=True)


def quantile_groups(values: pd.Series, n_groups: int, unit: str = "") -> pd.Series:
    """Quantile groups of a biomarker named by the values they hold: 'Q1: 0–1.2 mL', 'Q2: 1.4–6.0 mL', ...

    The ranges are the smallest and largest value in each group (pandas' interval edges would read
    '(-0.001, 1.19]'); tied values keep groups from splitting, so there may be fewer than `n_groups`."""
    codes = pd.qcut(values, n_groups, labels=False, duplicates="drop")
    suffix = f" {unit}" if unit else ""
    names = {}
    for code in sorted(codes.dropna().unique()):
        members = values[codes == code]
        low, high = members.min(), members.max()
        span = f"{low:.3g}" if low == high else f"{low:.3g}–{high:.3g}"
        names[code] = f"Q{int(code) + 1}: {span}{suffix}"
    return codes.map(names).astype("string")
