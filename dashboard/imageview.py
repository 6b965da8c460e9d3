"""CT display: HU windowing, mask overlays and thumbnail choice. Pure numpy (arrays (z, y, x) in HU).

Window presets are the usual radiology ones (level / width in HU).
"""

from __future__ import annotations

import numpy as np

from vocabulary.labels import LESION_CLASSES, UNANNOTATED

WINDOW_PRESETS: dict[str, tuple[float, float]] = {
    "brain": (40.0, 80.0),
    "subdural": (75.0, 215.0),
    "bone": (600.0, 2800.0),
}


def _rgb(hex_colour: str) -> tuple[int, int, int]:
    h = hex_colour.lstrip("#")
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


# One colour per lesion class, from the label map (vocabulary.labels): IPH red, extra-axial orange,
# edema blue, IVH purple.
LABEL_COLOURS: dict[int, tuple[int, int, int]] = {c.value: _rgb(c.colour) for c in LESION_CLASSES}


def legend_html(present: set[int] | None = None) -> str:
    """A one-line HTML legend, a coloured square and the class name per lesion class (only `present` ones if given)."""
    items = [f'<span style="display:inline-block;width:0.9em;height:0.9em;background:{c.colour};'
             f'margin:0 0.3em 0 0.9em;vertical-align:middle"></span>{c.name}'
             for c in LESION_CLASSES if present is None or c.value in present]
    return "".join(items)


def windowed_uint8(hu: np.ndarray, level: float, width: float) -> np.ndarray:
    """Grey levels 0-255 for HU values shown through a window (level, width)."""
    if width <= 0:
        raise ValueError(f"window width must be positive, got {width}")
    low = level - width / 2.0
    scaled = (np.asarray(hu, dtype=np.float32) - low) * (255.0 / width)
    return np.clip(scaled, 0, 255).astype(np.uint8)


def overlay_rgb(grey: np.ndarray, labels: np.ndarray | None, alpha: float = 0.45) -> np.ndarray:
    """An RGB image of a grey slice with each mask label blended in its colour (no mask: plain grey)."""
    rgb = np.repeat(np.asarray(grey, dtype=np.float32)[..., None], 3, axis=-1)
    if labels is not None:
        if labels.shape != grey.shape:
            raise ValueError(f"mask slice shape {labels.shape} differs from the image slice {grey.shape}")
        for label, colour in LABEL_COLOURS.items():
            where = labels == label
            rgb[where] = (1 - alpha) * rgb[where] + alpha * np.asarray(colour, dtype=np.float32)
    return np.clip(rgb, 0, 255).astype(np.uint8)


def thumbnail_indices(n_slices: int, count: int = 8) -> list[int]:
    """`count` slice indices spread evenly over the series, skipping the first and last tenth (mostly air)."""
    if n_slices <= 0:
        return []
    if n_slices <= count:
        return list(range(n_slices))
    lo, hi = int(n_slices * 0.1), int(np.ceil(n_slices * 0.9)) - 1
    return sorted({int(round(i)) for i in np.linspace(lo, hi, count)})


def richest_slice(labels: np.ndarray | None, n_slices: int) -> int:
    """The slice with the most lesion voxels (the middle one when there is no mask or it has none); voxels a
    partial annotation left unannotated are no lesion."""
    lesion = None if labels is None else (labels > 0) & (labels != UNANNOTATED)
    if lesion is None or not lesion.any():
        return n_slices // 2
    return int(np.argmax(lesion.reshape(labels.shape[0], -1).sum(axis=1)))
