"""Verified bf16 for BLAST-CT's DeepMedic on CPUs that compute bf16 natively: bf16's speed, fp32's labels.

One output block (a tile of `imaging.deepmedic_inference`) is computed in two passes:

1. the fast pass: the two coarse pathways (a tenth of the work) in fp32; the full-resolution
   pathway in bf16 except its first layer (one input channel, cheap; the windowed CT rounded to
   bf16 was the largest single error); the fully connected layers in bf16. Each voxel's class
   probabilities (members averaged) and the margin between its top two;
2. the check: a voxel whose margin exceeds `DELTA` has the label fp32 gives, because no voxel's
   difference of two class probabilities moves by as much as `DELTA` between bf16 and fp32
   (measured, see `DELTA`). The others ("in doubt": a fraction of a percent, on class boundaries)
   are recomputed in fp32: their full-resolution pathway on small boxes of one plane around them
   (the coarse pathways' fp32 output is kept from the fast pass), and the fully connected layers
   on those voxels alone (they act voxel by voxel).

The full-resolution pathway has no sampling lattice, so any box of output voxels gives the values
the whole block gives (the same valid convolutions on the same inputs, up to float32 summation
order, as between tile sizes). Each box costs its cone of 17 planes and 8 voxels of context per
side; boxes are chosen per plane among the doubtful 5 x 5 cells: a connected group's bounding box
where that costs fewer multiply-adds than its cells one by one.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage
from torch import nn

from imaging.deepmedic import CONTEXT, FEATURE_MAPS, N_CONV, SCALE_FACTORS, DeepMedic

# The largest change, bf16 fast pass against fp32, of the difference of any two class probabilities of one voxel,
# over every voxel of every tile of: the phantom crop of tests/data/blast_ct_reference 0.1192, CT-ICH patients 77, 78,
# 79, 80 (each one series) 0.0552 / 0.0657 / 0.0317 / 0.0666, the GE head 0.0461 (patient 81, the speed bench's
# input, 0.0609). DELTA is the largest of them times SAFETY. Re-measure with `bench/segment_bf16_delta_bench.py`
# after any change to the fast pass, the network, torch or oneDNN.
MEASURED_ERROR = 0.1192
SAFETY = 2.0
DELTA = SAFETY * MEASURED_ERROR
CELL = 5  # side (voxels) of the doubtful cells boxes are built from; divides the tiles' 15-voxel lattice
_FULL = SCALE_FACTORS.index((1, 1, 1))  # the full-resolution pathway's index in DeepMedic.paths


def native_bf16_cpu() -> bool:
    """Whether this CPU computes bf16 convolutions in hardware (avx512_bf16 or AMX), as oneDNN reports it."""
    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


class _ToBf16(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(torch.bfloat16)


@dataclass
class FastPass:
    """A member's fast-pass modules beside its fp32 network: full-resolution pathway and fully connected in bf16."""

    net: DeepMedic  # fp32, channels-last: the coarse pathways and the recompute
    full_path: nn.Module  # full-resolution pathway: first layer fp32, then bf16
    fully_connected: nn.Module  # bf16

    @classmethod
    def of(cls, net: DeepMedic, dtype: torch.dtype = torch.bfloat16) -> FastPass:
        """`dtype` other than bf16 (float32) gives a fast pass with fp32's arithmetic: for tests of the check."""
        path = copy.deepcopy(net.paths[_FULL]).to(dtype)
        path.path[1] = nn.Sequential(net.paths[_FULL].path[1], _ToBf16() if dtype == torch.bfloat16 else nn.Identity())
        return cls(net, path.eval(), copy.deepcopy(net.fully_connected).to(dtype).eval())

    def probabilities(self, inp: torch.Tensor, planes: list[int] | None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(5, P, Y, X) class probabilities of the fast pass and the coarse pathways' fp32 features."""
        out_size = tuple(int(s) - 2 * CONTEXT for s in inp.shape[2:])
        coarse = [p(inp, out_size, planes) for i, p in enumerate(self.net.paths) if i != _FULL]
        full = self.full_path(inp, out_size, planes)
        dtype = full.dtype
        parts = [c.to(dtype) for c in coarse] + [full]
        features = torch.empty((1, sum(p.shape[1] for p in parts), *full.shape[2:]), dtype=dtype,
                               memory_format=torch.channels_last_3d)
        logits = self.fully_connected(torch.cat(parts, dim=1, out=features))
        return torch.softmax(logits[0].float(), dim=0), coarse


def top_two_margin(prob: torch.Tensor) -> torch.Tensor:
    """Per voxel, the highest class probability minus the second highest (class axis 0)."""
    top = prob.topk(2, dim=0).values
    return top[0] - top[1]


def _cone_macs(h: int, w: int) -> int:
    """Multiply-adds of the full-resolution pathway for an h x w box of one output plane (its 17-plane cone)."""
    widths = (1, *FEATURE_MAPS)
    return sum((2 * (N_CONV - k) + 1) * (h + 2 * (N_CONV - k)) * (w + 2 * (N_CONV - k)) * 27 * widths[k] * widths[k + 1]
               for k in range(N_CONV))


def plan_boxes(doubt: np.ndarray, cell: int = CELL) -> list[tuple[int, slice, slice]]:
    """Boxes (plane index, y slice, x slice) that cover every doubtful voxel of `doubt` (P, Y, X).

    Per plane the doubtful `cell` x `cell` cells are grouped (cells at most one empty cell apart, whose
    cones mostly overlap); a group is computed as its bounding box when that costs fewer multiply-adds
    (`_cone_macs`) than its cells one by one, else cell by cell.
    """
    planes, ny, nx = doubt.shape[0], -(-doubt.shape[1] // cell), -(-doubt.shape[2] // cell)
    padded = np.zeros((planes, ny * cell, nx * cell), bool)
    padded[:, : doubt.shape[1], : doubt.shape[2]] = doubt
    cells = padded.reshape(planes, ny, cell, nx, cell).any(axis=(2, 4))
    one = _cone_macs(cell, cell)
    boxes = []
    for p in np.flatnonzero(cells.any(axis=(1, 2))):
        groups, _ = ndimage.label(ndimage.binary_dilation(cells[p], np.ones((3, 3), bool)))
        groups = groups * cells[p]
        for g, found in enumerate(ndimage.find_objects(groups), start=1):
            if found is None:
                continue
            members = np.argwhere(groups[found] == g) + [found[0].start, found[1].start]
            h, w = (found[0].stop - found[0].start) * cell, (found[1].stop - found[1].start) * cell
            if _cone_macs(h, w) < len(members) * one:
                boxes.append((int(p), slice(found[0].start * cell, found[0].stop * cell),
                              slice(found[1].start * cell, found[1].stop * cell)))
            else:
                boxes += [(int(p), slice(cy * cell, (cy + 1) * cell), slice(cx * cell, (cx + 1) * cell))
                          for cy, cx in members]
    return [(p, slice(ys.start, min(ys.stop, doubt.shape[1])), slice(xs.start, min(xs.stop, doubt.shape[2])))
            for p, ys, xs in boxes]


def recomputed_fp32(net: DeepMedic, inp: torch.Tensor, planes: list[int], coarse: list[torch.Tensor],
                    doubt: torch.Tensor) -> tuple[torch.Tensor, int]:
    """fp32 class probabilities (5, n) of the doubtful voxels (in `doubt.nonzero()` order) and the boxes computed.

    `inp` the block's input (1, 1, Z + 80, Y + 80, X + 80), `planes` the output z of each plane of
    `doubt` (P, Y, X), `coarse` the coarse pathways' fp32 outputs on those planes (1, 50, P, Y, X).
    """
    boxes = plan_boxes(doubt.numpy())
    full = torch.empty((FEATURE_MAPS[-1], *doubt.shape), dtype=torch.float32)  # filled where doubt is
    layers = net.paths[_FULL].path[1 : 1 + N_CONV]
    by_shape: dict[tuple[int, int], list[tuple[int, slice, slice]]] = {}
    for box in boxes:
        by_shape.setdefault((box[1].stop - box[1].start, box[2].stop - box[2].start), []).append(box)
    for group in by_shape.values():
        crops = [inp[0, :, CONTEXT + planes[p] - N_CONV : CONTEXT + planes[p] + N_CONV + 1,
                     CONTEXT - N_CONV + ys.start : CONTEXT + N_CONV + ys.stop,
                     CONTEXT - N_CONV + xs.start : CONTEXT + N_CONV + xs.stop] for p, ys, xs in group]
        out = layers(torch.stack(crops).contiguous(memory_format=torch.channels_last_3d))  # (n, 50, 1, h, w)
        for (p, ys, xs), o in zip(group, out, strict=True):
            full[:, p, ys, xs] = o[:, 0]
    idx = doubt.nonzero(as_tuple=True)
    features = torch.cat([c[0][(slice(None), *idx)] for c in coarse] + [full[(slice(None), *idx)]], dim=0)
    logits = net.fully_connected(features[None, :, :, None, None].contiguous())
    return torch.softmax(logits[0, :, :, 0, 0], dim=0), len(boxes)


def verified_labels(passes: list[FastPass], inp: torch.Tensor, planes: list[int] | None,
                    delta: float = DELTA) -> tuple[torch.Tensor, dict[str, int]]:
    """(P, Y, X) labels of the block `inp` equal to fp32's: the fast pass, and fp32 where its margin is <= `delta`.

    `planes`: the output z planes wanted (None: all). Returns the labels and counts: voxels, voxels
    recomputed in fp32, boxes computed for them.
    """
    probs, coarse = [], []
    for fast in passes:
        p, c = fast.probabilities(inp, planes)
        probs.append(p)
        coarse.append(c)
    prob = torch.stack(probs).mean(dim=0) if len(probs) > 1 else probs[0]
    labels = prob.argmax(dim=0)
    doubt = top_two_margin(prob) <= delta
    n_doubt = int(doubt.sum())
    boxes = 0
    if n_doubt:
        z = list(range(inp.shape[2] - 2 * CONTEXT)) if planes is None else planes
        exact = []
        for fast, c in zip(passes, coarse, strict=True):
            e, boxes_one = recomputed_fp32(fast.net, inp, z, c, doubt)
            exact.append(e)
            boxes += boxes_one
        labels[doubt] = (torch.stack(exact).mean(dim=0) if len(exact) > 1 else exact[0]).argmax(dim=0)
    return labels, {"voxels": int(doubt.numel()), "recomputed_voxels": n_doubt, "recomputed_boxes": boxes}
