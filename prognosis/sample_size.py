"""Is the sample large enough for the model? Events per variable on the smaller outcome class, and
the sample-size criteria of Riley et al. for a binary outcome (BMJ 2020;368:m441; Stat Med 2019),
as R's `pmsampsize` computes them. Hand-written: no Python package implements them, and they are
three closed-form expressions.
"""

from __future__ import annotations

import math


def events_per_variable(n: int, events: int, n_parameters: int) -> dict[str, float]:
    """EPV counting the smaller outcome class (what limits a logistic model), per candidate parameter."""
    smaller = min(events, n - events)
    return {"smaller_class": int(smaller), "events_per_variable": smaller / max(1, n_parameters)}


def riley_sample_size(n_parameters: int, prevalence: float, r2_cs: float, shrinkage: float = 0.9,
                      delta: float = 0.05, margin: float = 0.05) -> dict[str, float]:
    """Minimum n of Riley's three criteria: (1) expected uniform shrinkage >= `shrinkage`; (2) an
    absolute difference <= `delta` between apparent and adjusted Nagelkerke R²; (3) the overall risk
    estimated within ± `margin`. `r2_cs` is the anticipated Cox-Snell R² (from a validated fit, or
    15 % of its maximum when nothing is known)."""
    phi = min(max(prevalence, 1e-6), 1 - 1e-6)
    ln_l0 = phi * math.log(phi) + (1 - phi) * math.log(1 - phi)
    max_r2 = 1 - math.exp(2 * ln_l0)
    r2 = min(max(r2_cs, 1e-6), max_r2 * 0.999)
    n1 = n_parameters / ((shrinkage - 1) * math.log(1 - r2 / shrinkage))
    s2 = r2 / (r2 + delta * max_r2)
    n2 = n_parameters / ((s2 - 1) * math.log(1 - r2 / s2))
    n3 = (1.96 / margin) ** 2 * phi * (1 - phi)
    need = math.ceil(max(n1, n2, n3))
    return {"n_criterion_1_shrinkage": math.ceil(n1), "n_criterion_2_r2": math.ceil(n2),
            "n_criterion_3_intercept": math.ceil(n3), "n_required": need, "events_required": math.ceil(need * phi),
            "epp_required": need * phi / n_parameters, "r2_cs_assumed": r2, "max_r2_cs": max_r2}
