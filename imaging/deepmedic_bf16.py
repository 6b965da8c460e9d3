"""Verified bf16 for BLAST-CT's DeepMedic on CPUs that compute bf16 natively: bf16's speed, fp32's labels.

One output block (a tile of `imaging.deepmedic_inference`) is computed in two passes:

1. the fast pass: the two coarse pathways (7 % of the fp32 network's time on patient 81) in fp32;
   the full-resolution pathway in bf16 except its first layer (one input channel, cheap; with the
   windowed CT rounded to bf16 the largest change below was 0.097 on patient 81, without 0.061); the
   fully connected layers in bf16 (in fp32 they changed that largest change little: 0.093). Each voxel's class
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
side; per plane the doubtful 5 x 5 cells are merged greedily into larger boxes while a merge saves
multiply-adds (neighbouring cones overlap), and boxes at about the same place on neighbouring read
planes are joined into one stack over those planes where that saves multiply-adds (their cones share
most planes; `plan_stacks`). On CT-ICH patient 81 (one thread) the fast pass took 13.9 CPU s and the
recompute of its 0.88 % doubtful voxels 4.7 s (5.9 s with each connected group of cells either one box
or cell by cell; joining stacks across planes: 264 -> 236 G multiply-adds, 4.66 -> 4.44 CPU s, the same
values bit for bit), against 25-27 s for the fp32 network.
"""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from imaging.deepmedic import CONTEXT, FEATURE_MAPS, N_CONV, SCALE_FACTORS, DeepMedic

# The largest change, bf16 fast pass against fp32, of the difference of any two class probabilities of one voxel,
# over every voxel of every tile of: the phantom crop of tests/data/blast_ct_reference 0.1192, CT-ICH patients 77, 78,
# 79, 80 (each one series) 0.0552 / 0.0657 / 0.0317 / 0.0666, the GE head 0.0461 (patient 81, the speed bench's
# input, 0.0609). DELTA is the largest of them times SAFETY. Re-measure with `bench/segment_bf16_delta_bench.py`
# after any change to the fast pass, the network, torch or oneDNN.
MEASURED_ERROR = 0.1192
# The sha256 of each network file MEASURED_ERROR was measured on (the delta bench prints it): BLAST-CT's member_01.
# The bound holds for these weights only; any other network (another ensemble member, a checkpoint adapted from
# BLAST-CT with retrained layers) runs fp32 under precision "auto" until it is measured and listed here.
MEASURED_NETWORKS = frozenset({"70518abbb873f7c7e4a8c9d41f91a96f38e1107a0bc1d6a6ff29e2da7c3bdec8"})
SAFETY = 2.0
DELTA = SAFETY * MEASURED_ERROR
CELL = 5  # side (voxels) of the cells boxes are built from; on patient 81 cells of 3 and 1 recomputed in the same time
_FULL = SCALE_FACTORS.index((1, 1, 1))  # the full-resolution pathway's index in DeepMedic.paths


def native_bf16_cpu() -> bool:
    """Whether this CPU computes bf16 convolutions in hardware (avx512_bf16 or AMX), as oneDNN reports it."""
    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


