"""Images of what real collections contain and QC must catch (pure: arrays in, arrays out).

The study writes them as extra series beside the patients' real ones (see synthetic.study) and
lists each in truth/defects.csv with the reason the registry's QC should give.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

# kind -> expected QC reason (registry vocabulary). metal_artifact may pass automatic QC: a reviewer catches it.
EXPECTED_REASONS = {
    "localizer": "localizer",
    "missing_slices": "missing_slices",
    "metal_artifact": "metal_artifact",
    "not_ct": "not_ct",
    "phi_in_header": "phi_in_header",
    "duplicate": "duplicate",
    "truncated": "truncated",
    "not_dicom": "not_dicom",
    "invalid_value": "invalid_value",
}
DEFECT_KINDS = tuple(EXPECTED_REASONS)
FAKE_IDENTITIES = (("ROSSI^MARIO", "M"), ("BIANCHI^GIULIA", "F"), ("NOVAK^JANEZ", "M"), ("PAPADOPOULOU^ELENI", "F"),
                   ("FERRARI^LUCA", "M"))


def with_metal_streaks(hu: np.ndarray, spacing: tuple[float, float, float], center_rc: tuple[float, float],
                       z_range: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """`hu` with an intracranial metal object (e.g. an ICP probe) and its bright/dark streaks on some slices."""
    out = hu.copy()
    _, dy, dx = spacing
    rows, cols = hu.shape[1:]
    yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float32)
    ry, rx = (yy - center_rc[0]) * dy, (xx - center_rc[1]) * dx
    r = np.hypot(ry, rx)
    streaks = np.zeros((rows, cols), dtype=np.float32)
    for angle in rng.uniform(0, np.pi, size=9):
        dist = np.abs(-np.sin(angle) * rx + np.cos(angle) * ry)  # distance to the line through the metal
        sign = 1.0 if rng.random() < 0.5 else -1.0
        streaks += sign * rng.uniform(250, 700) * np.exp(-0.5 * (dist / 0.8) ** 2) * np.exp(-r / 120.0)
    core = r < 1.6
    for k in range(*z_range):
        out[k] += streaks
        out[k][core] = 3000.0
    return out


def localizer_image(hu_clean: np.ndarray, spacing: tuple[float, float, float], size: int = 256
                    ) -> tuple[np.ndarray, float, float]:
    """A lateral scout: mean attenuation along x, as a (size, size) image with its (row, column) spacing."""
    dz, dy, _ = spacing
    proj = np.clip(hu_clean, -1000, 2000).mean(axis=2)  # (z, y)
    proj = proj[::-1]  # rows run from the vertex down, as scouts are displayed
    zoom = (size / proj.shape[0], size / proj.shape[1])
    img = ndimage.zoom(proj, zoom, order=1)
    return img[None].astype(np.float32), dz * proj.shape[0] / size, dy * proj.shape[1] / size


def mr_like(hu_clean: np.ndarray) -> np.ndarray:
    """A T2-like MR signal from the same anatomy: CSF bright, bone and air dark (arbitrary units)."""
    sig = np.interp(hu_clean, [-1000, -100, 0, 10, 25, 40, 60, 90, 300, 2000],
                    [0, 200, 1800, 1600, 1100, 800, 600, 400, 150, 80])
    return sig.astype(np.float32)
