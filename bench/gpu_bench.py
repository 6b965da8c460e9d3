"""Seconds per scan on the GPU: the real-CT model (BLAST-CT, one network) and the distilled student.

    .venv/bin/python bench/gpu_bench.py [--repeats 5] [--student PATH] [--scans 2000]

Without a CUDA device visible to torch it prints one line saying so and exits 0 (nothing to measure).
With one (the first, or CUDA_VISIBLE_DEVICES), each model segments two scans: CT-ICH patient 81
(15 real 5 mm slices of 650 x 650, the scan of `bench/segment_bench.py --real-ct`) and the
512 x 512 head phantom (5 mm slices) of `bench/distill_bench.py`. `segment(volume)` is timed from HU volume to
labels on the received slices (DICOM reading left out), after one untimed warm-up call (CUDA
context, cuDNN autotuning), with the device synchronized; medians of the repeats. Prints the GPU's
name, seconds per scan, peak GPU memory, and the projection for a study of `--scans` scans:
hours of GPU time for the whole study at that rate, one GPU, one scan at a time.

Student: `--student PATH` (a checkpoint from `ctstudy imaging distill`), else the student
architecture with the shipped phantom model's trained weights, as in bench/distill_bench.py.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from distill_bench import default_student, phantom_scan  # noqa: E402

from imaging.volume import Volume  # noqa: E402


def patient_81(tmp: Path) -> Volume:
    from ctstudy import ct_ich
    from imaging.volume import load_series

    return load_series(ct_ich.write_series(ct_ich.patient_slices(81, range(13, 28)), tmp / "p81"))


def gpu_seconds(segmenter, volume: Volume, repeats: int) -> tuple[float, float]:  # noqa: ANN001
    """Median seconds per `segment(volume)` after one warm-up, and the peak GPU memory (GB) of those calls."""
    segmenter.segment(volume)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        segmenter.segment(volume)
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), torch.cuda.max_memory_allocated() / 1024**3


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--student", type=Path, default=None, help="Distilled checkpoint (default: see above).")
    ap.add_argument("--scans", type=int, default=2000, help="Study size for the projection.")
    a = ap.parse_args()
    if a.repeats < 1 or a.scans < 1:
        ap.error("--repeats and --scans must be at least 1")
    if not torch.cuda.is_available():
        print("no CUDA device visible to torch: no GPU figures on this machine (the bench needs one; exit 0)")
        return 0

    from imaging.deepmedic_inference import open_blast_ct
    from imaging.devices import select_device
    from imaging.inference import UNetSegmenter
    from imaging.model import load_model

    device = select_device("cuda")
    teacher = open_blast_ct(device, 1)
    student = UNetSegmenter(load_model(a.student) if a.student else default_student(), device)
    with tempfile.TemporaryDirectory(prefix="gpu-bench-") as tmp:
        scans = {f"{name} ({' x '.join(map(str, v.shape))})": v
                 for name, v in (("CT-ICH patient 81", patient_81(Path(tmp))), ("head phantom", phantom_scan()))}
        print(f"GPU {torch.cuda.get_device_name(device)} (torch {torch.__version__}, CUDA {torch.version.cuda}); "
              f"median of {a.repeats} after one warm-up; projection for {a.scans:,} scans on this one GPU")
        print(f"{'model':>34} {'scan':>36} {'s per scan':>11} {'peak GPU GB':>12} {'hours for study':>16}")
        for model_name, seg in ((f"{teacher.name} (real-CT, 1 network)", teacher), (student.name, student)):
            for scan_name, volume in scans.items():
                seconds, peak = gpu_seconds(seg, volume, a.repeats)
                print(f"{model_name:>34} {scan_name:>36} {seconds:11.3f} {peak:12.2f} "
                      f"{seconds * a.scans / 3600:16.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
