"""Fast whole-volume inference of BLAST-CT's DeepMedic networks, on CPU or CUDA.

The reference tool (`blast-ct` on PyPI) resamples to 1 mm, cuts the whole volume, air included,
into 110-voxel patches that each yield a 30-voxel output block (73 % of every patch is context),
batches 32 of them (about 5 GB) and writes the labels back with SimpleITK. Here, with the same
arithmetic (`tests/imaging/test_deepmedic.py` checks the labels against the tool's):

- resample the received slices to 1 mm (`imaging.regrid`, the tool's grid) and window -15..100 HU;
- crop to the head: the largest connected body of non-air voxels, filled and dilated, and only
  output blocks that hold head are computed;
- dense tiles: output blocks of up to `tile` voxels per axis (multiples of 15 on the 15-voxel
  lattice, so the coarse pathways sample what the tool's 30-voxel patches sample), each with
  only the 40 voxels of context per side the receptive field needs;
- `torch.inference_mode`; bf16 autocast on CUDA; ensemble members averaged in probability;
- labels mapped back onto the received slices (nearest 1 mm voxel, as the tool does).
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from imaging.blast_ct_weights import (
    BLAST_CT_DIR,
    config,
    load_member,
    member_names,
    version_of_hashes,
)
from imaging.deepmedic import CONTEXT, TILE_STEP, DeepMedic
from imaging.deepmedic_bf16 import DELTA, MEASURED_NETWORKS, FastPass, native_bf16_cpu, verified_labels
from imaging.heap import main_heap_threads, reused_heap
from imaging.regrid import RegularGrid, labels_to_slices, received_planes, regular_grid, resample_to_grid
from imaging.volume import Volume

RESOLUTION_MM = (1.0, 1.0, 1.0)
HEAD_MARGIN_VOX = 3  # dilation of the head mask: blocks touching the skin are still computed
Tile = tuple[slice, slice, slice]  # an output block on the 1 mm grid
DEFAULT_TILE = 60  # output voxels per axis; see bench/segment_bench.py for the memory/speed trade-off
PRECISIONS = ("auto", "fp32")


def windowed(hu: np.ndarray, lower: float, upper: float) -> np.ndarray:
    """The reference's IntensityWindowNormalization: clip to [lower, upper], map to [-1, 1]."""
    x = np.clip(hu, lower, upper)
    return ((2.0 * x - lower - upper) / (upper - lower)).astype(np.float32)


def head_mask(hu: np.ndarray, lower: float) -> np.ndarray:
    """Voxels of the head: the largest connected body above the window floor, holes filled per slice, dilated.

    Air and fat fall below the window floor (-15 HU) and look the same to the network; the
    scanner table or a head holder is a separate, smaller body and is left out.
    """
    body = hu > lower
    labels, n = ndimage.label(body)
    if n == 0:
        return body
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    body = labels == int(np.argmax(sizes))
    for z in range(body.shape[0]):
        body[z] = ndimage.binary_fill_holes(body[z])
    return ndimage.binary_dilation(body, iterations=HEAD_MARGIN_VOX)


