"""Distillation's point, measured: seconds per scan of the teacher and of the distilled student, and the ratio.

    .venv/bin/python bench/distill_bench.py [--teacher blast-ct|phantom|PATH] [--student PATH]
                                            [--dicom SERIES_DIR] [--repeats 5] [--teacher-repeats 1]
                                            [--device cpu|cuda] [--threads N] [--rewrite-compare ROUNDS]

Both models segment the same scan in this one run, on the same device, each after one untimed
warm-up call (tracing, allocation); `segment(volume)` is timed, from HU volume to labels on the
native grid, so the mask files and DICOM reading (the same for both) are left out. Prints medians
of the repeats and the ratio (target >= 100x for the single-network real-CT teacher on CPU).

- Teacher: `blast-ct` (one network unless `--ensemble`) by default. Where this installation has
  no real-CT model yet (`open_segmenter` raises NotImplementedError), the bench says so and uses
  the phantom model as a stand-in teacher, whose ratio is NOT the target's.
- Student: `--student PATH` (a checkpoint from `ctstudy imaging distill`); by default the student
  architecture `imaging distill` trains (5-level 8-128-channel 2.5D U-Net, 256 x 256 input, 3 slices)
  with the trained weights of the shipped phantom model, which has that architecture. Trained
  weights, not random ones: the labels are mapped back to the native grid by interpolating
  scores only at class boundaries, so the cost depends on how many boundaries the output has
  (an untrained network labels salt and pepper, all boundary).
- Scan: `--dicom DIR` (one series' files), else a synthetic 512 x 512 x 32 head phantom with a
  20 mL hematoma (the matrix of clinical head CT).
- `--rewrite-compare ROUNDS` (CPU): instead, the student prepared as `imaging.inference` prepares it
  (rewritten for inference by `imaging.unet_for_inference`, traced, frozen) against the same network
  traced and frozen without the rewrite, alternated ROUNDS times in this process: CPU seconds per scan
  of each, their ratio, and the voxels whose labels differ.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import time
from pathlib import Path
from unittest import mock

import torch

from imaging import inference
from imaging.devices import select_device, set_cpu_threads
from imaging.inference import UNetSegmenter
from imaging.model import DEFAULT_MODEL_PATH, SegmentationModel, load_model
from imaging.preprocess import Preprocessing
from imaging.segmenters import BLAST_CT, PHANTOM, open_segmenter
from imaging.volume import Volume, load_series
from synthetic.phantom import single_hematoma_series
from vocabulary.labels import LABEL_MAP

STUDENT_NET = {"channels": [8, 16, 32, 64, 128], "strides": [2, 2, 2, 2], "num_res_units": 1}


def phantom_scan() -> Volume:
    r = single_hematoma_series(20, "left", "frontal", slice_thickness=5.0, matrix=512, seed=0)
    z = r.hu.shape[0]
    return Volume(hu=r.hu, spacing=r.grid.spacing, affine=r.grid.affine, positions=r.grid.slice_positions(),
                  sop_instance_uids=tuple(str(i) for i in range(z)))


def default_student() -> SegmentationModel:
    """The student architecture with trained weights: those of the shipped phantom model (same architecture)."""
    model = load_model(DEFAULT_MODEL_PATH)
    pre = Preprocessing(size=256, context_slices=1)
    if model.net_config != STUDENT_NET or model.preprocessing.size != pre.size \
            or model.preprocessing.in_channels != pre.in_channels or model.label_map != LABEL_MAP:
        raise ValueError(f"{DEFAULT_MODEL_PATH}: not the student architecture ({model.net_config}, "
                         f"{model.preprocessing}); pass --student PATH")
    model.name = "unet2d student (phantom-trained weights)"
    return model


def seconds_per_scan(segmenter, volume: Volume, repeats: int) -> tuple[list[float], list[float]]:  # noqa: ANN001
    """Wall seconds and CPU seconds (this process, all threads) of each timed `segment(volume)`."""
    segmenter.segment(volume)  # warm-up, untimed
    times, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        segmenter.segment(volume)
        if segmenter.device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return times, cpu


def rewrite_compare(student_model: SegmentationModel, volume: Volume, device: torch.device, rounds: int) -> None:
    """The student with and without `imaging.unet_for_inference`'s rewrite, alternated: CPU s per scan, labels."""
    rewritten = UNetSegmenter(student_model, device)
    labels, _ = rewritten.segment(volume)
    with mock.patch.object(inference, "for_inference", copy.deepcopy):
        plain = UNetSegmenter(student_model, device)
        plain_labels, _ = plain.segment(volume)
    cpu: dict[str, list[float]] = {"not rewritten": [], "rewritten": []}
    for _ in range(rounds):
        for name, seg in (("not rewritten", plain), ("rewritten", rewritten)):
            c0 = time.process_time()
            seg.segment(volume)
            cpu[name].append(time.process_time() - c0)
    med = {k: statistics.median(v) for k, v in cpu.items()}
    for name, m in med.items():
        print(f"{name:>14}: {m:.3f} CPU s per scan (median of {rounds}; " + ", ".join(f"{c:.3f}" for c in cpu[name])
              + ")")
    print(f"rewritten / not: {med['not rewritten'] / med['rewritten']:.2f}x less CPU; labels differ on "
          f"{int((labels != plain_labels).sum())} of {labels.size} voxels; load average {os.getloadavg()[0]:.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--teacher", default=BLAST_CT)
    ap.add_argument("--ensemble", type=int, default=None, help="Teacher ensemble members (blast-ct); default one.")
    ap.add_argument("--student", type=Path, default=None)
    ap.add_argument("--dicom", type=Path, default=None, help="Folder of one series' DICOM files.")
    ap.add_argument("--repeats", type=int, default=5, help="Timed student calls.")
    ap.add_argument("--teacher-repeats", type=int, default=1, help="Timed teacher calls (it is slow).")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--rewrite-compare", type=int, default=0, metavar="ROUNDS",
                    help="Compare the student with and without its inference rewrite instead (CPU).")
    a = ap.parse_args()

    device = select_device(a.device)
    threads = set_cpu_threads(a.threads, beside_load=True) if device.type == "cpu" else None
    student_model = load_model(a.student) if a.student else default_student()
    student = UNetSegmenter(student_model, device)
    if a.dicom:
        files = sorted(p for p in a.dicom.rglob("*") if p.is_file())
        volume, scan = load_series(files), f"{a.dicom} ({len(files)} files)"
    else:
        volume, scan = phantom_scan(), "synthetic head phantom"
    scan += f", {volume.shape[0]} x {volume.shape[1]} x {volume.shape[2]} voxels"
    if a.rewrite_compare:
        print(f"device {device}" + (f", {threads} threads" if threads else "") + f"; scan: {scan}")
        rewrite_compare(student_model, volume, device, a.rewrite_compare)
        return

    note = ""
    try:
        teacher = open_segmenter(a.teacher, device, ensemble=a.ensemble if a.teacher == BLAST_CT else None)
    except NotImplementedError as exc:
        if a.teacher != BLAST_CT:
            raise
        note = (f"NOTE: no real-CT model in this installation ({exc}); the phantom model stands in as the teacher, "
                "so the ratio below is NOT the >= 100x target's (that is against the single-network real-CT model).")
        teacher = open_segmenter(PHANTOM, device)
    if note:
        print(note, file=sys.stderr)
    print(f"device {device}" + (f", {threads} threads" if threads else "") + f"; scan: {scan}; "
          f"load average {os.getloadavg()[0]:.1f}")
    t, tc = seconds_per_scan(teacher, volume, a.teacher_repeats)
    s, sc = seconds_per_scan(student, volume, a.repeats)
    tm, sm = statistics.median(t), statistics.median(s)
    print(f"teacher  {teacher.name} ({len(teacher.members)} member(s)): {tm:8.3f} s per scan, "
          f"{statistics.median(tc):8.3f} CPU s (median of {len(t)})")
    print(f"student  {student.name}: {sm:8.3f} s per scan, {statistics.median(sc):8.3f} CPU s (median of {len(s)})")
    ratio = tm / sm
    print(f"student/teacher cost ratio: the student is {ratio:.0f}x" if ratio >= 10 else
          f"student/teacher cost ratio: the student is {ratio:.2f}x", end="")
    print(" faster per scan" + (" (stand-in teacher)" if note else " (target >= 100x for one real-CT network on CPU)")
          + f"; {statistics.median(tc) / statistics.median(sc):.0f}x in CPU time")
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
