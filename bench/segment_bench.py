"""Segmentation speed: the real-CT model against the reference BLAST-CT tool, and the U-Net naive vs optimized.

    .venv/bin/python bench/segment_bench.py --real-ct [--ensemble 1] [--pooled]   # BLAST-CT, ours vs the tool
    .venv/bin/python bench/segment_bench.py --ensemble-sweep 1,3,5   # BLAST-CT ensemble size: Dice vs cost
    .venv/bin/python bench/segment_bench.py --workers-compare 3   # our process, 2 tiles at once vs 1, 3 rounds
    .venv/bin/python bench/segment_bench.py --precision-compare 3   # our process, fp32 vs verified bf16, 3 rounds
    .venv/bin/python bench/segment_bench.py --code-compare /work/main 3   # this checkout vs another, 3 rounds
    .venv/bin/python bench/segment_bench.py [--model PATH] [--repeats 5] [--threads N]  # the 2.5D U-Net

--real-ct: one run of each tool on the same input, the CT-ICH stack of patient 81 (15 real 5 mm
slices, 650 x 650): ctstudy's `imaging.deepmedic_inference` in a fresh process, then the
reference tool (`blast-ct` from PyPI, with the same weights; see bench/blast_ct_reference.py).
Prints seconds, peak RSS of each process, the speed ratio, the per-class Dice of our labels
against the tool's (they should be equal: same network, same arithmetic) and each tool's
hemorrhage Dice against the CT-ICH masks; on CUDA also our GPU time. `--pooled` adds our Dice
over all 36 CT-ICH slices (five patients). Timings on a shared machine vary: read the ratio.

Naive = every slice through the eager network in fp32, NCHW, batch 40, no head crop or slice
skipping. Optimized = `imaging.inference.UNetSegmenter` (head crop, slices outside the head skipped,
channels_last, traced + frozen with BatchNorm folded on CPU; bf16 autocast on CUDA). Both
include preprocessing and the mapping back to the native grid. Prints medians of the repeats and
the ratio, on CPU and, when torch sees one, on the GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from imaging.devices import set_cpu_threads  # noqa: E402

# The U-Net's modules (imaging.inference, imaging.model: MONAI) and the phantom generator are imported where
# the U-Net bench needs them: `--worker` runs this file as our real-CT process, whose CPU time should not
# include imports it never uses (about 2.4 CPU s).


def scan_40_slices():  # noqa: ANN201 - a Volume
    from imaging.volume import Volume
    from synthetic.phantom import single_hematoma_series

    r = single_hematoma_series(20, "left", "frontal", slice_thickness=3.4, matrix=256, seed=0)
    hu = r.hu[:40]
    if hu.shape[0] < 40:
        hu = np.concatenate([hu, np.full((40 - hu.shape[0], 256, 256), -1000.0, np.float32)])
    return Volume(hu=hu, spacing=r.grid.spacing, affine=r.grid.affine, positions=r.grid.slice_positions()[:40],
                  sop_instance_uids=tuple(str(i) for i in range(40)))


def naive_seconds(model, volume, device: torch.device) -> float:  # noqa: ANN001
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


def optimized_seconds(seg, volume) -> float:  # noqa: ANN001 - a UNetSegmenter and a Volume
    t0 = time.perf_counter()
    seg.segment(volume)
    return time.perf_counter() - t0


# ------------------------------------------------------------------ real CT: ours vs the reference tool

HEMORRHAGE = (1, 2, 4)


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum()) + int(b.sum())
    return float("nan") if total == 0 else 2.0 * int((a & b).sum()) / total


def ours_worker(dicom_dir: Path, out: Path, ensemble: int, device: str, threads: int | None,
                tile_workers: int | None = None, precision: str = "auto") -> None:
    """Runs in a fresh process, so that its peak RSS is ours alone: load, segment, save labels, print JSON."""
    from imaging.deepmedic_inference import open_blast_ct
    from imaging.devices import select_device
    from imaging.volume import load_series

    dev = select_device(device)
    n_threads = set_cpu_threads(threads, beside_load=True) if dev.type == "cpu" else None
    t0 = time.perf_counter()
    volume = load_series(sorted(dicom_dir.glob("*.dcm")), allow_irregular=True)
    seg = open_blast_ct(dev, ensemble, precision=precision)
    seg.workers = tile_workers
    labels, timings = seg.segment(volume)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    np.save(out, labels)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"seconds": seconds, "cpu_seconds": usage.ru_utime + usage.ru_stime,
                      "system_seconds": usage.ru_stime, "minor_faults": usage.ru_minflt,
                      "peak_rss_gb": usage.ru_maxrss / 1024**2, "timings": timings, "version": seg.version,
                      "threads": n_threads}))


def _run_ours(dicom_dir: Path, out: Path, ensemble: int, device: str, threads: int | None,
              tile_workers: int | None = None, precision: str = "auto", script: Path | None = None) -> dict:
    """Our process in a fresh interpreter: this checkout's, or the bench `script` of another checkout."""
    cmd = [sys.executable, str(script or __file__), "--worker", str(dicom_dir), str(out), "--ensemble", str(ensemble),
           "--device", device, "--precision", precision] + (["--threads", str(threads)] if threads else []) + (
           ["--tile-workers", str(tile_workers)] if tile_workers else [])
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"ctstudy inference failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo)."""
    try:
        with open("/proc/cpuinfo") as f:
            return next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "unknown")
    except OSError:
        return "unknown"


