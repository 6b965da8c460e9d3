"""One synthetic head-CT series in Hounsfield units, with its truth: `render_series(spec, grid, rng)`.

Pure computation: no files. The head is built from analytic shapes evaluated on the voxel grid
(vectorized numpy, no per-voxel Python); lesions are smooth random blobs whose voxel count is
chosen exactly, so truth volumes are known to the voxel.

Coordinates. Arrays are indexed `(z, y, x)` = (slice, row, column). The `affine` maps
`(column, row, slice, 1)` to patient LPS mm, as DICOM does (+x patient left, +y posterior,
+z superior); rows run anterior to posterior and columns right to left (radiological display),
slices inferior to superior. Anatomy and lesions are described in the *head frame*: LPS mm
relative to the head centre, before the head's yaw and offset in the scanner. "Left" always
means the patient's left (head-frame x > 0).

Mass effect (stated so that biomarkers can be checked against it). With M_left / M_right the
hematoma + edema + extra-axial volume (mL) on each side, the falx and all midline structures are
displaced toward the lighter side by

    shift_mm = min(MAX_SHIFT_MM, SHIFT_MM_PER_ML * |M_left - M_right|)      (0.15 mm/mL, at most 15 mm)

at the level of the septum pellucidum (head-frame y = 0), tapering as (1 - (y/Ry)^2)(1 - (x/Rx)^2)
to zero at the skull, so the anterior and posterior falx attachments stay on the ideal midline,
as a radiologist measures it. The ipsilateral lateral ventricle is compressed to a width factor
max(0.3, 1 - 0.01 * M_side). Intraventricular blood takes the place of CSF and adds no mass.

Basal (perimesencephalic) cisterns: a ring of CSF around the midbrain, about 35 mm below the lateral
ventricles' bodies (head-frame z = -0.32 x the z semi-axis), CISTERN_WIDTH_MM wide in a normal head. Mass
effect narrows it: with M = M_left + M_right + diffuse swelling (mL), the ring's width is

    width_mm = CISTERN_WIDTH_MM * max(0, 1 - M / CISTERN_EFFACING_ML)

and the cisterns are "present" while the width is at least half the normal one, "absent" under
CISTERN_ABSENT_MM (one pixel or less: nothing a reader can see), "compressed" in between
(`RenderedSeries.basal_cisterns`). They are rendered only when `SeriesSpec.render_cisterns` is on (the
synthetic study's cohort turns it on; the shipped phantom model never saw them). Diffuse swelling
(`SeriesSpec.swelling_ml`) compresses the
cisterns and adds no midline shift.

Extra-axial collections have one of two shapes (`ExtraAxial.shape`): "crescentic" (subdural-like: a
thin crescent spreading along the inner table) or "lentiform" (epidural-like: a biconvex lens, thick
and short).

Labels follow the project's label map (`vocabulary.labels`): 1 IPH (the hematomas), 2 EAH (the
subdural-like collection along the inner table), 3 perilesional edema, 4 IVH (blood layering in
the dependent, posterior parts of the ventricles, as in a supine patient).

`hu_clean` is the noise-free image: every blood voxel (labels 1, 2, 4) lies in [50, 90] HU and
every edema voxel (label 3) in [10, 25] HU there. `hu` adds the scanner's correlated noise (what
the DICOM files hold).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from vocabulary.labels import EAH, EDEMA, IPH, IVH

SHIFT_MM_PER_ML = 0.15
MAX_SHIFT_MM = 15.0
VENTRICLE_COMPRESSION_PER_ML = 0.01
MIN_VENTRICLE_WIDTH_FACTOR = 0.3

HU_AIR = -1000.0
HU_SCALP = 35.0
HU_BONE_TABLE = 1500.0
HU_BONE_DIPLOE = 700.0
HU_CSF = 5.0
HU_GREY = 40.0
HU_WHITE = 25.0
HU_DEEP_GREY = 37.0
HU_FALX = 55.0
CISTERN_WIDTH_MM = 5.0
CISTERN_EFFACING_ML = 70.0
CISTERN_ABSENT_MM = 1.0
CISTERN_STATES = ("present", "compressed", "absent")
EXTRA_AXIAL_SHAPES = ("crescentic", "lentiform")
HEMATOMA_HU_RANGE = (50.0, 90.0)  # every blood label: IPH, EAH, IVH
EDEMA_HU_RANGE = (10.0, 25.0)

REGIONS = ("frontal", "temporal", "parietal", "occipital", "basal_ganglia")
# Lesion centres for the left hemisphere, as fractions of the brain's semi-axes (x left, y posterior, z up).
_REGION_FRACTIONS = {
    "frontal": (0.40, -0.50, 0.20),
    "temporal": (0.55, -0.12, -0.30),
    "parietal": (0.40, 0.25, 0.42),
    "occipital": (0.28, 0.60, 0.15),
    "basal_ganglia": (0.27, -0.05, 0.02),
}


@dataclass(frozen=True)
class Grid:
    """The voxel grid of one axial series: contiguous slices, square pixels not required."""

    rows: int
    columns: int
    slices: int
    pixel_spacing: tuple[float, float]  # (row spacing dy, column spacing dx) mm, DICOM PixelSpacing order
    slice_thickness: float  # mm; also the spacing between slice centres
    origin: tuple[float, float, float]  # LPS mm of voxel (column 0, row 0, slice 0)

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.slices, self.rows, self.columns)

    @property
    def spacing(self) -> tuple[float, float, float]:
        """(dz, dy, dx) mm."""
        return (self.slice_thickness, self.pixel_spacing[0], self.pixel_spacing[1])

    @property
    def voxel_volume_ml(self) -> float:
        dz, dy, dx = self.spacing
        return dz * dy * dx / 1000.0

    @property
    def affine(self) -> np.ndarray:
        """4x4: (column, row, slice, 1) -> patient LPS mm."""
        dz, dy, dx = self.spacing
        a = np.diag([dx, dy, dz, 1.0])
        a[:3, 3] = self.origin
        return a

    def slice_positions(self) -> np.ndarray:
        """ImagePositionPatient of every slice, shape (slices, 3)."""
        pos = np.tile(np.asarray(self.origin, dtype=float), (self.slices, 1))
        pos[:, 2] += np.arange(self.slices) * self.slice_thickness
        return pos

    @classmethod
    def centered(cls, matrix: int = 256, fov_mm: float = 230.0, slice_thickness: float = 5.0,
                 z_range_mm: tuple[float, float] = (-52.0, 82.0)) -> Grid:
        """A square field of view centred on the scanner axis, covering z_range_mm (inferior, superior)."""
        d = fov_mm / matrix
        n = int(math.floor((z_range_mm[1] - z_range_mm[0]) / slice_thickness)) + 1
        x0 = -fov_mm / 2 + d / 2
        return cls(rows=matrix, columns=matrix, slices=n, pixel_spacing=(d, d), slice_thickness=float(slice_thickness),
                   origin=(x0, x0, float(z_range_mm[0])))


@dataclass(frozen=True)
class HeadShape:
    """Inner-table ellipsoid semi-axes (mm) and layer thicknesses; the brain fills the inner table."""

    semi_axes: tuple[float, float, float] = (68.0, 86.0, 64.0)
    skull_mm: float = 6.5
    scalp_mm: float = 5.0
    csf_rim_mm: float = 1.5
    cortex_mm: float = 3.5
    fold_phase: float = 0.0  # varies the gyral pattern between patients

    def scaled(self, factor: float, fold_phase: float = 0.0) -> HeadShape:
        return HeadShape(tuple(a * factor for a in self.semi_axes), self.skull_mm, self.scalp_mm,  # type: ignore[arg-type]
                         self.csf_rim_mm, self.cortex_mm, fold_phase)


@dataclass(frozen=True)
class Hematoma:
    """An intraparenchymal hematoma with its perilesional edema (volumes exact to one voxel)."""

    center_mm: tuple[float, float, float]  # head frame
    volume_ml: float
    edema_ml: float = 0.0
    density_hu: float = 70.0
    elongation: tuple[float, float, float] = (1.0, 1.0, 1.0)  # relative semi-axes (x, y, z)
    shape_seed: int = 0  # same seed, same shape: follow-ups of one lesion stay recognisable

    @property
    def side(self) -> str:
        return "left" if self.center_mm[0] > 0 else "right"


@dataclass(frozen=True)
class ExtraAxial:
    """An extra-axial collection along the inner table of one side (label 2, EAH): a subdural-like crescent
    (`shape="crescentic"`) or an epidural-like biconvex lens (`shape="lentiform"`)."""

    side: str
    volume_ml: float
    density_hu: float = 65.0
    direction: tuple[float, float, float] = (1.0, -0.15, 0.35)  # head frame, x mirrored for the right side
    shape: str = "crescentic"

    def __post_init__(self) -> None:
        if self.shape not in EXTRA_AXIAL_SHAPES:
            raise ValueError(f"ExtraAxial.shape must be one of {EXTRA_AXIAL_SHAPES}, not {self.shape!r}")


@dataclass(frozen=True)
class Intraventricular:
    """Intraventricular blood (label 4, IVH): `volume_ml` of the ventricles' most dependent CSF.

    At most half of the ventricular CSF is filled (compressed ventricles hold less); the truth is the
    rendered voxel count.
    """

    volume_ml: float
    density_hu: float = 60.0
    shape_seed: int = 0


IVH_MAX_VENTRICLE_FRACTION = 0.5


@dataclass(frozen=True)
class SeriesSpec:
    """Everything that decides one rendered series except the grid and the noise draw."""

    hematomas: tuple[Hematoma, ...] = ()
    extra_axial: ExtraAxial | None = None
    intraventricular: Intraventricular | None = None
    head: HeadShape = field(default_factory=HeadShape)
    head_offset_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)  # head centre in patient LPS
    head_yaw_deg: float = 0.0  # rotation about the patient z axis (positive turns the nose to the left)
    noise_sigma_hu: float = 4.0
    noise_correlation_px: float = 0.7
    swelling_ml: float = 0.0  # diffuse brain swelling: compresses the basal cisterns, no midline shift
    # Render the basal cisterns. Off unless asked (the cohort of a synthetic study asks): the shipped phantom
    # model (imaging/default_model) was trained on heads without them and reads their CSF as edema.
    render_cisterns: bool = False

    def cistern_width_mm(self) -> float:
        """Width of the CSF ring of the basal cisterns (see the module doc)."""
        left, right = self.mass_ml()
        return CISTERN_WIDTH_MM * max(0.0, 1.0 - (left + right + self.swelling_ml) / CISTERN_EFFACING_ML)

    def basal_cisterns(self) -> str:
        """present | compressed | absent, from the rendered ring width (see the module doc); not_rendered when
        `render_cisterns` is off."""
        if not self.render_cisterns:
            return "not_rendered"
        width = self.cistern_width_mm()
        if width >= 0.5 * CISTERN_WIDTH_MM:
            return "present"
        return "compressed" if width >= CISTERN_ABSENT_MM else "absent"

    def mass_ml(self) -> tuple[float, float]:
        """(left, right) space-occupying volume in mL: hematoma + edema + extra-axial."""
        left = right = 0.0
        for h in self.hematomas:
            if h.side == "left":
                left += h.volume_ml + h.edema_ml
            else:
                right += h.volume_ml + h.edema_ml
        if self.extra_axial is not None:
            if self.extra_axial.side == "left":
                left += self.extra_axial.volume_ml
            else:
                right += self.extra_axial.volume_ml
        return left, right

    def midline_shift_signed_mm(self) -> float:
        """Displacement of the septum pellucidum; positive toward the patient's left."""
        left, right = self.mass_ml()
        magnitude = min(MAX_SHIFT_MM, SHIFT_MM_PER_ML * abs(left - right))
        return -magnitude if left > right else magnitude


