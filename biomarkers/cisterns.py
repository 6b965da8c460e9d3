"""Basal (perimesencephalic) cisterns: present, compressed or absent, from the CSF around the midbrain.

The perimesencephalic cisterns lie about 35 mm below the bodies of the lateral ventricles, around the
midbrain, within a few centimetres of the midline. Mass effect and swelling squeeze their CSF out:
Marshall, Rotterdam and Helsinki grade them normal / compressed / absent (obliterated).

Measurement. The search window is the slab CISTERN_DEPTH_MM below the level of the bodies of the
lateral ventricles (`biomarkers.midline.lateral_ventricles`; the centroid of the slices within 15 mm
of the slice with most ventricle), within CISTERN_HALF_WIDTH_MM of the midline plane, and from
CISTERN_Y_MM[0] to CISTERN_Y_MM[1] (anterior to posterior) about the centre of the intracranial space
on those slices. `cistern_csf_ml` is the CSF (the tissue CSF mask: 3x3-smoothed HU
in [-10, 15)) in that window; its ratio to NORMAL_CISTERN_CSF_ML gives the state:

    ratio >= PRESENT_MIN_RATIO -> present;  ratio < ABSENT_MAX_RATIO -> absent;  else compressed.

NORMAL_CISTERN_CSF_ML and the two ratios are calibrated on the synthetic heads (`synthetic.phantom`,
whose cisterns are a 5 mm CSF ring around a 22 x 18 mm midbrain); a real head's cisterns differ in
size and shape, so on real scans the state is an estimate to be confirmed by a reviewer (the case
viewer lets one set it). The state is `unknown`, with the reason, when no lateral ventricles are found
(nothing to place the window by) or when the scan does not reach down to the window.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from biomarkers.midline import MidlinePlane

CISTERN_DEPTH_MM = (25.0, 45.0)  # below the lateral ventricles' centroid (patient z)
CISTERN_HALF_WIDTH_MM = 18.0
CISTERN_Y_MM = (-20.0, 25.0)  # about the intracranial centre on the window's slices, + posterior
NORMAL_CISTERN_CSF_ML = 5.0
PRESENT_MIN_RATIO = 0.5
ABSENT_MAX_RATIO = 0.1
STATES = ("present", "compressed", "absent", "unknown")


def cistern_state(ratio: float) -> str:
    """present / compressed / absent from the ratio of measured to normal cistern CSF; unknown for NaN."""
    if not np.isfinite(ratio):
        return "unknown"
    if ratio >= PRESENT_MIN_RATIO:
        return "present"
    return "absent" if ratio < ABSENT_MAX_RATIO else "compressed"


def basal_cisterns(csf: np.ndarray, intracranial: np.ndarray, ventricles: np.ndarray, plane: MidlinePlane,
                   stride: int, spacing: Sequence[float], affine: np.ndarray) -> dict[str, object]:
    """`basal_cisterns` (present | compressed | absent | unknown), `cistern_csf_ml`, `cistern_csf_ratio` and
    `basal_cisterns_reason` (why unknown, else ""), from masks on the grid `[:, ::stride, ::stride]`."""
    out: dict[str, object] = {"basal_cisterns": "unknown", "cistern_csf_ml": float("nan"),
                              "cistern_csf_ratio": float("nan"), "basal_cisterns_reason": ""}
    if not ventricles.any():
        out["basal_cisterns_reason"] = "no lateral ventricles found to place the cistern window by"
        return out
    a = np.asarray(affine, dtype=float)
    nz = csf.shape[0]
    slice_z = a[2, 2] * np.arange(nz) + a[2, 3]  # patient z of each slice (axial series: no tilt in z)
    # The level of the ventricles' bodies: the slices within 15 mm of the one with most ventricle.
    area = ventricles.sum(axis=(1, 2)).astype(float)
    area[np.abs(slice_z - slice_z[int(np.argmax(area))]) > 15.0] = 0.0
    vz = float(np.average(slice_z, weights=area))
    lo, hi = vz - CISTERN_DEPTH_MM[1], vz - CISTERN_DEPTH_MM[0]
    step = abs(float(a[2, 2]))
    if slice_z.min() > lo + step or slice_z.max() < hi - step:
        out["basal_cisterns_reason"] = (f"the scan does not reach the cistern level ({lo:.0f} to {hi:.0f} mm, "
                                        f"{CISTERN_DEPTH_MM[0]:.0f}-{CISTERN_DEPTH_MM[1]:.0f} mm below the ventricles)")
        return out
    ks = np.flatnonzero((slice_z >= lo) & (slice_z <= hi))
    window_ic = intracranial[ks]
    if not window_ic.any():
        out["basal_cisterns_reason"] = "no intracranial space found at the cistern level"
        return out
    rows = np.arange(csf.shape[1]) * stride
    cols = np.arange(csf.shape[2]) * stride
    # Patient y of each (row, column) of the grid; in-plane rotation is in the affine.
    y_mm = a[1, 0] * cols[None, :] + a[1, 1] * rows[:, None] + a[1, 3]
    cy = float(y_mm[np.nonzero(window_ic.any(axis=0))].mean())
    in_y = (y_mm >= cy + CISTERN_Y_MM[0]) & (y_mm <= cy + CISTERN_Y_MM[1])
    count = 0
    for k_i, k in enumerate(ks):
        zz = np.full(rows.size * cols.size, float(k))
        yy, xx = np.meshgrid(rows, cols, indexing="ij")
        d = plane.signed_distance_mm(np.column_stack([zz, yy.ravel(), xx.ravel()])).reshape(rows.size, cols.size)
        window = in_y & (np.abs(d) <= CISTERN_HALF_WIDTH_MM) & window_ic[k_i]
        count += int(np.count_nonzero(csf[k] & window))
    dz, dy, dx = (float(s) for s in spacing)
    ml = count * dz * dy * dx * stride * stride / 1000.0
    ratio = ml / NORMAL_CISTERN_CSF_ML
    out.update(basal_cisterns=cistern_state(ratio), cistern_csf_ml=ml, cistern_csf_ratio=ratio)
    return out
