"""The fp32 floor of the real-CT model on this CPU: how fast any exact fp32 implementation could segment patient 81.

    .venv/bin/python bench/segment_floor_bench.py [--reference-cpu S | --run-reference] [--repeats 2]

On CT-ICH patient 81 (15 real 5 mm slices of 650 x 650, BLAST-CT's one network), the same
input as `bench/segment_bench.py --real-ct`:

1. counts the multiply-adds of every convolution `imaging.deepmedic_inference` runs on the tiles
   it plans, from the shapes of the calls themselves (a dispatch mode records each oneDNN
   convolution's input, weight and output), not from a figure written here;
2. times each of those convolutions alone on this CPU, one thread, channels-last as the network
   runs them (oneDNN fp32, best of `--repeats`, its output memory reused as in the network): the
   sum is the floor, the CPU seconds a scan costs if it did nothing but these convolutions at the
   rate oneDNN reaches on them;
3. runs our whole segmentation in a fresh process on one thread (CPU seconds of the process,
   start-up included, as the speed ratio counts them);
4. prints FLOP per scan, the convolutions' rate (GFLOP/s), the floor, our CPU seconds, the share
   of ours that is not convolution, the bound of this CPU's vector units (`--flop-per-cycle` at
   the clock /proc/cpuinfo reports), and against the reference tool's CPU seconds (measured in
   this run with `--run-reference`, or given by `--reference-cpu`) the highest CPU-time ratio an
   exact fp32 implementation could reach (reference CPU s / floor) beside ours.

Exact fp32 here means the direct convolution arithmetic (each output a sum of products of
float32 inputs and weights), which keeps the labels equal to the reference tool's
(`tests/imaging/test_deepmedic.py`). Fewer multiplies need another algorithm: a Winograd F(2,3)
3x3x3 convolution written in torch operations (input and output transforms as tensor ops, 64
batched matrix products) took 7.8-9x the CPU time of oneDNN's direct convolution on a 40->40
layer on this CPU (`bench/winograd_bench.py`), its transforms bound by memory traffic: a fused
kernel would be needed, and its different rounding would have to keep the labels.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from segment_bench import _run_ours, cpu_model  # noqa: E402 - our process, as the speed ratio measures it

CONV = torch.ops.aten.mkldnn_convolution.default


class ConvolutionCalls(TorchDispatchMode):
    """Records (input shape, weight, output shape, input channels-last) of each oneDNN convolution dispatched."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[tuple[int, ...], torch.Tensor, tuple[int, ...], bool]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        out = func(*args, **(kwargs or {}))
        if func is CONV:
            x, w = args[0], args[1]
            self.calls.append((tuple(x.shape), w, tuple(out.shape),
                               x.is_contiguous(memory_format=torch.channels_last_3d)))
        return out


def multiply_adds(in_shape: tuple[int, ...], weight: torch.Tensor, out_shape: tuple[int, ...]) -> int:
    """Multiply-adds of a dense convolution: every output value sums C_in x kernel products."""
    del in_shape
    per_output = weight.shape[1] * int(torch.tensor(weight.shape[2:]).prod())
    return int(torch.tensor(out_shape).prod()) * per_output


def convolution_calls(volume) -> list:  # noqa: ANN001 - a Volume
    """The convolutions our segmentation of `volume` runs (one network, one tile at a time)."""
    from imaging.deepmedic_inference import open_blast_ct

    seg = open_blast_ct(torch.device("cpu"), 1)
    seg.workers = 1
    with ConvolutionCalls() as mode:
        seg.segment(volume)
    return mode.calls


def time_convolution(in_shape: tuple[int, ...], weight: torch.Tensor, channels_last: bool, repeats: int) -> float:
    """Best-of-`repeats` CPU seconds of this one convolution on random input (values do not change its speed)."""
    x = torch.randn(in_shape)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last_3d)
    best = float("inf")
    with torch.inference_mode():
        for _ in range(repeats):
            t0 = time.process_time()
            out = CONV(x, weight, None, [0, 0, 0], [1, 1, 1], [1, 1, 1], 1)
            best = min(best, time.process_time() - t0)
            del out
    return best