def real_ct(ensemble: int, threads: int | None, pooled: bool) -> None:
    import nibabel as nib
    from blast_ct_reference import run_reference

    from ctstudy import ct_ich
    from imaging.volume import LPS_TO_RAS, load_series

    with tempfile.TemporaryDirectory(prefix="segment-bench-") as tmp_name:
        tmp = Path(tmp_name)
        slices = ct_ich.patient_slices(81, range(13, 28))
        files = ct_ich.write_series(slices, tmp / "p81")
        truth = ct_ich.truth_masks(slices)
        volume = load_series(files)
        image = tmp / "p81.nii.gz"
        nib.save(nib.Nifti1Image(np.ascontiguousarray(volume.hu.transpose(2, 1, 0)), LPS_TO_RAS @ volume.affine), image)
        print(f"CPU {cpu_model()}; input: CT-ICH patient 81, {volume.shape[0]} slices of "
              f"{volume.shape[1]} x {volume.shape[2]} "
              f"({volume.spacing[0]:g} mm slices), {ensemble} network(s); CPU threads {threads or 'the free cores'}; "
              f"load average {os.getloadavg()[0]:.1f}")
        ours = _run_ours(tmp / "p81", tmp / "ours.npy", ensemble, "cpu", threads)
        ref = run_reference(image, tmp / "ref.nii.gz", ensemble=ensemble > 1)
        ours_labels = np.load(tmp / "ours.npy")
        ref_labels = np.asarray(nib.load(tmp / "ref.nii.gz").dataobj).astype(np.uint8).transpose(2, 1, 0)
        print(f"{'':>28} {'wall s':>8} {'CPU s':>8} {'system s':>9} {'minor faults':>13} {'peak RSS GB':>12} "
              f"{'hemorrhage Dice':>16}")
        for name, fig, lab in (("blast-ct (reference tool)", ref, ref_labels), ("ctstudy blast-ct", ours, ours_labels)):
            print(f"{name:>28} {fig['seconds']:8.1f} {fig['cpu_seconds']:8.1f} {fig['system_seconds']:9.1f} "
                  f"{fig['minor_faults']:13,d} {fig['peak_rss_gb']:12.2f} "
                  f"{_dice(np.isin(lab, HEMORRHAGE), truth):16.3f}")
        print(f"speed ratio (reference / ours): x{ref['seconds'] / ours['seconds']:.1f} wall, "
              f"x{ref['cpu_seconds'] / ours['cpu_seconds']:.1f} CPU time (targets x15 wall idle, x12 CPU); "
              f"ours on {ours['threads']} thread(s), {ours['timings']['tile_workers']} tile(s) at once, "
              f"precision {ours['timings']['precision']}"
              + (f" ({100 * ours['timings']['recomputed_fraction']:.2f} % of the voxels computed redone in fp32, "
                 f"{ours['timings']['recomputed_boxes']} boxes)" if "recomputed_fraction" in ours["timings"] else "")
              + "; "
              f"load average now {os.getloadavg()[0]:.1f}; our stages (wall s): "
              + ", ".join(f"{k} {v:.1f}" for k, v in ours["timings"].items() if k.endswith("_s")))
        per_class = []
        for c in range(1, 5):
            a, b = ours_labels == c, ref_labels == c
            per_class.append(f"class {c}: Dice {_dice(a, b):.4f} ({int(a.sum())} vs {int(b.sum())} voxels)")
        print("ours vs reference, per class: " + "; ".join(per_class))
        print(f"voxel agreement ours vs reference: {100 * float((ours_labels == ref_labels).mean()):.4f} %")
        if torch.cuda.is_available():
            gpu = _run_ours(tmp / "p81", tmp / "ours_gpu.npy", ensemble, "cuda", threads)
            print(f"GPU {torch.cuda.get_device_name()}: {gpu['seconds']:.2f} s (bf16), "
                  f"x{ref['seconds'] / gpu['seconds']:.0f} the reference tool on CPU")
        else:
            print("no CUDA device visible to torch: GPU figure not measured on this machine")
        if pooled:
            dice, _ = pooled_dice(tmp, ensemble, threads)
            print(f"hemorrhage Dice pooled over all {len(ct_ich.slice_index())} CT-ICH slices: {dice:.3f}")


