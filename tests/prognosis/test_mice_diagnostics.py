"""Per-term diagnostics of the pooling over imputations, with mice's names and definitions: λ, riv, FMI."""

from __future__ import annotations

import numpy as np
import pytest

from prognosis.rubin import rubin_pool


def test_lambda_and_riv_follow_their_definitions() -> None:
    q = np.array([[1.0, 5.0], [2.0, 5.0], [3.0, 5.0]])  # the second parameter does not vary: no missing information
    u = np.full((3, 2, 2), 0.0)
    u[:, 0, 0], u[:, 1, 1] = 0.5, 0.2
    pooled = rubin_pool(q, u)
    b, w, m = 1.0, 0.5, 3
    t = w + (1 + 1 / m) * b
    assert pooled.riv[0] == pytest.approx((1 + 1 / m) * b / w)
    assert pooled.lam[0] == pytest.approx((1 + 1 / m) * b / t)
    assert pooled.riv[1] == 0 and pooled.lam[1] == 0 and pooled.fmi[1] == 0
    # The FMI's large-sample limit is λ: (r + 2 / (df + 3)) / (r + 1) -> r / (r + 1) = λ.
    assert pooled.lam[0] == pytest.approx(pooled.riv[0] / (1 + pooled.riv[0]))
    assert pooled.fmi[0] > pooled.lam[0]