def cpu_clock_hz() -> float | None:
    try:
        with open("/proc/cpuinfo") as f:
            mhz = [float(line.split(":")[1]) for line in f if line.startswith("cpu MHz")]
    except OSError:
        return None
    return 1e6 * max(mhz) if mhz else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ref = ap.add_mutually_exclusive_group()
    ref.add_argument("--reference-cpu", type=float, default=None, help="the reference tool's CPU seconds on patient 81")
    ref.add_argument("--run-reference", action="store_true", help="measure the reference tool in this run (minutes)")
    ap.add_argument("--repeats", type=int, default=2, help="timings of each convolution (the best is kept)")
    ap.add_argument("--flop-per-cycle", type=float, default=32.0,
                    help="fp32 FLOP per cycle per core of the vector units (AVX2, 2 FMA pipes: 2 x 8 x 2 = 32)")
    a = ap.parse_args()
    if a.repeats < 1:
        ap.error(f"--repeats must be at least 1, not {a.repeats}")
    if a.reference_cpu is not None and a.reference_cpu <= 0:
        ap.error(f"--reference-cpu must be positive CPU seconds, not {a.reference_cpu}")

    from ctstudy import ct_ich
    from imaging.heap import reused_heap
    from imaging.volume import load_series

    torch.set_num_threads(1)
    print(f"CPU {cpu_model()}, torch {torch.__version__} (oneDNN, {torch.backends.cpu.get_cpu_capability()}); "
          f"load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory(prefix="segment-floor-") as tmp_name:
        tmp = Path(tmp_name)
        slices = ct_ich.patient_slices(81, range(13, 28))
        files = ct_ich.write_series(slices, tmp / "p81")
        volume = load_series(files, allow_irregular=True)
        calls = convolution_calls(volume)
        macs = [multiply_adds(i, w, o) for i, w, o, _ in calls]
        with reused_heap():  # as the network runs: each output's memory reused, not page-faulted anew
            seconds = [time_convolution(i, w, cl, a.repeats) for i, w, _, cl in calls]
        ours = _run_ours(tmp / "p81", tmp / "ours.npy", 1, "cpu", 1)
        reference = None
        if a.run_reference:
            import nibabel as nib
            from blast_ct_reference import run_reference

            from imaging.volume import LPS_TO_RAS

            image = tmp / "p81.nii.gz"
            nib.save(nib.Nifti1Image(volume.hu.transpose(2, 1, 0).copy(), LPS_TO_RAS @ volume.affine), image)
            reference = run_reference(image, tmp / "ref.nii.gz")["cpu_seconds"]
        else:
            reference = a.reference_cpu

    flop = 2 * sum(macs)
    floor = sum(seconds)
    kinds: Counter = Counter()
    kind_seconds: Counter = Counter()
    for (_i, w, _o, _cl), m, sec in zip(calls, macs, seconds, strict=True):
        kinds[f"{w.shape[1]}->{w.shape[0]} k{w.shape[2]}"] += 2 * m
        kind_seconds[f"{w.shape[1]}->{w.shape[0]} k{w.shape[2]}"] += sec
    rates = [2 * m / s / 1e9 for m, s in zip(macs, seconds, strict=True) if s > 0]
    print(f"convolutions per scan: {len(calls)} ({len(kinds)} layer kinds); {flop / 1e12:.3f} TFLOP "
          f"({sum(macs) / 1e12:.3f} T multiply-adds); largest kinds: "
          + ", ".join(f"{k} {v / 1e9:.0f} GFLOP" for k, v in kinds.most_common(4)))
    print(f"oneDNN fp32, 1 thread, each convolution alone (best of {a.repeats}): {flop / floor / 1e9:.1f} GFLOP/s "
          f"over the scan (per call: median {statistics.median(rates):.1f}, range {min(rates):.1f}-{max(rates):.1f})")
    print("per layer kind (channels in->out, kernel): " + "; ".join(
        f"{k} {kinds[k] / 1e9:.0f} GFLOP in {kind_seconds[k]:.2f} s ({kinds[k] / kind_seconds[k] / 1e9:.0f} GFLOP/s)"
        for k, _ in kinds.most_common()))
    clock = cpu_clock_hz()
    if clock:
        peak = a.flop_per_cycle * clock / 1e9
        print(f"vector-unit bound: {a.flop_per_cycle:g} FLOP/cycle x {clock / 1e9:.2f} GHz = {peak:.1f} GFLOP/s "
              f"-> {flop / peak / 1e9:.1f} CPU s per scan; oneDNN reaches "
              f"{100 * flop / floor / 1e9 / peak:.0f} % of it")
    cpu = ours["cpu_seconds"]
    print(f"floor (the convolutions alone at that rate): {floor:.1f} CPU s per scan")
    print(f"ours, whole process on 1 thread: {cpu:.1f} CPU s ({ours['seconds']:.1f} s wall, peak RSS "
          f"{ours['peak_rss_gb']:.2f} GB, network {ours['timings']['network_s']:.1f} s); not convolution: "
          f"{cpu - floor:.1f} CPU s = {100 * (cpu - floor) / cpu:.0f} % of ours")
    if reference is not None:
        source = "measured in this run" if a.run_reference else "given"
        bound = f", x{reference * a.flop_per_cycle * clock / flop:.1f} at the vector-unit bound" if clock else ""
        print(f"reference tool {reference:.1f} CPU s ({source}): ours x{reference / cpu:.1f} CPU; the highest ratio "
              f"an exact fp32 implementation could reach on this CPU x{reference / floor:.1f} (floor){bound}")
        print(f"x12 CPU needs the reference at >= {12 * floor:.0f} CPU s even at the floor, >= {12 * cpu:.0f} for ours")
    else:
        print(f"x12 CPU needs the reference at >= {12 * floor:.0f} CPU s at the floor, >= {12 * cpu:.0f} for ours "
              "(--reference-cpu S or --run-reference for the ratios)")
    print(f"load average now {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
