"""Mean density (HU) of tissues and lesion classes."""

from __future__ import annotations

import numpy as np


def mean_hu(hu: np.ndarray, mask: np.ndarray) -> float:
    """Mean HU over `mask`; NaN for an empty mask."""
    n = np.count_nonzero(mask)
    return float(hu[mask].mean(dtype=np.float64)) if n else float("nan")