@dataclass(frozen=True)
class LesionTruth:
    """Truth for one rendered intraparenchymal hematoma."""

    centroid_mm: tuple[float, float, float]  # patient LPS, centroid of its IPH (label 1) voxels
    side: str  # "left" | "right"
    volume_ml: float  # IPH voxels x voxel volume
    edema_ml: float  # edema (label 3) voxels grown from this lesion x voxel volume
    density_hu: float


@dataclass(frozen=True)
class RenderedSeries:
    hu: np.ndarray  # float32 (z, y, x), with noise: what is written to DICOM
    hu_clean: np.ndarray  # float32 (z, y, x), noise-free
    labels: np.ndarray  # uint8 (z, y, x) in the label map of vocabulary.labels
    grid: Grid
    spec: SeriesSpec
    midline_shift_mm: float  # magnitude, mm
    midline_shift_signed_mm: float  # positive toward the patient's left
    lesions: tuple[LesionTruth, ...]
    extra_axial_ml: float  # EAH (label 2) voxels x voxel volume

    @property
    def basal_cisterns(self) -> str:
        """present | compressed | absent (see the module doc)."""
        return self.spec.basal_cisterns()

    @property
    def epidural_ml(self) -> float:
        """The extra-axial volume when the collection is lentiform (epidural-like), else 0."""
        ea = self.spec.extra_axial
        return self.extra_axial_ml if ea is not None and ea.shape == "lentiform" else 0.0

    @property
    def subdural_ml(self) -> float:
        """The extra-axial volume when the collection is crescentic (subdural-like), else 0."""
        return self.extra_axial_ml - self.epidural_ml

    @property
    def spacing(self) -> tuple[float, float, float]:
        return self.grid.spacing

    @property
    def affine(self) -> np.ndarray:
        return self.grid.affine

    def class_ml(self, label: int) -> float:
        """Volume (mL) of one label of the label map."""
        return float(np.count_nonzero(self.labels == label)) * self.grid.voxel_volume_ml

    @property
    def hematoma_ml(self) -> float:
        """IPH: CREACTIVE's "hematoma" (see vocabulary.labels)."""
        return self.class_ml(IPH)

    @property
    def edema_ml(self) -> float:
        return self.class_ml(EDEMA)

    @property
    def ivh_ml(self) -> float:
        return self.class_ml(IVH)

    @property
    def side(self) -> str:
        """left | right | bilateral | none, over the intraparenchymal hematomas."""
        sides = {les.side for les in self.lesions if les.volume_ml > 0}
        if not sides:
            return "none"
        return sides.pop() if len(sides) == 1 else "bilateral"


