"""Short display texts for values that may be missing (a series without an injury time has no day)."""

from __future__ import annotations

import math
from typing import Any


def number_text(value: Any, fmt: str = ".1f", unit: str = "", missing: str = "unknown") -> str:
    """`value` formatted (with a unit), or `missing` for None / NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return missing
    return f"{value:{fmt}}{unit}"


def day_text(days_from_injury: Any) -> str:
    """'day 2.5', or 'day unknown' when the injury time is not in the clinical data."""
    return f"day {number_text(days_from_injury)}"