class _ToBf16(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(torch.bfloat16)


def _fp32_normalization(module: nn.Module) -> nn.Module:
    """`module` with its BatchNorm and PReLU parameters back in float32 (its convolutions stay as they are).

    On bf16 activations PyTorch's CPU BatchNorm with float32 statistics and affine parameters takes half the time
    of the all-bf16 one (2.8 against 6.2 ms for 40 channels of 30 x 100 x 100, channels-last, one thread) and
    gives bf16 out, without rounding the parameters. Folding BatchNorm into the convolutions instead does not fit
    this network: each BatchNorm comes before its leaky ReLU (pre-activation), and with half of the channels'
    scales negative a fold would need a per-channel sign on every residual add (`addcmul_`, 3.7x an `add_`).
    """
    for m in module.modules():
        if isinstance(m, nn.BatchNorm3d | nn.PReLU):
            m.float()
    return module


@dataclass
class FastPass:
    """A member's fast-pass modules beside its fp32 network: full-resolution pathway and fully connected in bf16."""

    net: DeepMedic  # fp32, channels-last: the coarse pathways and the recompute
    full_path: nn.Module  # full-resolution pathway: first layer fp32, then bf16
    fully_connected: nn.Module  # bf16

    @classmethod
    def of(cls, net: DeepMedic, dtype: torch.dtype = torch.bfloat16) -> FastPass:
        """`dtype` other than bf16 (float32) gives a fast pass with fp32's arithmetic: for tests of the check."""
        path = _fp32_normalization(copy.deepcopy(net.paths[_FULL]).to(dtype))
        path.path[1] = nn.Sequential(net.paths[_FULL].path[1], _ToBf16() if dtype == torch.bfloat16 else nn.Identity())
        return cls(net, path.eval(), _fp32_normalization(copy.deepcopy(net.fully_connected).to(dtype)).eval())

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


def _cone_macs(h: np.ndarray | int, w: np.ndarray | int) -> np.ndarray | int:
    """Multiply-adds of the full-resolution pathway for h x w boxes of one output plane (their 17-plane cones)."""
    widths = (1, *FEATURE_MAPS)
    return sum((2 * (N_CONV - k) + 1) * (h + 2 * (N_CONV - k)) * (w + 2 * (N_CONV - k)) * 27 * widths[k] * widths[k + 1]
               for k in range(N_CONV))


def _merged_boxes(cells: np.ndarray, cell: int = CELL) -> list[tuple[int, int, int, int]]:
    """Boxes (y0, y1, x0, x1, in cells) covering the True cells of a 2D grid, merged while merging saves work.

    Greedy: starting from one box per cell, the pair of boxes whose bounding box costs the most multiply-adds
    less than the two apart (`_cone_macs`: their cones overlap) is merged, boxes inside it dropped, until no
    merge saves any.
    """
    b = np.array([(y, y + 1, x, x + 1) for y, x in np.argwhere(cells)], dtype=np.int64).reshape(-1, 4)
    while len(b) > 1:
        y0 = np.minimum(b[:, None, 0], b[None, :, 0])
        y1 = np.maximum(b[:, None, 1], b[None, :, 1])
        x0 = np.minimum(b[:, None, 2], b[None, :, 2])
        x1 = np.maximum(b[:, None, 3], b[None, :, 3])
        alone = _cone_macs((b[:, 1] - b[:, 0]) * cell, (b[:, 3] - b[:, 2]) * cell)
        saving = alone[:, None] + alone[None, :] - _cone_macs((y1 - y0) * cell, (x1 - x0) * cell)
        np.fill_diagonal(saving, -1)
        i, j = np.unravel_index(int(np.argmax(saving)), saving.shape)
        if saving[i, j] <= 0:
            break
        m = np.array([y0[i, j], y1[i, j], x0[i, j], x1[i, j]])
        inside = (b[:, 0] >= m[0]) & (b[:, 1] <= m[1]) & (b[:, 2] >= m[2]) & (b[:, 3] <= m[3])
        b = np.vstack([b[~inside], m[None]])
    return [tuple(int(v) for v in row) for row in b]


def plan_boxes(doubt: np.ndarray, cell: int = CELL) -> list[tuple[int, slice, slice]]:
    """Boxes (plane index, y slice, x slice) that cover every doubtful voxel of `doubt` (P, Y, X).

    Per plane, the `cell` x `cell` cells holding doubtful voxels, merged into larger boxes where one box's cone
    costs fewer multiply-adds than the boxes' cones apart (`_merged_boxes`).
    """
    planes, ny, nx = doubt.shape[0], -(-doubt.shape[1] // cell), -(-doubt.shape[2] // cell)
    padded = np.zeros((planes, ny * cell, nx * cell), bool)
    padded[:, : doubt.shape[1], : doubt.shape[2]] = doubt
    cells = padded.reshape(planes, ny, cell, nx, cell).any(axis=(2, 4))
    return [(int(p), slice(y0 * cell, min(y1 * cell, doubt.shape[1])), slice(x0 * cell, min(x1 * cell, doubt.shape[2])))
            for p in np.flatnonzero(cells.any(axis=(1, 2))) for y0, y1, x0, x1 in _merged_boxes(cells[p], cell)]


Stack = tuple[tuple[int, ...], slice, slice]  # plane indices (consecutive), y slice, x slice: one box on those planes


def _stack_macs(h: int, w: int, zs: tuple[int, ...]) -> int:
    """Multiply-adds of the full-resolution pathway for an h x w box on the output planes `zs` (sorted z).

    Layer by layer as `_run_stacks` computes them: the union of the planes' cones while it is one run of planes,
    then a slab per plane. For one plane this is `_cone_macs`.
    """
    widths, total, dense = (1, *FEATURE_MAPS), 0, True
    for k in range(N_CONV):
        r = N_CONV - k
        dense = dense and all(b - a <= 2 * r + 1 for a, b in itertools.pairwise(zs))
        planes = zs[-1] - zs[0] + 2 * r + 1 if dense else len(zs) * (2 * r + 1)
        total += planes * (h + 2 * r) * (w + 2 * r) * 27 * widths[k] * widths[k + 1]
    return total


def plan_stacks(doubt: np.ndarray, planes: list[int], cell: int = CELL) -> list[Stack]:
    """`plan_boxes`' boxes, joined across neighbouring planes where one box on both costs less than two.

    Read planes a few voxels apart share most of their 17-plane cones, so a box on plane i and one at about the
    same place on plane i + 1 are computed as one (their bounding box, on both planes) when `_stack_macs` says
    that saves multiply-adds: greedily, plane after plane, the pair (a stack ending on the previous plane, a box
    of this plane) saving the most first, each joined at most once per plane.
    """
    by_plane: dict[int, list[tuple[slice, slice]]] = {}
    for p, ys, xs in plan_boxes(doubt, cell):
        by_plane.setdefault(p, []).append((ys, xs))

    def cost(st: Stack) -> int:
        return _stack_macs(st[1].stop - st[1].start, st[2].stop - st[2].start, tuple(planes[i] for i in st[0]))

    def union(a: Stack, b: Stack) -> Stack:
        return ((*a[0], *b[0]), slice(min(a[1].start, b[1].start), max(a[1].stop, b[1].stop)),
                slice(min(a[2].start, b[2].start), max(a[2].stop, b[2].stop)))

    done: list[Stack] = []
    open_: list[Stack] = []
    for p in sorted(by_plane):
        new: list[Stack] = [((p,), ys, xs) for ys, xs in by_plane[p]]
        ending = [st for st in open_ if st[0][-1] == p - 1]
        done += [st for st in open_ if st[0][-1] != p - 1]
        joined: list[Stack] = []
        while ending and new:
            saving = np.array([[cost(a) + cost(b) - cost(union(a, b)) for b in new] for a in ending])
            i, j = np.unravel_index(int(np.argmax(saving)), saving.shape)
            if saving[i, j] <= 0:
                break
            joined.append(union(ending.pop(i), new.pop(j)))
        done += ending
        open_ = joined + new
    return done + open_


def _run_stacks(layers: nn.Module, crops: torch.Tensor, zs: tuple[int, ...]) -> torch.Tensor:
    """The full-resolution pathway's `layers` on `crops` (n, 1, zs[-1] - zs[0] + 17, h + 16, w + 16): (n, 50, len(zs),
    h, w), the output planes `zs` (relative to zs[0]).

    Dense over the planes while the planes' cones make one run, then one slab per plane stacked on the batch axis
    (as `imaging.deepmedic._Pathway._planes`): the values are those of each plane's cone alone.
    """
    h, n, blocks = crops, crops.shape[0], list(layers)
    for k, block in enumerate(blocks):
        r = N_CONV - k  # planes of context each side in the layer's input
        if len(zs) > 1 and any(b - a > 2 * r + 1 for a, b in itertools.pairwise(zs)):
            h = torch.cat([h[:, :, z - zs[0] : z - zs[0] + 2 * r + 1] for z in zs], dim=0)
            for rest in blocks[k:]:
                h = rest(h)
            return h[:, :, 0].reshape(len(zs), n, *h.shape[1:2], *h.shape[3:]).permute(1, 2, 0, 3, 4)
        h = block(h)
    return h[:, :, [z - zs[0] for z in zs]]


def recomputed_fp32(net: DeepMedic, inp: torch.Tensor, planes: list[int], coarse: list[torch.Tensor],
                    doubt: torch.Tensor) -> tuple[torch.Tensor, int]:
    """fp32 class probabilities (5, n) of the doubtful voxels (in `doubt.nonzero()` order) and the boxes computed.

    `inp` the block's input (1, 1, Z + 80, Y + 80, X + 80), `planes` the output z of each plane of
    `doubt` (P, Y, X), `coarse` the coarse pathways' fp32 outputs on those planes (1, 50, P, Y, X).
    """
    boxes = plan_stacks(doubt.numpy(), planes)
    full = torch.empty((FEATURE_MAPS[-1], *doubt.shape), dtype=torch.float32)  # filled where doubt is
    layers = net.paths[_FULL].path[1 : 1 + N_CONV]
    by_shape: dict[tuple[int, int, tuple[int, ...]], list[Stack]] = {}
    for box in boxes:
        zs = tuple(planes[p] - planes[box[0][0]] for p in box[0])
        by_shape.setdefault((box[1].stop - box[1].start, box[2].stop - box[2].start, zs), []).append(box)
    for (_, _, zs), group in by_shape.items():
        crops = [inp[0, :, CONTEXT + planes[ps[0]] - N_CONV : CONTEXT + planes[ps[-1]] + N_CONV + 1,
                     CONTEXT - N_CONV + ys.start : CONTEXT + N_CONV + ys.stop,
                     CONTEXT - N_CONV + xs.start : CONTEXT + N_CONV + xs.stop] for ps, ys, xs in group]
        out = _run_stacks(layers, torch.stack(crops).contiguous(memory_format=torch.channels_last_3d), zs)
        for (ps, ys, xs), o in zip(group, out, strict=True):  # o: (50, len(ps), h, w)
            full[:, list(ps), ys, xs] = o
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
