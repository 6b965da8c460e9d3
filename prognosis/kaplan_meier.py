"""Kaplan-Meier survival by strata of a biomarker (e.g. admission hematoma tertiles) and the log-rank test."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from lifelines import KaplanMeierFitter
from lifelines.statistics import multivariate_logrank_test


@dataclass(frozen=True)
class KaplanMeierByStrata:
    curves: pd.DataFrame  # stratum, time, survival, lower, upper, at_risk
    counts: pd.DataFrame  # stratum, n, deaths
    logrank_statistic: float
    logrank_p: float
    variable: str


def quantile_strata(values: pd.Series, n_groups: int = 3, label: str | None = None) -> pd.Series:
    """Quantile groups of a biomarker labelled with their ranges (`T1 [0, 3.2]`...); ties may merge groups."""
    label = label or values.name or "value"
    groups = pd.qcut(values, n_groups, duplicates="drop")
    names = {iv: f"{label} Q{i + 1} ({iv.left:.3g}, {iv.right:.3g}]" for i, iv in enumerate(groups.cat.categories)}
    return groups.map(names).astype("string")


def kaplan_meier_by_strata(df: pd.DataFrame, strata: pd.Series, duration: str = "days_to_death_or_censor",
                           event: str = "died", alpha: float = 0.05) -> KaplanMeierByStrata:
    """KM curves (with Greenwood CIs) per stratum and the multivariate log-rank test across strata."""
    keep = strata.notna() & df[duration].notna() & df[event].notna()
    if keep.sum() == 0:
        raise ValueError(f"kaplan_meier_by_strata: no rows with {duration!r}, {event!r} and a stratum")
    d, s = df.loc[keep], strata[keep].astype(str)
    curves, counts = [], []
    for name in sorted(s.unique()):
        rows = s == name
        kmf = KaplanMeierFitter(alpha=alpha).fit(d.loc[rows, duration], d.loc[rows, event], label=name)
        sf = kmf.survival_function_.iloc[:, 0]
        ci = kmf.confidence_interval_survival_function_
        curves.append(pd.DataFrame({
            "stratum": name, "time": sf.index.to_numpy(), "survival": sf.to_numpy(),
            "lower": ci.iloc[:, 0].to_numpy(), "upper": ci.iloc[:, 1].to_numpy(),
            "at_risk": kmf.event_table["at_risk"].reindex(sf.index).to_numpy(),
        }))
        counts.append({"stratum": name, "n": int(rows.sum()), "deaths": int(d.loc[rows, event].sum())})
    test = multivariate_logrank_test(d[duration], s, d[event])
    return KaplanMeierByStrata(curves=pd.concat(curves, ignore_index=True), counts=pd.DataFrame(counts),
                               logrank_statistic=float(test.test_statistic), logrank_p=float(test.p_value),
                               variable=str(strata.name))

