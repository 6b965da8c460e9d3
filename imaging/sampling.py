"""Which series a teacher model labels for distillation: drawn by patient, stratified by center and scanner.

Pure: a DataFrame of candidate series in (one row per QC-passed series, as
`imaging.store.distillation_candidates` gives them), the drawn rows out.

- The unit drawn is the patient (a patient's admission and follow-up scans are alike, so a sample of
  more patients teaches the student more than the same number of series from fewer patients):
  each stratum's quota is first filled with one series per patient, then with further series of
  patients already drawn.
- Strata are (center, scanner): every scanner model of every center gets a share proportional to
  its series, and at least one series. When the limit is below the number of strata, the strata
  are the centers alone; a limit below the number of centers is refused (a center would go
  unrepresented).
- Within a stratum, patients with a manual annotation come first (their series teach with
  manual labels and let the report compare student and teacher with a reader), then patients
  the teacher has already labelled (a re-run, even with another seed, reuses that work), then
  the rest in a seeded random order.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

REQUIRED_COLUMNS = ("series_instance_uid", "patient_key", "center", "scanner", "annotated", "teacher_done")


def _quotas(sizes: pd.Series, limit: int) -> pd.Series:
    """Largest-remainder apportionment of `limit` over strata of `sizes` series, at least 1 each, capped at size."""
    share = sizes / sizes.sum() * limit
    quota = np.maximum(1, np.floor(share)).astype(int).clip(upper=sizes)
    # Hand-written apportionment (a dozen lines): no well-kept library offers largest remainder with floors and caps.
    while quota.sum() < limit:
        room = quota < sizes
        if not room.any():
            break
        remainder = (share - quota).where(room, -np.inf)
        quota[remainder.idxmax()] += 1
    while quota.sum() > limit:  # floors of 1 can overshoot: take back from the largest quotas
        quota[quota.idxmax()] -= 1
    return quota


def draw_sample(candidates: pd.DataFrame, series_limit: int | None, seed: int) -> pd.DataFrame:
    """The candidate rows to label, with a `stratum` column; all of them when `series_limit` is None or not below."""
    missing = [c for c in REQUIRED_COLUMNS if c not in candidates.columns]
    if missing:
        raise ValueError(f"candidate series lack the columns {missing}")
    if candidates.empty:
        raise LookupError("no QC-passed series to distil on: ingest the study and pass QC first "
                          "(`ctstudy registry qc`)")
    if series_limit is not None and series_limit < 1:
        raise ValueError(f"--series-limit must be at least 1, not {series_limit}")
    df = candidates.reset_index(drop=True).copy()
    n_centers = df["center"].nunique()
    n_strata = df.groupby(["center", "scanner"]).ngroups
    limit = len(df) if series_limit is None else min(series_limit, len(df))
    if limit < n_centers:
        raise ValueError(f"--series-limit {limit} is below the number of centers ({n_centers}); every center must be "
                         f"represented in the teacher's labels: raise it to at least {n_centers}")
    by_scanner = limit >= n_strata
    df["stratum"] = df["center"] + (" / " + df["scanner"] if by_scanner else "")

    rng = np.random.default_rng(seed)
    patients = df.groupby("patient_key", sort=True).agg(annotated=("annotated", "any"),
                                                        teacher_done=("teacher_done", "any"))
    patients["draw"] = rng.permutation(len(patients))
    patients = patients.sort_values(["annotated", "teacher_done", "draw"], ascending=[False, False, True])
    # Within a patient: annotated series first, then those already labelled, then registry order.
    df["_order"] = np.arange(len(df))
    df = df.sort_values(["annotated", "teacher_done", "_order"], ascending=[False, False, True])
    series_of = {k: list(g.index) for k, g in df.groupby(["stratum", "patient_key"], sort=False)}

    quotas = _quotas(df.groupby("stratum").size(), limit)
    chosen: list[int] = []
    for stratum, quota in quotas.items():
        queues = [list(series_of[(stratum, p)]) for p in patients.index if (stratum, p) in series_of]
        taken = 0
        while taken < quota and any(queues):
            for q in queues:  # one more series per patient per pass
                if q and taken < quota:
                    chosen.append(q.pop(0))
                    taken += 1
    return df.loc[sorted(chosen, key=lambda i: df.at[i, "_order"])].drop(columns="_order").reset_index(drop=True)


def sample_summary(sample: pd.DataFrame) -> pd.DataFrame:
    """Series and patients drawn per stratum, and how many of those series have a manual annotation."""
    return (sample.groupby("stratum", sort=True)
            .agg(series=("series_instance_uid", "size"), patients=("patient_key", "nunique"),
                 annotated=("annotated", "sum"))
            .reset_index())
