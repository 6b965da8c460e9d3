"""Segmentation speed: slices/s and seconds per 40-slice 256x256 scan, naive eager vs optimized.

    .venv/bin/python bench/segment_bench.py [--model PATH] [--repeats 5] [--threads N]

Naive = every slice through the eager network in fp32, NCHW, batch 40, no head crop or slice
skipping. Optimized = `imaging.inference.UNetSegmenter` (head crop, slices outside the head skipped,
channels_last, traced + frozen with BatchNorm folded on CPU; bf16 autocast on CUDA). Both
include preprocessing and the mapping back to the native grid. Prints medians of the repeats and
the ratio, on CPU and, when torch sees one, on the GPU.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from imaging.inference import UNetSegmenter, set_cpu_threads
from imaging.model import DEFAULT_MODEL_PATH, load_model
from imaging.volume import Volume
from synthetic.phantom import single_hematoma_series


def scan_40_slices() -> Volume:
    r = single_hematoma_series(20, "left", "frontal", slice_thickness=3.4, matrix=256, seed=0)
    hu = r.hu[:40]
    if hu.shape[0] < 40:
        hu = np.concatenate([hu, np.full((40 - hu.shape[0], 256, 256), -1000.0, np.float32)])
    return Volume(hu=hu, spacing=r.grid.spacing, affine=r.grid.affine, positions=r.grid.slice_positions()[:40],
                  sop_instance_uids=tuple(str(i) for i in range(40)))


def naive_seconds(model, volume: Volume, device: torch.device) -> float:
    pre = model.preprocessing
    net = model.net.eval().to(device)
    t0 = time.perf_counter()
    w = (np.clip(volume.hu, pre.window_min, pre.window_max) - pre.window_min) / (pre.window_max - pre.window_min)
    x = F.interpolate(torch.from_numpy(w.astype(np.float32))[:, None], size=(pre.size, pre.size), mode="bilinear")
    if pre.context_slices:
        idx = np.clip(np.arange(40)[:, None] + np.arange(-pre.context_slices, pre.context_slices + 1), 0, 39)
        x = x[:, 0][idx]
    with torch.inference_mode():
        scores = net(x.to(device))
        labels = F.interpolate(scores.float(), size=volume.shape[1:], mode="bilinear").argmax(1).cpu().numpy()
    if device.type == "cuda":
        torch.cuda.synchronize()
    assert labels.shape == volume.shape
    return time.perf_counter() - t0


def optimized_seconds(seg: UNetSegmenter, volume: Volume) -> float:
    t0 = time.perf_counter()
    seg.segment(volume)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL_PATH)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None)
    a = ap.parse_args()
    model = load_model(a.model)
    volume = scan_40_slices()
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    threads = set_cpu_threads(a.threads)
    n_params = sum(p.numel() for p in model.net.parameters())
    print(f"model {a.model.name} {model.version[:12]}: {n_params / 1e6:.2f} M parameters, widths "
          f"{model.net_config['channels']}, input {model.preprocessing.in_channels}x{model.preprocessing.size}^2; "
          f"scan 40 x 256 x 256; CPU threads {threads}; median of {a.repeats}")
    for dev in devices:
        seg = UNetSegmenter(model, dev, batch_size=40)
        naive_seconds(model, volume, dev)
        optimized_seconds(seg, volume)  # warm-up: trace/freeze, allocator, cuDNN autotune
        naive = statistics.median(naive_seconds(model, volume, dev) for _ in range(a.repeats))
        opt = statistics.median(optimized_seconds(seg, volume) for _ in range(a.repeats))
        _, timings = seg.segment(volume)
        name = torch.cuda.get_device_name() if dev.type == "cuda" else "cpu"
        print(f"{name:>24}: naive eager {naive:6.3f} s/scan ({40 / naive:7.1f} slices/s) | optimized {opt:6.3f} s/scan "
              f"({40 / opt:7.1f} slices/s; {timings['slices_in_head']} of 40 slices in the head) | x{naive / opt:.1f}")
    if not torch.cuda.is_available():
        print("no CUDA device visible to torch: GPU figure not measured on this machine")


if __name__ == "__main__":
    main()