def _alternated_on_p81(title: str, variants: dict[str, dict], rounds: int) -> tuple[dict[str, list[dict]],
                                                                                       dict[str, np.ndarray]]:
    """Our process on patient 81 once per variant (keyword arguments of `_run_ours`) in each of `rounds` rounds,
    the variants alternated, each in a fresh process: every run's figures and each variant's last labels."""
    from ctstudy import ct_ich

    with tempfile.TemporaryDirectory(prefix="segment-compare-") as tmp_name:
        tmp = Path(tmp_name)
        ct_ich.write_series(ct_ich.patient_slices(81, range(13, 28)), tmp / "p81")
        print(f"CPU {cpu_model()}; patient 81, {title}, {rounds} alternated rounds; "
              f"load average {os.getloadavg()[0]:.1f}")
        runs: dict[str, list[dict]] = {name: [] for name in variants}
        labels: dict[str, np.ndarray] = {}
        for _ in range(rounds):
            for name, kwargs in variants.items():
                runs[name].append(_run_ours(tmp / "p81", tmp / f"{name}.npy", 1, "cpu", None, **kwargs))
                labels[name] = np.load(tmp / f"{name}.npy")
    return runs, labels


def _print_medians(runs: dict[str, list[dict]], header: str) -> None:
    """One row per variant: medians of wall, CPU, system and network seconds and minor page faults, the largest
    peak RSS, the fraction recomputed in fp32 (verified bf16) and each round's CPU seconds."""
    print(f"{header:>14} {'wall s':>8} {'CPU s':>8} {'system s':>9} {'network s':>10} {'minor faults':>13} "
          f"{'peak RSS GB':>12} {'recomputed':>11}")
    for name, rs in runs.items():
        med = {k: statistics.median(r[k] for r in rs)
               for k in ("seconds", "cpu_seconds", "system_seconds", "minor_faults")}
        net = statistics.median(r["timings"]["network_s"] for r in rs)
        frac = rs[0]["timings"].get("recomputed_fraction")
        print(f"{name:>14} {med['seconds']:8.1f} {med['cpu_seconds']:8.1f} {med['system_seconds']:9.2f} {net:10.1f} "
              f"{int(med['minor_faults']):13,d} {max(r['peak_rss_gb'] for r in rs):12.2f} "
              f"{'' if frac is None else f'{100 * frac:.2f} %':>11}"
              "  CPU s per round: " + ", ".join(f"{r['cpu_seconds']:.1f}" for r in rs))


def _verdict(runs: dict[str, list[dict]], labels: dict[str, np.ndarray], slower: str, faster: str) -> None:
    """The ratio of the two variants' median CPU seconds and whether their labels are identical."""
    a, b = (statistics.median(r["cpu_seconds"] for r in runs[n]) for n in (slower, faster))
    print(f"CPU time {slower} / {faster}: x{a / b:.3f}; labels identical on every voxel: "
          f"{bool(np.array_equal(labels[slower], labels[faster]))}; load average now {os.getloadavg()[0]:.1f} "
          "(peak RSS: the largest of the rounds)")


def tile_workers_compare(rounds: int) -> None:
    """Our process on patient 81 with 2 tiles at once against 1 (one intra-op thread each), alternated."""
    runs, labels = _alternated_on_p81("our process with 2 tiles at once vs 1 (one intra-op thread each)",
                                      {"2 tiles": {"tile_workers": 2}, "1 tile": {"tile_workers": 1}}, rounds)
    _print_medians(runs, "tiles at once")
    _verdict(runs, labels, "1 tile", "2 tiles")


def precision_compare(rounds: int) -> None:
    """Our process on patient 81 in fp32 against verified bf16 (precision auto), alternated."""
    runs, labels = _alternated_on_p81("our process in fp32 vs verified bf16 (precision auto), the threads the "
                                      "bench's rule gives", {"fp32": {"precision": "fp32"},
                                                             "auto": {"precision": "auto"}}, rounds)
    _print_medians(runs, "precision")
    _verdict(runs, labels, "fp32", "auto")


def code_compare(other: Path, rounds: int) -> None:
    """Our process on patient 81 from this checkout against another checkout's (`other`, e.g. the main branch),
    both at precision auto, alternated."""
    script = other.resolve() / "bench" / "segment_bench.py"
    if not script.is_file():
        raise SystemExit(f"--code-compare: {other} is not a ctstudy checkout (no bench/segment_bench.py there)")
    runs, labels = _alternated_on_p81(f"this checkout vs {other.resolve()} (precision auto)",
                                      {"other": {"script": script}, "this": {}}, rounds)
    _print_medians(runs, "checkout")
    _verdict(runs, labels, "other", "this")


