"""The QC review queue's pure parts: which series comes next, windows that show any image, class overlays, words.

Pure numpy / pandas; `pages/2_Quality_control.py` lays them out.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from registry.db.models import QC_AUTO_FAILED, QC_FAILED, QC_PASSED, QC_PENDING
from vocabulary import dictionary
from vocabulary.labels import LESION_CLASSES

NEEDS_DECISION = (QC_PENDING, QC_AUTO_FAILED)
VERDICTS = {QC_PASSED: "Pass: usable for analysis", QC_FAILED: "Fail: not usable"}
# Reasons a reviewer picks from (the automatic ones of the series come first, in words); free text is added.
COMMON_FAIL_REASONS = ["Motion artefact", "Incomplete head coverage", "Wrong series (not a head CT)",
                       "Slice thickness too large", "Metal / streak artefact", "Direct identifiers in headers",
                       "Contrast-enhanced scan", "Duplicate of another series"]
AUTO_WINDOW = "auto"


def status_words(status: str) -> str:
    return dictionary.label(status, "qc_status")


def reason_words(codes: str | list[str] | None) -> list[str]:
    """Automatic QC reason codes ('localizer, too_few_slices' or a list) as words; free-text reasons unchanged."""
    if not codes:
        return []
    items = [c.strip() for c in codes.split(",")] if isinstance(codes, str) else [str(c) for c in codes]
    return [dictionary.label(c, "qc_reason") if dictionary.entry(c, "qc_reason") else c for c in items if c]


def review_order(queue: pd.DataFrame) -> pd.DataFrame:
    """What needs a decision first (pending and auto-failed), oldest first; then the rest, oldest first."""
    needs = ~queue["qc_status"].isin(NEEDS_DECISION)
    return queue.assign(_later=needs).sort_values(["_later", "ingested_at"], kind="stable").drop(
        columns="_later").reset_index(drop=True)


def next_series(uids: list[str], current: str | None) -> str | None:
    """The series after `current` in the queue (wrapping around), None when no other is left."""
    others = [u for u in uids if u != current]
    if not others:
        return None
    if current not in uids:
        return others[0]
    i = uids.index(current)
    after = [u for u in uids[i + 1:] if u != current]
    return after[0] if after else others[0]


def search_queue(queue: pd.DataFrame, text: str) -> pd.DataFrame:
    """Rows whose series UID (e.g. its short reference), patient pseudonym, description or reasons contain `text`."""
    needle = text.strip().lstrip("…").lower()
    if not needle:
        return queue
    hay = (queue["series_uid"].astype(str) + " " + queue["pseudo_id"].astype(str) + " "
           + queue["description"].fillna("").astype(str) + " " + queue["qc_reasons"].fillna("").astype(str) + " "
           + queue["qc_reasons"].fillna("").map(lambda r: " ".join(reason_words(r))))
    return queue[hay.str.lower().str.contains(needle, regex=False)].reset_index(drop=True)


def queue_table(queue: pd.DataFrame) -> pd.DataFrame:
    """The queue as people read it: words for status and reasons, a short reference instead of the UID."""
    table = pd.DataFrame({
        "Reference": queue["series_uid"].map(dictionary.short_uid),
        "Center": queue["center"],
        "Patient": queue["pseudo_id"],
        "Day": queue["days_from_injury"].map(lambda d: "unknown" if pd.isna(d) else f"{d:.1f}"),
        "Series": queue["description"].fillna(""),
        "Slices": queue["slices"],
        "Thickness (mm)": queue["slice_thickness"],
        "Status": queue["qc_status"].map(status_words),
        "Why": queue["qc_reasons"].map(lambda r: "; ".join(reason_words(r))),
        "Identifiers in headers": queue["phi_tags"],
    })
    # The identifiers column only when a series has some: otherwise it is an empty column pushing others off-screen.
    return table if queue["phi_tags"].astype(bool).any() else table.drop(columns="Identifiers in headers")


def auto_window(image: np.ndarray) -> tuple[float, float]:
    """(level, width) spanning the image's 1st-99th percentile: shows any image, e.g. a topogram (a projection
    whose values are averages along the beam, mostly air, so a brain window shows it black)."""
    values = np.asarray(image, dtype=np.float32)
    lo, hi = np.percentile(values[np.isfinite(values)], [1, 99]) if values.size else (0.0, 1.0)
    width = float(hi - lo) if hi > lo else 1.0
    return float(lo) + width / 2.0, width


def is_localizer(image_type: str | None, reasons: str | None) -> bool:
    return "LOCALIZER" in (image_type or "").upper() or "localizer" in (reasons or "")


def class_overlay(grey: np.ndarray, labels: np.ndarray | None, alpha: float = 0.45) -> np.ndarray:
    """RGB of a grey slice with each lesion class of vocabulary.labels blended in its own colour."""
    rgb = np.repeat(np.asarray(grey, dtype=np.float32)[..., None], 3, axis=-1)
    if labels is not None:
        if labels.shape != grey.shape:
            raise ValueError(f"mask slice shape {labels.shape} differs from the image slice {grey.shape}")
        for c in LESION_CLASSES:
            where = labels == c.value
            if where.any():
                colour = np.array([int(c.colour[i:i + 2], 16) for i in (1, 3, 5)], dtype=np.float32)
                rgb[where] = (1 - alpha) * rgb[where] + alpha * colour
    return np.clip(rgb, 0, 255).astype(np.uint8)


def legend_html(labels: np.ndarray | None) -> str:
    """A colour key of the lesion classes present in the mask (all classes when None), as HTML."""
    present = set(np.unique(labels).tolist()) if labels is not None else {c.value for c in LESION_CLASSES}
    return " &nbsp; ".join(f'<span style="color:{c.colour}">&#9632;</span> {c.name}'
                           for c in LESION_CLASSES if c.value in present) or "no lesion in this mask"
