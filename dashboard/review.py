"""The QC review queue's filters. Pure pandas over the frame `queries.qc_queue` returns."""

from __future__ import annotations

import pandas as pd

PHI_FILTERS = ("any", "flagged", "clean")


def filtered_queue(queue: pd.DataFrame, centers: list[str], statuses: list[str], reason: str,
                   phi: str) -> pd.DataFrame:
    """The review queue narrowed by center, QC status, a reason substring and the PHI flag.

    `phi` is 'any', 'flagged' (series whose headers carried direct identifiers) or 'clean'.
    """
    keep = queue["center"].isin(centers) & queue["qc_status"].isin(statuses)
    if reason:
        keep &= queue["qc_reasons"].str.contains(reason, case=False, regex=False)
    if phi == "flagged":
        keep &= queue["phi_flag"]
    elif phi == "clean":
        keep &= ~queue["phi_flag"]
    return queue[keep].reset_index(drop=True)
