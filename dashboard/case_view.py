"""The case viewer's table of a patient's scans: one row per series and mask source, every lesion class's volume,
midline shift and lesion count under short headings that fit beside each other. Pure pandas."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from vocabulary.dictionary import describe, label, short_heading

# In this order; `hematoma_ml` is the intraparenchymal (label 1) volume where a series has no `iph_ml`.
SCAN_COLUMNS = ("days_from_injury", "source", "iph_ml", "eah_ml", "edema_ml", "ivh_ml", "midline_shift_mm",
                "lesion_count")


@dataclass(frozen=True)
class ScanTable:
    table: pd.DataFrame  # what the page shows, short headings
    help: dict[str, str]  # heading -> the dictionary's full description (the column's tooltip)


def scan_table(features: pd.DataFrame) -> ScanTable:
    """The scans of one patient (`queries.series_features` rows) for people: days as text ('unknown' without an
    injury time), mask source in words, volumes rounded to 0.1 mL; a class never measured shows an empty cell."""
    data = features.copy()
    if "iph_ml" not in data:
        data["iph_ml"] = data.get("hematoma_ml")
    elif "hematoma_ml" in data:
        data["iph_ml"] = data["iph_ml"].fillna(data["hematoma_ml"])
    out, help_text = {}, {}
    for name in SCAN_COLUMNS:
        values = data[name] if name in data else pd.Series([None] * len(data), index=data.index, dtype=object)
        if name == "days_from_injury":
            text = values.map(lambda d: "unknown" if pd.isna(d) else f"{d:.1f}")
        elif name == "source":
            text = values.map(lambda s: label(s, "mask_source"))
        elif name == "lesion_count":
            text = values.map(lambda v: "" if pd.isna(v) else f"{int(v)}")
        else:
            text = values.map(lambda v: "" if v is None or pd.isna(v) else f"{float(v):.1f}")
        title = short_heading(name)
        out[title] = text.to_numpy()
        help_text[title] = describe(name)
    return ScanTable(pd.DataFrame(out), help_text)
