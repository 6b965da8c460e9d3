"""Series geometry and automatic QC: instance headers in, a summary with reason codes out. Pure.

Positions are projected on the slice normal (cross product of the ImageOrientationPatient row and
column cosines), the way a volume is stacked; steps between consecutive sorted positions tell
missing slices (a step well above the median), non-uniform spacing and duplicates apart.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from registry.db.models import QC_AUTO_FAILED, QC_PENDING
from registry.dicom_headers import InstanceHeader

# Reason codes, in the order they are reported. `not_ct` files are rejected before a series exists;
# the code is listed so that the vocabulary is one list across rejections and QC.
# The automatic QC reason codes, in the order they are reported; what each means, in words, is in
# the data dictionary (vocabulary.dictionary, group "qc_reason"), the one place screens read it from.
# The last ten are per-instance defects found when the header is read (registry.dicom_headers) or,
# for undecodable_pixel_data, when one file of the series is decoded at ingest.
QC_REASONS: tuple[str, ...] = (
    "not_ct", "localizer", "missing_geometry", "too_few_slices", "duplicate_positions", "missing_slices",
    "nonuniform_spacing", "mixed_matrix", "insufficient_coverage", "gantry_tilt",
    "invalid_pixel_spacing", "invalid_slice_thickness", "invalid_matrix", "pixel_data_mismatch",
    "unsupported_bits_allocated", "undecodable_pixel_data", "invalid_orientation", "invalid_position",
    "implausible_date", "burned_in_annotation",
)


@dataclass(frozen=True)
class QCThresholds:
    """Limits of the automatic checks (head CT: >= 10 slices spanning >= 100 mm)."""

    min_slices: int = 10
    min_coverage_mm: float = 100.0
    max_tilt_deg: float = 1.0
    spacing_tolerance: float = 0.1  # relative deviation of a step from the median step
    gap_factor: float = 1.5  # a step this many times the median means missing slices
    duplicate_mm: float = 0.01
    localizer_max_slices: int = 3


@dataclass
class SeriesSummary:
    """Series-level facts and the QC verdict; `positions` maps SOPInstanceUID to its position on the normal."""

    instance_count: int
    rows: int | None
    columns: int | None
    pixel_spacing_row: float | None
    pixel_spacing_col: float | None
    slice_thickness: float | None
    slice_spacing: float | None
    image_orientation: list[float] | None
    gantry_tilt: float | None
    z_positions: list[float] | None
    coverage_mm: float | None
    qc_reasons: list[str] = field(default_factory=list)
    positions: dict[str, float] = field(default_factory=dict)

    @property
    def qc_status(self) -> str:
        return QC_AUTO_FAILED if self.qc_reasons else QC_PENDING


def own_reasons(header: InstanceHeader) -> tuple[str, ...]:
    """The QC reasons one file earns alone, whatever the rest of its series: its defects, and
    missing_geometry when it lacks a position or an orientation (a file that cannot be placed in a stack)."""
    if header.image_position and header.image_orientation:
        return header.defects
    return (*header.defects, "missing_geometry")


def summarize_series(instances: Sequence[InstanceHeader], thresholds: QCThresholds | None = None,
                     extra_reasons: Sequence[str] = ()) -> SeriesSummary:
    """Geometry of one series and its automatic QC reasons (empty list: pending human review).

    The instances' own defects and `extra_reasons` (found by the caller, e.g. undecodable pixels) join
    the series-level checks.
    """
    if not instances:
        raise ValueError("a series needs at least one instance")
    t = thresholds or QCThresholds()
    reasons: set[str] = set(extra_reasons)
    for h in instances:
        reasons.update(h.defects)

    matrices = Counter((h.rows, h.columns) for h in instances)
    (rows, columns), _ = matrices.most_common(1)[0]
    if len(matrices) > 1:
        reasons.add("mixed_matrix")
    spacing = Counter(h.pixel_spacing for h in instances if h.pixel_spacing).most_common(1)
    thickness = Counter(h.slice_thickness for h in instances if h.slice_thickness).most_common(1)

    text = " ".join(filter(None, [instances[0].image_type, instances[0].series_description])).upper()
    if any(word in text for word in ("LOCALIZER", "SCOUT", "TOPOGRAM")):
        reasons.add("localizer")

    orientations = Counter(tuple(round(v, 3) for v in h.image_orientation) for h in instances if h.image_orientation)
    summary = SeriesSummary(
        instance_count=len(instances), rows=rows, columns=columns,
        pixel_spacing_row=spacing[0][0][0] if spacing else None,
        pixel_spacing_col=spacing[0][0][1] if spacing else None,
        slice_thickness=thickness[0][0] if thickness else None,
        slice_spacing=None, image_orientation=None, gantry_tilt=None, z_positions=None, coverage_mm=None,
    )
    if len(instances) < t.min_slices:
        reasons.add("too_few_slices")
    placed = [h for h in instances if h.image_position and h.image_orientation]
    if len(placed) < len(instances) or not orientations:
        reasons.add("missing_geometry")
    if not placed:
        summary.qc_reasons = _ordered(reasons)
        return summary
    if len(orientations) > 1:
        # Slices in different planes: a three-plane localizer, or a mixed export.
        reasons.add("localizer")

    orientation = np.array(orientations.most_common(1)[0][0], dtype=float)
    normal = np.cross(orientation[:3], orientation[3:])
    norm = np.linalg.norm(normal)
    normal = normal / norm if norm > 0 else np.array([0.0, 0.0, 1.0])
    if len(instances) <= t.localizer_max_slices and abs(normal[2]) < 0.5:
        reasons.add("localizer")  # a few sagittal/coronal images: a scout, not an axial head series

    xyz = np.array([h.image_position for h in placed], dtype=float)
    z = xyz @ normal
    order = np.argsort(z, kind="stable")
    z_sorted = z[order]
    summary.image_orientation = [float(v) for v in orientation]
    summary.z_positions = [round(float(v), 4) for v in z_sorted]
    summary.positions = {h.sop_instance_uid: round(float(v), 4) for h, v in zip(placed, z, strict=True)}

    tilt_tag = max((abs(h.gantry_detector_tilt) for h in instances if h.gantry_detector_tilt is not None), default=0.0)
    tilt_geometry = 0.0
    if len(placed) > 1:
        stack = xyz[order[-1]] - xyz[order[0]]
        length = np.linalg.norm(stack)
        if length > 0:
            tilt_geometry = math.degrees(math.acos(min(1.0, abs(float(stack @ normal)) / length)))
    summary.gantry_tilt = round(max(tilt_tag, tilt_geometry), 3)
    if summary.gantry_tilt > t.max_tilt_deg:
        reasons.add("gantry_tilt")

    steps = np.diff(z_sorted)
    if np.any(steps < t.duplicate_mm):
        reasons.add("duplicate_positions")
    distinct = steps[steps >= t.duplicate_mm]
    if distinct.size:
        median = float(np.median(distinct))
        summary.slice_spacing = round(median, 4)
        if np.any(distinct > t.gap_factor * median):
            reasons.add("missing_slices")
        off = np.abs(distinct - median) > t.spacing_tolerance * median
        if np.any(off & (distinct <= t.gap_factor * median)):
            reasons.add("nonuniform_spacing")
        summary.coverage_mm = round(float(z_sorted[-1] - z_sorted[0]) + median, 3)
    else:
        summary.coverage_mm = summary.slice_thickness
    if summary.coverage_mm is None or summary.coverage_mm < t.min_coverage_mm:
        reasons.add("insufficient_coverage")

    summary.qc_reasons = _ordered(reasons)
    return summary


def _ordered(reasons: set[str]) -> list[str]:
    return [code for code in QC_REASONS if code in reasons]
