"""The preprocessing transform between a HU volume and the network's input, and back.

Versioned and serializable (`to_dict` / `from_dict`): it is stored in every checkpoint, and the
transform restored from the checkpoint is the one used at inference. Steps, per volume:

1. head box: voxels above `head_threshold_hu` (skin, skull, brain; not air), largest connected
   component (drops the head holder and table), bounding box over all slices plus a margin,
   made square around its centre (aspect kept by padding with air);
2. window: clamp to [`window_min`, `window_max`] HU (CREACTIVE: 0-80) and scale to [0, 1];
3. in-plane resize of the square box to `size` x `size` (bilinear, antialiased when shrinking;
   labels nearest);
4. 2.5D: `context_slices` neighbours on each side as extra channels (edge slices repeated).

Slices where the head covers less than `min_head_fraction` of the box are marked as outside
the head: the network never sees them and their mask is background.
`to_native` maps class scores back to the native grid (bilinear on scores, then argmax).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

PREPROCESSING_VERSION = "1"


@dataclass(frozen=True)
class HeadBox:
    """Where the network's square input sits on the native grid of one volume."""

    y0: int
    x0: int
    side: int  # native pixels; the box may extend past the image (padded with air)
    in_head: np.ndarray  # (z,) bool: slices that reach the network
    native_shape: tuple[int, int, int]


