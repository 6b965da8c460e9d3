"""Head tissues from HU: intracranial space, CSF, brain parenchyma (what asymmetry and the midline need).

Thresholds are the usual CT densities (bone several hundred HU and up; CSF 0-15 HU; brain
parenchyma 20-45 HU; fresh blood 50-90 HU) and are parameters, recorded with the features.
The intracranial space is what the skull encloses, slice by slice: background components of a
slice that do not reach the slice's border. Slices with an open skull ring (skull base,
craniectomy) therefore contribute no intracranial space; that is stated, not hidden.

For speed the masks may be computed on an in-plane subsampled grid (`stride`): asymmetry indexes
are ratios and the midline is a fitted plane, so they do not need 0.5 mm pixels; lesion volumes
never use this grid.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage

from vocabulary.labels import UNANNOTATED

# In-plane 4-connectivity only: the skull ring must enclose the brain within each slice.
_SLICEWISE = np.zeros((3, 3, 3), dtype=bool)
_SLICEWISE[1] = ndimage.generate_binary_structure(2, 1)


@dataclass(frozen=True)
class TissueThresholds:
    """HU limits for the tissue classes (inclusive lower bound, exclusive upper bound)."""

    bone_hu: float = 300.0
    air_hu: float = -100.0
    csf_low_hu: float = -10.0
    csf_high_hu: float = 15.0
    # Unlabelled blood (an extra-axial collection, a missed contusion: >= 50 HU) is not parenchyma.
    parenchyma_high_hu: float = 50.0

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class TissueMasks:
    """Masks on the subsampled grid `hu[:, ::stride, ::stride]`, plus that grid's stride."""

    stride: int
    intracranial: np.ndarray
    csf: np.ndarray
    parenchyma: np.ndarray
    smoothed_hu: np.ndarray


def inplane_stride(spacing: tuple[float, float, float], target_mm: float = 0.9) -> int:
    """The largest integer in-plane subsampling keeping pixels at most about `target_mm` (>= 1)."""
    return max(1, int(target_mm / max(min(spacing[1], spacing[2]), 1e-6) + 1e-6))


def tissue_masks(hu: np.ndarray, labels: np.ndarray, stride: int = 1,
                 thresholds: TissueThresholds = TissueThresholds()) -> TissueMasks:
    """Intracranial space, CSF and parenchyma (intracranial, not lesion, not CSF, below `parenchyma_high_hu`)."""
    hu_s = np.ascontiguousarray(hu[:, ::stride, ::stride], dtype=np.float32)
    labels_s = labels[:, ::stride, ::stride]
    lesion_s = (labels_s > 0) & (labels_s != UNANNOTATED)  # a voxel nobody annotated is no lesion
    skull = hu_s >= thresholds.bone_hu
    background, _ = ndimage.label(~skull, structure=_SLICEWISE)
    border = np.concatenate([background[:, 0, :].ravel(), background[:, -1, :].ravel(),
                             background[:, :, 0].ravel(), background[:, :, -1].ravel()])
    outside = np.zeros(int(background.max()) + 1, dtype=bool)
    outside[border] = True
    outside[0] = True  # label 0 is the skull itself
    intracranial = ~outside[background] & (hu_s > thresholds.air_hu)
    # A 3x3 in-plane mean before the CSF threshold: CT noise (sigma 5-10 HU) otherwise scatters
    # false CSF voxels through parenchyma whose mean is only 2-3 sigma above the CSF limit.
    smoothed = ndimage.uniform_filter(hu_s, size=(1, 3, 3), mode="nearest")
    csf = intracranial & ~lesion_s & (smoothed >= thresholds.csf_low_hu) & (smoothed < thresholds.csf_high_hu)
    parenchyma = intracranial & ~lesion_s & ~csf & (smoothed < thresholds.parenchyma_high_hu)
    return TissueMasks(stride=stride, intracranial=intracranial, csf=csf, parenchyma=parenchyma, smoothed_hu=smoothed)