def _axis_blocks(lo: int, hi: int, tile: int) -> list[tuple[int, int]]:
    """[lo, hi) covered by blocks on the 15-voxel lattice, each at most `tile`, sizes as even as possible."""
    lo = lo // TILE_STEP * TILE_STEP
    hi = -(-hi // TILE_STEP) * TILE_STEP
    cells = (hi - lo) // TILE_STEP
    n = -(-cells // (tile // TILE_STEP))
    bounds = [lo + TILE_STEP * round(i * cells / n) for i in range(n + 1)]
    return [(a, b) for a, b in itertools.pairwise(bounds) if b > a]


def tile_for_planes(tile: int, fraction: float) -> int:
    """The tile side for a volume of which only `fraction` of the z planes are read (thick received slices).

    The largest multiple of 15 voxels whose output block, thinned to the planes read, holds no more
    voxels than a dense block of `tile`: the last layers' memory stays that of `tile` (at 250
    channels they dominate), while the wider block needs proportionally less context around it.
    At most 1.5 x `tile`: the first layers compute every plane, and their memory grows with the cube.
    On 5 mm slices (a fifth of the planes) 60 becomes 90: 10 % less CPU time on patient 81 in one
    same-session comparison (within the noise of another), peak memory still under 1.1 GB
    (bench/segment_bench.py --real-ct).
    """
    best, cap = tile, tile * 3 // 2 // TILE_STEP * TILE_STEP
    while best + TILE_STEP <= cap and ((best + TILE_STEP) ** 3) * fraction <= tile**3:
        best += TILE_STEP
    return best


def plan_tiles(mask: np.ndarray, tile: int) -> list[Tile]:
    """Output blocks that hold head, each shrunk to the head's extent inside it (on the 15-voxel lattice)."""
    if not mask.any():
        return []
    box = [np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != ax))) for ax in range(3)]
    axes = [_axis_blocks(int(b[0]), int(b[-1]) + 1, tile) for b in box]
    tiles = []
    for block in itertools.product(*axes):
        sl = tuple(slice(a, min(b, s)) for (a, b), s in zip(block, mask.shape, strict=True))
        sub = mask[sl]
        if not sub.any():
            continue
        shrunk = []
        for ax, (a, _b) in enumerate(block):
            idx = np.flatnonzero(sub.any(axis=tuple(o for o in range(3) if o != ax)))
            lo = a + int(idx[0]) // TILE_STEP * TILE_STEP
            hi = a + -(-(int(idx[-1]) + 1) // TILE_STEP) * TILE_STEP
            shrunk.append(slice(lo, hi))
        tiles.append(tuple(shrunk))
    return tiles  # type: ignore[return-value]


def tile_blocks(x: np.ndarray, mask: np.ndarray, tile: int,
                planes: np.ndarray | None = None) -> tuple[np.ndarray, list[tuple[Tile, list[int] | None]]]:
    """`x` padded for every block's context, and the output blocks holding `mask` with the z planes each computes.

    `planes`: the z planes anyone will read (the received slices' nearest planes; None: all), given per
    block relative to its start (None: all of its planes).
    """
    wanted = None
    if planes is not None:
        wanted = np.zeros(x.shape[0], bool)
        wanted[planes[planes >= 0]] = True
        mask = mask & wanted[:, None, None]
        tile = tile_for_planes(tile, float(wanted.mean()))
    tiles = plan_tiles(mask, tile)
    # Pad once with the edge value (the reference pads its patches that way) so every block has its context.
    end_pad = [max(0, max((t[a].stop for t in tiles), default=0) - x.shape[a]) for a in range(3)]
    padded = np.pad(x, [(CONTEXT, CONTEXT + e) for e in end_pad], mode="edge")
    blocks = [(t, None if wanted is None else [z - t[0].start for z in range(t[0].start, min(t[0].stop, x.shape[0]))
                                               if wanted[z]]) for t in tiles]
    return padded, blocks


def block_input(padded: np.ndarray, t: Tile) -> np.ndarray:
    """The input of output block `t`: the block and its context, from `tile_blocks`' padded volume (contiguous)."""
    return np.ascontiguousarray(padded[tuple(slice(s.start, s.stop + 2 * CONTEXT) for s in t)])


@dataclass
class DeepMedicSegmenter:
    """BLAST-CT's networks (`members`, averaged in probability) prepared for one device.

    A `imaging.segmenters.LesionSegmenter`: `name`, `version`, `members`, `device`, `segment`.
    """

    device: torch.device
    member_names: list[str]
    tile: int = DEFAULT_TILE
    folder: Path = BLAST_CT_DIR
    name: str = "blast-ct"
    resamples_slices: bool = True  # samples its 1 mm grid from each received slice's own position
    # CPU: tiles computed at once, each on one thread (None: torch's intra-op thread count). This network gains
    # little from a second intra-op thread (its per-layer parallel regions are short and end in barriers),
    # while whole tiles on separate threads share nothing; see `_run_concurrently`.
    workers: int | None = None
    # "auto": verified bf16 (`imaging.deepmedic_bf16`, labels equal to fp32's) on a CPU that computes bf16 natively,
    # for networks whose bf16 error bound was measured (`MEASURED_NETWORKS`), fp32 elsewhere; "fp32": fp32
    # everywhere. CUDA runs bf16 autocast either way.
    precision: str = "auto"
    bf16_margin: float = DELTA  # verified bf16: voxels whose top-two probability margin is at most this get fp32
    _nets: list[torch.nn.Module] = field(default_factory=list, init=False, repr=False)
    _fast: list[FastPass] = field(default_factory=list, init=False, repr=False)
    _loaded_sha256: list[str] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.tile % TILE_STEP:
            raise ValueError(f"tile must be a multiple of {TILE_STEP} voxels, not {self.tile}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {self.precision!r}")
        data = config(self.folder)["data"]
        self.window = (float(data["transformation"]["IntensityWindowNormalization"]["lower_bound"]),
                       float(data["transformation"]["IntensityWindowNormalization"]["upper_bound"]))
        for member in self.member_names:
            # The hash of the bytes loaded, not the cached `member_sha256`: a checkpoint rewritten at the same path
            # must not keep the hash of the file it replaced (in the version recorded or in the bf16 check).
            state, sha256 = load_member(member, self.folder)
            self._loaded_sha256.append(sha256)
            net = DeepMedic(int(data["input_channels"]), int(data["num_classes"]))
            net.load_state_dict({k: (v.float() if v.is_floating_point() else v) for k, v in state.items()})
            self._nets.append(net.eval().to(self.device, memory_format=self._memory_format))

    def fast_passes(self) -> list[FastPass]:
        """The members' bf16 fast passes where verified bf16 runs on this machine, else none (fp32 runs).

        Decided where the segmenter runs, not where it was opened: a cluster ships it to workers whose CPUs
        may lack native bf16.
        """
        if self.cpu_precision != "bf16-verified":
            return []
        if not self._fast:
            self._fast = [FastPass.of(net) for net in self._nets]
        return self._fast

    @property
    def cpu_precision(self) -> str:
        """What runs the network: "bf16-verified" (CPU with native bf16, precision "auto", every member's bound
        measured), "fp32", or on CUDA "bf16-autocast"."""
        if self.device.type == "cuda":
            return "bf16-autocast"
        native = self.device.type == "cpu" and native_bf16_cpu()
        return "bf16-verified" if self.precision == "auto" and native and self.bound_measured else "fp32"

    @property
    def bound_measured(self) -> bool:
        """Whether verified bf16's error bound was measured on every member's network (the sha256 of each file,
        taken when it was loaded)."""
        return all(h in MEASURED_NETWORKS for h in self._loaded_sha256)

    @property
    def _memory_format(self) -> torch.memory_format:
        """Channels-last (NDHWC) on CPU, oneDNN's native layout: 15-20 % less CPU time than NCDHW there
        (bench/segment_bench.py --real-ct), same values. CUDA keeps the layout it was measured with."""
        return torch.channels_last_3d if self.device.type == "cpu" else torch.contiguous_format

    @property
    def version(self) -> str:
        """The networks' version (`version_of_hashes`) from the bytes loaded."""
        return version_of_hashes(self._loaded_sha256)

    @property
    def members(self) -> list[str]:
        """'<member>:<sha256>' of each network averaged, as loaded."""
        return [f"{n}:{h}" for n, h in zip(self.member_names, self._loaded_sha256, strict=True)]

    def labels_1mm(self, x: np.ndarray, mask: np.ndarray,
                   planes: np.ndarray | None = None) -> tuple[np.ndarray, dict[str, float]]:
        """Labels (uint8) on the 1 mm grid of windowed `x`, computed only in blocks holding `mask`.

        `planes`: the z planes anyone will read (the received slices' nearest planes); others stay 0.
        """
        fast = self.fast_passes()
        padded, blocks = tile_blocks(x, mask, self.tile, planes)
        tiles = [t for t, _ in blocks]
        block_planes = {tuple((s.start, s.stop) for s in t): zs for t, zs in blocks}  # (slices hash from 3.12)
        labels = np.zeros(x.shape, np.uint8)
        cuda = self.device.type == "cuda"
        recomputed = [0, 0, 0]  # voxels labelled, voxels recomputed in fp32, boxes (verified bf16)

        def run(t: Tile) -> int:
            """Labels of tile `t` written into `labels` (tiles are disjoint); the voxels computed."""
            zs = block_planes[tuple((s.start, s.stop) for s in t)]
            with torch.inference_mode():  # thread-local: entered in the thread that runs the tile
                inp = self._block_tensor(padded, t)
                if fast:
                    verified, counts = verified_labels(fast, inp, zs, self.bf16_margin)
                    pred = verified.to(torch.uint8).numpy()
                    with lock:
                        for i, k in enumerate(("voxels", "recomputed_voxels", "recomputed_boxes")):
                            recomputed[i] += counts[k]
                else:
                    prob = None
                    for net in self._nets:
                        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
                            p = torch.softmax(net(inp, zs).float(), dim=1)
                        prob = p if prob is None else prob.add_(p)
                    pred = prob[0].argmax(dim=0).to(torch.uint8).cpu().numpy()
            ys, xs = (slice(s.start, min(s.stop, n)) for s, n in zip(t[1:], x.shape[1:], strict=True))
            crop = (slice(0, ys.stop - ys.start), slice(0, xs.stop - xs.start))
            if zs is None:
                zsl = slice(t[0].start, min(t[0].stop, x.shape[0]))
                labels[zsl, ys, xs] = pred[(slice(0, zsl.stop - zsl.start), *crop)]
            else:
                labels[[t[0].start + z for z in zs], ys, xs] = pred[(slice(None), *crop)]
            depth = len(zs) if zs is not None else t[0].stop - t[0].start
            return depth * (ys.stop - ys.start) * (xs.stop - xs.start)

        lock = threading.Lock()
        workers = self.tile_workers(len(tiles))
        t0 = time.perf_counter()
        # Tile after tile the network frees and re-allocates the same large tensors: kept on the heap, they are
        # page-faulted once per scan instead of once per layer (imaging.heap).
        with reused_heap() if self.device.type == "cpu" else contextlib.nullcontext():
            voxels = sum(_run_concurrently(run, tiles, workers) if workers > 1 else map(run, tiles))
        net_s = time.perf_counter() - t0
        info = {"network_s": net_s, "tiles": len(tiles), "voxels_computed": voxels,
                "voxels_1mm": int(np.prod(x.shape)), "tile_workers": workers, "precision": self.cpu_precision}
        if fast:
            info["recomputed_fraction"] = recomputed[1] / max(1, recomputed[0])
            info["recomputed_boxes"] = recomputed[2]
        return labels, info

    def tile_workers(self, n_tiles: int) -> int:
        """Tiles computed at once: on CPU `workers`, or torch's intra-op thread count (the cores granted, e.g. by
        `imaging.devices.set_cpu_threads`), at most one per tile; on CUDA one."""
        if self.device.type != "cpu":
            return 1
        return max(1, min(n_tiles, self.workers or torch.get_num_threads()))

    def prepared(self, volume: Volume) -> tuple[RegularGrid, np.ndarray, np.ndarray, np.ndarray]:
        """`volume` on the 1 mm grid as the network reads it: the grid, the windowed CT, the head mask and the
        planes the received slices read."""
        grid = regular_grid(volume, RESOLUTION_MM)
        hu = resample_to_grid(volume, grid)
        return grid, windowed(hu, *self.window), head_mask(hu, self.window[0]), received_planes(grid, volume)

    def block_inputs(self, volume: Volume) -> Iterator[tuple[torch.Tensor, list[int] | None]]:
        """The network input of each output block `segment` computes on `volume`, with the planes it computes
        (for measuring the network block by block: `bench/segment_bf16_delta_bench.py`, the bf16 tests)."""
        _, x, mask, planes = self.prepared(volume)
        padded, blocks = tile_blocks(x, mask, self.tile, planes)
        for t, zs in blocks:
            yield self._block_tensor(padded, t), zs

    def _block_tensor(self, padded: np.ndarray, t: Tile) -> torch.Tensor:
        """Block `t`'s input (1, 1, Z, Y, X) on this device, in the network's memory format."""
        return torch.from_numpy(block_input(padded, t))[None, None].to(self.device, memory_format=self._memory_format)

    def segment(self, volume: Volume) -> tuple[np.ndarray, dict[str, float]]:
        """(z, y, x) uint8 labels on the received slices (project label map = BLAST-CT's classes)."""
        t0 = time.perf_counter()
        grid, x, mask, planes = self.prepared(volume)
        t1 = time.perf_counter()
        labels_1mm, info = self.labels_1mm(x, mask, planes)
        t2 = time.perf_counter()
        labels = labels_to_slices(labels_1mm, grid, volume)
        t3 = time.perf_counter()
        timings = {"preprocess_s": t1 - t0, "network_s": info["network_s"], "tiling_s": t2 - t1 - info["network_s"],
                   "postprocess_s": t3 - t2, "total_s": t3 - t0, "tiles": info["tiles"],
                   "tile_workers": info["tile_workers"],
                   "computed_fraction": info["voxels_computed"] / max(1, info["voxels_1mm"]),
                   "members": len(self._nets), "precision": info["precision"]}
        timings.update({k: info[k] for k in ("recomputed_fraction", "recomputed_boxes") if k in info})
        return labels, timings


def _run_concurrently(run: Callable[[Tile], int], tiles: list[Tile], workers: int) -> list[int]:
    """`run` of each tile on `workers` threads, this one included; torch's intra-op threads set to one meanwhile.

    Torch releases the GIL inside its operators, so the threads compute in parallel. The largest
    tiles start first, so that the last ones to start are short and the threads end together.
    This thread takes tiles too, and the others are `imaging.heap.main_heap_threads`: every tile's large
    blocks come from the main heap, which `imaging.heap.reused_heap` keeps between tiles (a thread with an
    arena of its own maps them afresh).
    """
    pending = sorted(tiles, key=lambda t: np.prod([s.stop - s.start for s in t]), reverse=True)
    lock = threading.Lock()
    done: list[int] = []

    def work() -> None:
        while True:
            with lock:
                if not pending:
                    return
                tile = pending.pop(0)
            done.append(run(tile))

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        pool = main_heap_threads(workers - 1)
        helpers = [pool.submit(work) for _ in range(workers - 1)]
        try:
            work()
        except BaseException:
            with lock:
                pending.clear()  # the helpers stop after their current tile
            raise
        finally:
            for helper in helpers:
                helper.result()  # waits for every helper; re-raises a helper's exception here
    finally:
        torch.set_num_threads(threads)
    return done


def open_blast_ct(device: torch.device, ensemble: int | None = None, tile: int = DEFAULT_TILE,
                  precision: str = "auto") -> DeepMedicSegmenter:
    """The first `ensemble` shipped networks (default: `default_ensemble(device)`) on `device`, in `precision`."""
    names = member_names()
    n = default_ensemble(device) if ensemble is None else int(ensemble)
    if not 1 <= n <= len(names):
        raise ValueError(f"--ensemble must be 1-{len(names)} (the BLAST-CT networks shipped), not {n}")
    return DeepMedicSegmenter(device, names[:n], tile=tile, precision=precision)


def default_ensemble(device: torch.device) -> int:
    """Networks averaged by default: one, on every device.

    Measured (`bench/segment_bench.py --ensemble-sweep 1,3,5`, hemorrhage Dice pooled over the 36
    real CT-ICH slices): 1 network 0.399, 3 networks 0.422, 5 networks 0.394, at 189 / 496 / 767
    CPU seconds. Averaging buys no reliable accuracy on real scans for 2.6-4x the cost, so one
    network is the default and `--ensemble N` is opt-in; the reference tool also runs one network
    unless asked (`blast-ct --ensemble`).
    """
    del device
    return 1