@dataclass(frozen=True)
class Preprocessing:
    window_min: float = 0.0
    window_max: float = 80.0
    size: int = 256
    context_slices: int = 0
    head_threshold_hu: float = -300.0
    margin_px: int = 4
    min_head_fraction: float = 0.02
    version: str = PREPROCESSING_VERSION

    @property
    def in_channels(self) -> int:
        return 1 + 2 * self.context_slices

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Preprocessing:
        if str(d.get("version")) != PREPROCESSING_VERSION:
            raise ValueError(
                f"preprocessing version {d.get('version')!r} in the checkpoint; this code applies version "
                f"{PREPROCESSING_VERSION}: retrain the model or use the ctstudy release that made it"
            )
        return cls(**d)

    # ------------------------------------------------------------ forward

    def head_box(self, hu: np.ndarray) -> HeadBox:
        """The square in-plane box around the head, and which slices contain head at all."""
        nz, ny, nx = hu.shape
        # Subsampled by 4 in-plane: the component search only needs the coarse shape, and is 16x cheaper.
        coarse = hu[:, ::4, ::4] > self.head_threshold_hu
        lab, n = ndimage.label(coarse)
        if n == 0:
            return HeadBox(0, 0, max(ny, nx), np.zeros(nz, bool), (nz, ny, nx))
        sizes = np.bincount(lab.ravel())[1:]
        head = lab == (int(np.argmax(sizes)) + 1)
        zs, ys, xs = np.nonzero(head)
        y_lo, y_hi = ys.min() * 4, min(ny, ys.max() * 4 + 4)
        x_lo, x_hi = xs.min() * 4, min(nx, xs.max() * 4 + 4)
        side = max(y_hi - y_lo, x_hi - x_lo) + 2 * self.margin_px
        cy, cx = (y_lo + y_hi) // 2, (x_lo + x_hi) // 2
        per_slice = head.sum(axis=(1, 2)) * 16.0
        in_head = per_slice >= self.min_head_fraction * side * side
        return HeadBox(cy - side // 2, cx - side // 2, int(side), in_head, (nz, ny, nx))

    def _crop(self, arr: np.ndarray, box: HeadBox, fill: float) -> np.ndarray:
        nz, ny, nx = arr.shape
        out = np.full((nz, box.side, box.side), fill, dtype=arr.dtype)
        sy0, sx0 = max(0, box.y0), max(0, box.x0)
        sy1, sx1 = min(ny, box.y0 + box.side), min(nx, box.x0 + box.side)
        out[:, sy0 - box.y0 : sy1 - box.y0, sx0 - box.x0 : sx1 - box.x0] = arr[:, sy0:sy1, sx0:sx1]
        return out

    def windowed(self, hu: np.ndarray, box: HeadBox) -> np.ndarray:
        """(z, size, size) float32 in [0, 1]: the windowed, cropped, resized slices (all of them)."""
        # Cropped first (the air added around the image windows to 0 either way), then windowed in place:
        # the same values, computed over the box only and without temporaries of the whole volume.
        crop = torch.from_numpy(self._crop(hu.astype(np.float32, copy=False), box, self.window_min))[:, None]
        crop.clamp_(self.window_min, self.window_max).sub_(self.window_min).div_(self.window_max - self.window_min)
        if box.side != self.size:
            crop = F.interpolate(crop, size=(self.size, self.size), mode="bilinear", align_corners=False,
                                 antialias=box.side > self.size).clamp_(0.0, 1.0)  # antialias overshoots
        return crop[:, 0].numpy()

    def channels(self, slices: np.ndarray, index: np.ndarray) -> np.ndarray:
        """(len(index), C, size, size): each slice with its 2.5D neighbours (edges repeated)."""
        if self.context_slices == 0:
            return slices[index][:, None]
        offsets = np.arange(-self.context_slices, self.context_slices + 1)
        idx = np.clip(index[:, None] + offsets[None, :], 0, slices.shape[0] - 1)
        return slices[idx]

    def labels(self, labels: np.ndarray, box: HeadBox) -> np.ndarray:
        """(z, size, size) uint8 labels on the network grid (nearest)."""
        crop = torch.from_numpy(self._crop(labels.astype(np.uint8), box, 0))[:, None].float()
        if box.side != self.size:
            crop = F.interpolate(crop, size=(self.size, self.size), mode="nearest-exact")
        return crop[:, 0].round().to(torch.uint8).numpy()

    # ------------------------------------------------------------ inverse

    def to_native(self, scores: torch.Tensor, box: HeadBox, slice_index: np.ndarray, out: np.ndarray) -> None:
        """Write argmax labels of network `scores` (n, K, size, size) for `slice_index` into native `out` (z,y,x)."""
        _, ny, nx = box.native_shape
        s = scores.float()
        lab = upsampled_argmax(s, box.side) if box.side != self.size else s.argmax(dim=1)
        sy0, sx0 = max(0, box.y0), max(0, box.x0)
        sy1, sx1 = min(ny, box.y0 + box.side), min(nx, box.x0 + box.side)
        lab = lab[:, sy0 - box.y0 : sy1 - box.y0, sx0 - box.x0 : sx1 - box.x0]
        out[slice_index, sy0:sy1, sx0:sx1] = lab.to(torch.uint8).cpu().numpy()


MIXED_FRACTION_FOR_FULL = 0.25  # above this share of boundary pixels, interpolating everything is cheaper
_PACKED_CLASSES = 128  # classes whose labels fit in 7 bits (upsampled_argmax)


def _bilinear_source(out_size: int, in_size: int, device: torch.device) -> tuple[torch.Tensor, ...]:
    """PyTorch's bilinear source of each output index (align_corners=False): i0, i1 and the weight of i1."""
    scale = torch.tensor(in_size / out_size, dtype=torch.float32)
    src = ((torch.arange(out_size, dtype=torch.float32) + 0.5) * scale - 0.5).clamp_(min=0.0)
    i0 = src.to(torch.int64)
    i1 = torch.where(i0 < in_size - 1, i0 + 1, i0)
    return i0.to(device), i1.to(device), (src - i0).to(device)


def upsampled_argmax(scores: torch.Tensor, side: int) -> torch.Tensor:
    """argmax over classes of `scores` (n, K, h, w) bilinearly resized to (side, side), as (n, side, side) uint8.

    The same labels as `F.interpolate(scores, (side, side), mode="bilinear").argmax(1)` (up to float
    rounding at exact ties), interpolating only near class boundaries: bilinear weights are a convex
    combination of the 2 x 2 source pixels around each output pixel, so where all of them have
    class c as their argmax the interpolated scores do too. Output pixels whose 3 x 3 source
    neighbourhood holds one class take it directly; the others (lesion borders, a few percent of a
    head CT) are interpolated one by one. The resize of all classes at full resolution and the
    argmax over it were half of the student's time per scan (bench/distill_bench.py).
    """
    n, k, h, w = scores.shape
    if k > _PACKED_CLASSES:
        raise ValueError(f"upsampled_argmax: {k} classes; at most {_PACKED_CLASSES} are supported")
    low = scores.argmax(dim=1).to(torch.uint8)
    uniform = _neighbourhood(low, torch.maximum) == _neighbourhood(low, torch.minimum)
    y0, y1, ly = _bilinear_source(side, h, scores.device)
    x0, x1, lx = _bilinear_source(side, w, scores.device)
    # Nearest source index: each output pixel's two bilinear sources are it and a neighbour.
    ny = torch.where(ly >= 0.5, y1, y0)
    nx = torch.where(lx >= 0.5, x1, x0)
    # Both maps resized in one gather: the label in the low 7 bits, "not uniform" in the top bit.
    packed = low | (~uniform).to(torch.uint8).mul_(128)
    labels = packed.index_select(1, ny).index_select(2, nx)
    mixed = labels >= 128
    b, yy, xx = mixed.nonzero(as_tuple=True)
    if b.numel() > MIXED_FRACTION_FOR_FULL * mixed.numel():
        return F.interpolate(scores, size=(side, side), mode="bilinear", align_corners=False).argmax(dim=1).to(
            torch.uint8)
    labels.bitwise_and_(127)
    if b.numel():
        v = scores.permute(0, 2, 3, 1)  # (n, h, w, K)
        wy, wx = ly[yy, None], lx[xx, None]
        ya, yb, xa, xb = y0[yy], y1[yy], x0[xx], x1[xx]
        top = (1 - wx) * v[b, ya, xa] + wx * v[b, ya, xb]
        bottom = (1 - wx) * v[b, yb, xa] + wx * v[b, yb, xb]
        labels[b, yy, xx] = ((1 - wy) * top + wy * bottom).argmax(dim=1).to(torch.uint8)
    return labels


def _neighbourhood(a: torch.Tensor, pick) -> torch.Tensor:  # noqa: ANN001 - torch.maximum or torch.minimum
    """`pick` (max or min) over each pixel's 3 x 3 neighbourhood of `a` (n, h, w), edges clipped.

    Two separable passes of shifted views, on uint8: 0.7 ms against 22 ms for `F.max_pool2d` on a batch of
    16 x 256 x 256 (one thread).
    """
    out = a.clone()
    for dim in (1, 2):
        src = out.clone()
        n = a.shape[dim]
        lo, hi = out.narrow(dim, 1, n - 1), out.narrow(dim, 0, n - 1)
        pick(lo, src.narrow(dim, 0, n - 1), out=lo)
        pick(hi, src.narrow(dim, 1, n - 1), out=hi)
    return out