def pooled_dice(tmp: Path, ensemble: int, threads: int | None) -> tuple[float, float]:
    """Our hemorrhage Dice pooled over all 36 CT-ICH slices (each patient's slices one series), and CPU seconds."""
    from ctstudy import ct_ich

    inter = total = 0
    cpu = 0.0
    for patient in sorted({s.patient for s in ct_ich.slice_index()}):
        sl = ct_ich.patient_slices(patient)
        folder = tmp / f"all-{patient}"
        if not folder.exists():
            ct_ich.write_series(sl, folder)
        res = _run_ours(folder, tmp / f"all-{patient}-{ensemble}.npy", ensemble, "cpu", threads)
        pred = np.isin(np.load(tmp / f"all-{patient}-{ensemble}.npy"), HEMORRHAGE)
        t = ct_ich.truth_masks(sl)
        inter += int((pred & t).sum())
        total += int(pred.sum()) + int(t.sum())
        cpu += res["cpu_seconds"]
        print(f"  {ensemble} network(s), patient {patient}: {len(sl)} slices, Dice {_dice(pred, t):.3f}, "
              f"{res['seconds']:.1f} s ({res['cpu_seconds']:.0f} CPU s)")
    return 2 * inter / total, cpu


def ensemble_sweep(sizes: list[int], threads: int | None) -> None:
    """The default ensemble size, measured: pooled CT-ICH hemorrhage Dice and CPU cost for each size."""
    with tempfile.TemporaryDirectory(prefix="segment-sweep-") as tmp_name:
        rows = [(n, *pooled_dice(Path(tmp_name), n, threads)) for n in sizes]
    print(f"{'networks':>9} {'pooled hemorrhage Dice':>23} {'CPU s (36 slices)':>18}")
    for n, dice, cpu in rows:
        print(f"{n:>9} {dice:23.3f} {cpu:18.0f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=None, help="the U-Net (default: the shipped phantom model)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--real-ct", action="store_true", help="BLAST-CT: ctstudy's inference vs the reference tool")
    ap.add_argument("--ensemble", type=int, default=1)
    ap.add_argument("--pooled", action="store_true", help="with --real-ct: also Dice over all 36 CT-ICH slices")
    ap.add_argument("--ensemble-sweep", default=None, metavar="N,N,...",
                    help="BLAST-CT: pooled CT-ICH Dice and CPU time for each ensemble size (e.g. 1,3,5)")
    ap.add_argument("--workers-compare", type=int, default=None, metavar="ROUNDS",
                    help="our process on patient 81 with 2 tiles at once vs 1, this many alternated rounds")
    ap.add_argument("--precision-compare", type=int, default=None, metavar="ROUNDS",
                    help="our process on patient 81 in fp32 vs verified bf16, this many alternated rounds")
    ap.add_argument("--code-compare", nargs=2, default=None, metavar=("CHECKOUT", "ROUNDS"),
                    help="our process on patient 81, this checkout vs another (e.g. the main branch), alternated")
    ap.add_argument("--precision", default="auto", help=argparse.SUPPRESS)
    ap.add_argument("--tile-workers", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--device", default="cpu", help=argparse.SUPPRESS)
    ap.add_argument("--worker", nargs=2, type=Path, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        ours_worker(a.worker[0], a.worker[1], a.ensemble, a.device, a.threads, a.tile_workers, a.precision)
        return
    if a.precision_compare is not None:
        if a.precision_compare < 1:
            ap.error(f"--precision-compare needs at least 1 round, not {a.precision_compare}")
        precision_compare(a.precision_compare)
        return
    if a.code_compare:
        if int(a.code_compare[1]) < 1:
            ap.error(f"--code-compare needs at least 1 round, not {a.code_compare[1]}")
        code_compare(Path(a.code_compare[0]), int(a.code_compare[1]))
        return
    if a.workers_compare is not None:
        if a.workers_compare < 1:
            ap.error(f"--workers-compare needs at least 1 round, not {a.workers_compare}")
        tile_workers_compare(a.workers_compare)
        return
    if a.ensemble_sweep:
        ensemble_sweep([int(n) for n in a.ensemble_sweep.split(",")], a.threads)
        return
    if a.real_ct:
        real_ct(a.ensemble, a.threads, a.pooled)
        return
    from imaging.inference import UNetSegmenter
    from imaging.model import DEFAULT_MODEL_PATH, load_model

    model_path = a.model or DEFAULT_MODEL_PATH
    model = load_model(model_path)
    volume = scan_40_slices()
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    threads = set_cpu_threads(a.threads)
    n_params = sum(p.numel() for p in model.net.parameters())
    print(f"model {model_path.name} {model.version[:12]}: {n_params / 1e6:.2f} M parameters, widths "
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