# --------------------------------------------------------------------------------------------
# Constructors for tests elsewhere: one line for "a 20 mL left frontal hematoma on 5 mm slices".


def region_center_mm(region: str, side: str, head: HeadShape | None = None) -> tuple[float, float, float]:
    """Head-frame centre of a named brain region on one side."""
    if region not in _REGION_FRACTIONS:
        raise ValueError(f"unknown region {region!r}; expected one of {', '.join(REGIONS)}")
    if side not in ("left", "right"):
        raise ValueError(f"side must be 'left' or 'right', not {side!r}")
    head = head or HeadShape()
    fx, fy, fz = _REGION_FRACTIONS[region]
    ax, ay, az = head.semi_axes
    sign = 1.0 if side == "left" else -1.0
    return (sign * fx * ax, fy * ay, fz * az)


def hematoma(volume_ml: float = 20.0, side: str = "left", region: str = "frontal", edema_ml: float | None = None,
             density_hu: float = 70.0, shape_seed: int = 0) -> Hematoma:
    """A hematoma at a named region; edema defaults to half the hematoma volume."""
    return Hematoma(center_mm=region_center_mm(region, side), volume_ml=float(volume_ml),
                    edema_ml=float(0.5 * volume_ml if edema_ml is None else edema_ml),
                    density_hu=float(density_hu), shape_seed=shape_seed)


def single_hematoma_series(volume_ml: float = 20.0, side: str = "left", region: str = "frontal",
                           edema_ml: float | None = None, slice_thickness: float = 5.0, matrix: int = 256,
                           fov_mm: float = 230.0, noise_sigma_hu: float = 4.0, seed: int = 0) -> RenderedSeries:
    """e.g. `single_hematoma_series(20, "left", "frontal", slice_thickness=5, matrix=256)`."""
    spec = SeriesSpec(hematomas=(hematoma(volume_ml, side, region, edema_ml, shape_seed=seed),),
                      noise_sigma_hu=noise_sigma_hu)
    return render_series(spec, Grid.centered(matrix, fov_mm, slice_thickness), np.random.default_rng(seed))


def normal_series(slice_thickness: float = 5.0, matrix: int = 256, seed: int = 0) -> RenderedSeries:
    """A head without lesions (no midline shift)."""
    return render_series(SeriesSpec(), Grid.centered(matrix, 230.0, slice_thickness), np.random.default_rng(seed))


# --------------------------------------------------------------------------------------------
# Rendering


def render_series(spec: SeriesSpec, grid: Grid, rng: np.random.Generator) -> RenderedSeries:
    """The HU image, label mask and truth of one series. `rng` only draws the noise."""
    q = _head_frame_coordinates(grid, spec)
    head = spec.head
    shift = spec.midline_shift_signed_mm()
    left_mass, right_mass = spec.mass_ml()

    ivh = spec.intraventricular if spec.intraventricular is not None and spec.intraventricular.volume_ml > 0 else None
    hu, brain, ventricles = _anatomy_hu(q, head, shift, left_mass, right_mass, grid.pixel_spacing[1],
                                        want_ventricles=ivh is not None,
                                        cistern_width_mm=spec.cistern_width_mm() if spec.render_cisterns else None)
    labels = np.zeros(grid.shape, dtype=np.uint8)
    owner = np.zeros(grid.shape, dtype=np.int16)  # which hematoma (1-based) an IPH/edema voxel belongs to
    vv = grid.voxel_volume_ml

    boxes = [_lesion_box(h, q, grid) for h in spec.hematomas]
    for i, (h, box) in enumerate(zip(spec.hematomas, boxes, strict=True), start=1):
        _place_hematoma(h, i, box, q, brain, labels, owner, hu, vv, grid.spacing)
    for i, (h, box) in enumerate(zip(spec.hematomas, boxes, strict=True), start=1):
        _place_edema(h, i, box, q, brain, labels, owner, hu, vv, grid.spacing)
    extra_ml = 0.0
    if spec.extra_axial is not None and spec.extra_axial.volume_ml > 0:
        extra_ml = _place_extra_axial(spec.extra_axial, q, head, labels, hu, vv)
    if ivh is not None:
        assert ventricles is not None
        _place_intraventricular(ivh, q, ventricles, labels, hu, vv)

    lesions = []
    for i, h in enumerate(spec.hematomas, start=1):
        idx = np.argwhere((owner == i) & (labels == IPH))
        n_edema = int(np.count_nonzero((owner == i) & (labels == EDEMA)))
        if len(idx):
            zyx = idx.mean(axis=0)
            centroid = grid.affine @ np.array([zyx[2], zyx[1], zyx[0], 1.0])
            centroid_t = (float(centroid[0]), float(centroid[1]), float(centroid[2]))
        else:
            centroid_t = (math.nan, math.nan, math.nan)
        lesions.append(LesionTruth(centroid_t, h.side, len(idx) * vv, n_edema * vv, h.density_hu))

    hu_clean = hu.astype(np.float32)
    noisy = hu_clean + _correlated_noise(grid.shape, spec.noise_sigma_hu, spec.noise_correlation_px, rng)
    return RenderedSeries(hu=noisy, hu_clean=hu_clean, labels=labels, grid=grid, spec=spec,
                          midline_shift_mm=abs(shift), midline_shift_signed_mm=shift,
                          lesions=tuple(lesions), extra_axial_ml=extra_ml)


def _head_frame_coordinates(grid: Grid, spec: SeriesSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Head-frame (x, y, z) mm of the voxels: x and y shaped (1, rows, columns), z shaped (slices, 1, 1).

    The yaw is in-plane, so x and y are the same on every slice; keeping them 2D makes each
    shape test cost one 3D add instead of several 3D products.
    """
    dz, dy, dx = grid.spacing
    ox, oy, oz = grid.origin
    hx, hy, hz = spec.head_offset_mm
    wx = (ox + dx * np.arange(grid.columns, dtype=np.float32) - hx)[None, None, :]
    wy = (oy + dy * np.arange(grid.rows, dtype=np.float32) - hy)[None, :, None]
    wz = (oz + dz * np.arange(grid.slices, dtype=np.float32) - hz)[:, None, None]
    # World = R(yaw) @ head, so head = R^T @ world.
    t = math.radians(spec.head_yaw_deg)
    c, s = np.float32(math.cos(t)), np.float32(math.sin(t))
    x2 = c * wx + s * wy
    y2 = -s * wx + c * wy
    return x2.astype(np.float32), y2.astype(np.float32), wz.astype(np.float32)


def _box_coordinates(q, box) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The coordinates of `_head_frame_coordinates` restricted to an index box, broadcast to its shape."""
    zs, rs, cs = box
    x, y, z = q[0][:, rs, cs], q[1][:, rs, cs], q[2][zs]
    shape = (z.shape[0], x.shape[1], x.shape[2])
    return np.broadcast_to(x, shape), np.broadcast_to(y, shape), np.broadcast_to(z, shape)


def _paint_ellipsoid(hu: np.ndarray, value: float, where: np.ndarray, ux, y, z, center, semi) -> None:
    """hu[inside & where] = value, computed only over the slices the ellipsoid reaches."""
    zt = ((z[:, 0, 0] - center[2]) / semi[2]) ** 2
    zs = np.flatnonzero(zt <= 1)
    if len(zs) == 0:
        return
    sl = slice(zs[0], zs[-1] + 1)
    xy = ((ux - center[0]) / semi[0]) ** 2 + ((y - center[1]) / semi[1]) ** 2
    inside = (xy + zt[sl, None, None]) <= 1
    hu[sl][inside & where[sl]] = value


def _anatomy_hu(q, head: HeadShape, shift: float, left_mass: float, right_mass: float, dx: float,
                want_ventricles: bool = False, cistern_width_mm: float | None = None
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Noise-free HU of the normal (but displaced) head, the brain mask (inside the CSF rim) and, when
    asked (only IVH needs it), the ventricles' mask."""
    x, y, z = q
    ax, ay, az = head.semi_axes
    shape = (z.shape[0], x.shape[1], x.shape[2])
    r = np.sqrt((x * x + y * y) + z * z) + np.float32(1e-3)
    s = np.sqrt(((x / ax) ** 2 + (y / ay) ** 2) + (z / az) ** 2)
    # Distance beyond the inner table measured along the ray from the head centre: cheap and smooth.
    depth = r * (1 - 1 / np.maximum(s, np.float32(1e-3)))

    hu = np.full(shape, HU_AIR, dtype=np.float32)
    t_skull, t_scalp = head.skull_mm, head.scalp_mm
    hu[depth <= t_skull + t_scalp] = HU_SCALP
    bone = (depth > 0) & (depth <= t_skull)
    hu[bone] = HU_BONE_TABLE - (HU_BONE_TABLE - HU_BONE_DIPLOE) * np.sin(np.pi * depth[bone] / t_skull) ** 2
    intracranial = depth <= 0
    hu[intracranial] = HU_CSF
    brain = depth <= -head.csf_rim_mm
    hu[brain] = HU_WHITE
    # Gyral folding: the cortex thickness varies smoothly with direction (evaluated only near the surface).
    shell = brain & (depth > -(head.csf_rim_mm + 1.45 * head.cortex_mm))
    idx = np.nonzero(shell)
    xs, ys, zs = x[0][idx[1], idx[2]], y[0][idx[1], idx[2]], z[idx[0], 0, 0]
    rr = r[idx]
    fold = (np.sin(7 * xs / rr + head.fold_phase) * np.cos(6 * ys / rr - head.fold_phase)
            * np.sin(5 * zs / rr + 1.3) + 0.5 * np.sin((13 * ys + 11 * zs) / rr + 2 * head.fold_phase))
    grey = depth[idx] > -(head.csf_rim_mm + head.cortex_mm * (1 + 0.45 * fold))
    hu[idx[0][grey], idx[1][grey], idx[2][grey]] = HU_GREY

    # Internal structures move with the midline: evaluate them at the pre-shift position ux.
    taper = np.clip(1 - (y / ay) ** 2, 0, None) * np.clip(1 - (x / ax) ** 2, 0, None)
    ux = x - np.float32(shift) * taper
    for sign in (1.0, -1.0):
        _paint_ellipsoid(hu, HU_DEEP_GREY, brain, ux, y, z, (sign * 0.27 * ax, -0.06 * ay, 0.0),
                         (0.12 * ax, 0.17 * ay, 0.14 * az))
        _paint_ellipsoid(hu, HU_DEEP_GREY, brain, ux, y, z, (sign * 0.13 * ax, 0.12 * ay, -0.02 * az),
                         (0.10 * ax, 0.12 * ay, 0.11 * az))
    # Basal cisterns: a CSF ring of cistern_width_mm around the midbrain (an ellipsoid 20 mm tall).
    if cistern_width_mm is not None and cistern_width_mm > 0:
        centre, midbrain = (0.0, 0.12 * ay, -0.32 * az), (11.0, 9.0, 10.0)
        _paint_ellipsoid(hu, HU_CSF, brain, ux, y, z, centre,
                         (midbrain[0] + cistern_width_mm, midbrain[1] + cistern_width_mm, midbrain[2]))
        _paint_ellipsoid(hu, HU_WHITE, brain, ux, y, z, centre, midbrain)
        # The ambient cisterns open laterally into the subarachnoid space: a 6 mm CSF channel on each side
        # from the ring to the inner table, 12 mm tall, while the ring is visible, so that the cisterns are
        # never mistaken for a ventricle.
        zs = np.flatnonzero(np.abs(z[:, 0, 0] - centre[2]) <= 6.0)
        if len(zs) and cistern_width_mm >= CISTERN_ABSENT_MM:
            sl = slice(zs[0], zs[-1] + 1)
            channel = (np.abs(y - centre[1]) <= 3.0) & (np.abs(ux) >= midbrain[0])
            hu[sl][intracranial[sl] & channel] = HU_CSF
    ellipsoids = []
    for sign, mass in ((1.0, left_mass), (-1.0, right_mass)):
        width = max(MIN_VENTRICLE_WIDTH_FACTOR, 1 - VENTRICLE_COMPRESSION_PER_ML * mass)
        ellipsoids.append(((sign * (1.5 + 5.5 * width), -0.03 * ay, 0.22 * az), (5.5 * width, 0.30 * ay, 0.13 * az)))
        # Occipital horn: a smaller ellipsoid running back and down.
        ellipsoids.append(((sign * (3.0 + 6.0 * width), 0.30 * ay, 0.12 * az), (3.5 * width, 0.14 * ay, 0.08 * az)))
    ellipsoids.append(((0.0, 0.06 * ay, -0.03 * az), (1.6, 0.13 * ay, 0.12 * az)))
    ellipsoids.append(((0.0, 0.42 * ay, -0.55 * az), (4.0, 0.04 * ay, 0.08 * az)))
    ventricles = np.zeros(shape, dtype=bool) if want_ventricles else None
    for center, semi in ellipsoids:
        _paint_ellipsoid(hu, HU_CSF, brain, ux, y, z, center, semi)
        if ventricles is not None:
            _paint_ellipsoid(ventricles, True, brain, ux, y, z, center, semi)
    # Interhemispheric fissure with the falx, above the corpus callosum and in front of / behind the ventricles.
    zc = z[:, 0, 0]
    for lo, hi, ymin in ((0.40 * az, np.inf, 0.0), (-0.25 * az, 0.40 * az, 0.42 * ay)):
        zs_ = np.flatnonzero((zc > lo) & (zc <= hi))
        if len(zs_) == 0:
            continue
        sl = slice(zs_[0], zs_[-1] + 1)
        in_plane = np.abs(y) >= ymin
        fissure = intracranial[sl] & (in_plane & (np.abs(ux) < 1.8))
        hu[sl][fissure] = HU_CSF
        # At least one pixel wide wherever it is sampled, so it never vanishes between pixel centres.
        falx = intracranial[sl] & (in_plane & (np.abs(ux) < max(0.7, 0.55 * dx)))
        hu[sl][falx] = HU_FALX
    if ventricles is not None:
        ventricles &= hu == HU_CSF  # what the fissure or falx painted over is no longer ventricle
    return hu, brain, ventricles


def _smooth_field(qx: np.ndarray, qy: np.ndarray, qz: np.ndarray, seed: int) -> np.ndarray:
    """A smooth random function of head-frame position, about N(0, 1), defined independently of any grid.

    A sum of random plane waves rather than filtered noise on the grid, so that the same lesion
    has the same shape on a follow-up scan with another grid.
    """
    g = np.random.default_rng(np.random.SeedSequence([seed, 7919]))
    n = 14
    k = g.normal(size=(n, 3))
    k /= np.linalg.norm(k, axis=1, keepdims=True)
    k *= (2 * np.pi / g.uniform(12.0, 35.0, size=n))[:, None]
    phase = g.uniform(0, 2 * np.pi, size=n)
    out = np.zeros(np.broadcast_shapes(qx.shape, qy.shape, qz.shape), dtype=np.float32)
    for i in range(n):
        out += np.cos(np.float32(k[i, 0]) * qx + np.float32(k[i, 1]) * qy + np.float32(k[i, 2]) * qz
                      + np.float32(phase[i]))
    return out * np.float32(math.sqrt(2.0 / n))


def _lesion_box(h: Hematoma, q, grid: Grid) -> tuple[slice, slice, slice]:
    """Grid index box around a lesion, big enough for the hematoma plus its edema."""
    radius = (3 * (h.volume_ml + h.edema_ml) * 1000 / (4 * np.pi)) ** (1 / 3)
    half = 1.9 * radius * max(h.elongation) + 8.0
    x, y, z = q
    near = (np.abs(x[0] - h.center_mm[0]) <= half) & (np.abs(y[0] - h.center_mm[1]) <= half)
    rows = np.flatnonzero(near.any(axis=1))
    cols = np.flatnonzero(near.any(axis=0))
    zs = np.flatnonzero(np.abs(z[:, 0, 0] - h.center_mm[2]) <= half)
    if len(rows) == 0 or len(cols) == 0 or len(zs) == 0:
        return (slice(0, 0), slice(0, 0), slice(0, 0))
    return (slice(zs[0], zs[-1] + 1), slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))


def _top_n(score: np.ndarray, allowed: np.ndarray, n: int) -> np.ndarray:
    """Boolean mask of the n allowed voxels with the highest score (ties broken by position)."""
    flat = np.where(allowed, score, -np.inf).ravel()
    n = min(n, int(np.count_nonzero(allowed)))
    out = np.zeros(flat.shape, dtype=bool)
    if n > 0:
        out[np.argpartition(-flat, n - 1)[:n]] = True
    return out.reshape(score.shape)


def _connected_top_n(score: np.ndarray, allowed: np.ndarray, n: int) -> np.ndarray:
    """Like `_top_n` but one face-connected piece: one hematoma must be one lesion for lesion counts.

    The plain top-n is tried first (nearly always connected); otherwise the piece holding the best
    voxel keeps growing through its best-scoring face neighbours until it has n voxels.
    """
    sel = _top_n(score, allowed, n)
    lab, count = ndimage.label(sel)
    if count <= 1:
        return sel
    seed = np.unravel_index(int(np.argmax(np.where(sel, score, -np.inf))), score.shape)
    piece = lab == lab[seed]
    n = min(n, int(np.count_nonzero(allowed)))
    while (have := int(np.count_nonzero(piece))) < n:
        frontier = ndimage.binary_dilation(piece) & allowed & ~piece
        if not frontier.any():
            break
        # Half the frontier at most per step keeps the growth following the score, not a plain dilation.
        take = min(n - have, max(1, int(np.count_nonzero(frontier)) // 2))
        piece |= _top_n(score, frontier, take)
    return piece


def _place_hematoma(h: Hematoma, index: int, box, q, brain, labels, owner, hu, vv: float, spacing) -> None:
    if h.volume_ml <= 0:
        return
    x, y, z = _box_coordinates(q, box)
    e = np.asarray(h.elongation, dtype=np.float32)
    e = e / np.prod(e) ** (1 / 3)
    rho = np.sqrt(((x - h.center_mm[0]) / e[0]) ** 2 + ((y - h.center_mm[1]) / e[1]) ** 2
                  + ((z - h.center_mm[2]) / e[2]) ** 2)
    radius = (3 * h.volume_ml * 1000 / (4 * np.pi)) ** (1 / 3)
    score = -rho / radius + 0.12 * _smooth_field(x, y, z, h.shape_seed)
    allowed = brain[box] & (labels[box] == 0)
    sel = _connected_top_n(score, allowed, int(round(h.volume_ml / vv)))
    labels[box][sel] = IPH
    owner[box][sel] = index
    texture = _smooth_field(x, y, z, h.shape_seed + 1)
    lo, hi = HEMATOMA_HU_RANGE
    hu[box][sel] = np.clip(h.density_hu + 4.0 * texture[sel], lo + 1, hi - 1)


def _place_edema(h: Hematoma, index: int, box, q, brain, labels, owner, hu, vv: float, spacing) -> None:
    if h.edema_ml <= 0:
        return
    own = (owner[box] == index) & (labels[box] == 1)
    if not own.any():
        return
    x, y, z = _box_coordinates(q, box)
    dist = ndimage.distance_transform_edt(~own, sampling=spacing).astype(np.float32)
    # Finger-like spread: distance modulated by a smooth field, so the rim is uneven as along white matter.
    score = -(dist + 2.0 * _smooth_field(x, y, z, h.shape_seed + 2))
    allowed = brain[box] & (labels[box] == 0)
    sel = _top_n(score, allowed, int(round(h.edema_ml / vv)))
    labels[box][sel] = EDEMA
    owner[box][sel] = index
    lo, hi = EDEMA_HU_RANGE
    hu[box][sel] = np.clip(18.0 + 3.0 * _smooth_field(x, y, z, h.shape_seed + 3)[sel], lo + 0.5, hi - 0.5)


def _place_extra_axial(ea: ExtraAxial, q, head: HeadShape, labels, hu, vv: float) -> float:
    """A crescent hugging the inner table, labelled EAH; returns its volume in mL."""
    x, y, z = q
    ax, ay, az = head.semi_axes
    d = np.asarray(ea.direction, dtype=np.float32)
    d[0] = abs(d[0]) * (1 if ea.side == "left" else -1)
    d /= np.linalg.norm(d)
    r = np.sqrt(x * x + y * y + z * z) + np.float32(1e-3)
    s = np.sqrt((x / ax) ** 2 + (y / ay) ** 2 + (z / az) ** 2)
    depth = r * (1 - 1 / np.maximum(s, np.float32(1e-3)))  # <= 0 inside the inner table
    cos_angle = (x * d[0] + y * d[1] + z * d[2]) / r
    if ea.shape == "lentiform":
        # A lens: thickness falls steeply with the angle from its centre, so it is thick and short.
        weight = np.clip(cos_angle, 0, None) ** 20
        score = (weight - (-depth) / 45.0).astype(np.float32)
    else:
        weight = np.clip(cos_angle, 0, None) ** 1.5
        # Thickest where the direction meets the skull, thinning toward the crescent's tips.
        score = (weight - (-depth) / 25.0).astype(np.float32)
    allowed = (depth <= 0) & (labels == 0) & (weight > 0.05)
    idx = np.nonzero(allowed)
    if len(idx[0]) == 0:
        return 0.0
    # One connected collection (the biomarkers measure the largest one), found within the box of the allowed voxels.
    box = tuple(slice(int(i.min()), int(i.max()) + 1) for i in idx)
    sel = _connected_top_n(score[box], allowed[box], int(round(ea.volume_ml / vv)))
    hu[box][sel] = ea.density_hu
    labels[box][sel] = EAH
    return float(np.count_nonzero(sel)) * vv


def _place_intraventricular(iv: Intraventricular, q, ventricles: np.ndarray, labels, hu, vv: float) -> None:
    """Blood in the most dependent ventricular CSF: a supine patient's IVH layers posteriorly (+y)."""
    idx = np.nonzero(ventricles)
    if len(idx[0]) == 0:
        return
    box = tuple(slice(int(i.min()), int(i.max()) + 1) for i in idx)
    x, y, z = _box_coordinates(q, box)
    allowed = ventricles[box] & (labels[box] == 0)
    n = min(int(round(iv.volume_ml / vv)), int(IVH_MAX_VENTRICLE_FRACTION * np.count_nonzero(allowed)))
    # Posterior first, with a smooth irregularity so the level is not a flat plane.
    score = y + 3.0 * _smooth_field(x, y, z, iv.shape_seed)
    sel = _top_n(score, allowed, n)
    labels[box][sel] = IVH
    lo, hi = HEMATOMA_HU_RANGE
    hu[box][sel] = np.clip(iv.density_hu + 3.0 * _smooth_field(x, y, z, iv.shape_seed + 1)[sel], lo + 1, hi - 1)


def _correlated_noise(shape, sigma: float, corr_px: float, rng: np.random.Generator) -> np.ndarray:
    """In-plane correlated Gaussian noise of standard deviation `sigma` HU, like filtered back-projection's."""
    if sigma <= 0:
        return np.zeros(shape, dtype=np.float32)
    white = rng.standard_normal(shape, dtype=np.float32)
    if corr_px <= 0:
        return white * np.float32(sigma)
    smooth = ndimage.gaussian_filter(white, sigma=(0, corr_px, corr_px), mode="wrap")
    # Filtering lowers the variance by a known factor (4*pi*s^2 in 2D for large s); measure it instead.
    return smooth * np.float32(sigma / max(float(smooth.std()), 1e-6))
