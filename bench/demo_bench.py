"""CPU seconds per step of `ctstudy demo --no-serve` on a fresh home, and an idle 2-core wall estimate.

    .venv/bin/python bench/demo_bench.py [--patients N] [--centers N] [--tabular-patients N] [--keep DIR]
    .venv/bin/python bench/demo_bench.py --compare-tabular   # the demo without, then with its patients without images
    .venv/bin/python bench/demo_bench.py --unet-threads   # the demo's phantom U-Net: 1 vs 2 threads per series
    .venv/bin/python bench/demo_bench.py --prepare        # tracing the U-Net once: with / without torch's check

Runs the demo in this process (as `ctstudy --home TMP demo --no-serve` does) with every step timed: each
`ctstudy ...` command the demo runs, and the demo's own steps between them (the coordinator's review, the
real center's set-up and results table). CPU seconds are this process' user + system time (getrusage) plus
that of any child process, so they do not depend on what else loads the machine; wall seconds do, and are
printed beside them with the load average. The idle estimate for 2 cores is the CPU total: most steps run
on one core (the U-Nets use two threads, so the CPU total is an upper bound there and CPU / 2 a lower one).
Without --patients the demo's defaults are used: the figure `docs/benchmarks.md` reports.
"""

from __future__ import annotations

import argparse
import functools
import os
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ctstudy import demo as demo_module  # noqa: E402


def cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


class StepClock:
    """(step name, CPU s, wall s) of every timed call, in order."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, float, float]] = []

    def timed(self, name_of: Callable[..., str], fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):  # noqa: ANN202
            c0, t0 = cpu_seconds(), time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.rows.append((name_of(*args, **kwargs), cpu_seconds() - c0, time.perf_counter() - t0))
        return wrapper


def command_name(home, *args) -> str:  # noqa: ANN001
    words = [str(a) for a in args]
    shown = [w for w in words[:3] if not w.startswith("/")]
    if words[:2] == ["imaging", "segment"]:
        shown = [*words[:2], *words[2:4]]
    elif words[:2] == ["prognosis", "fit"]:
        shown = [*words[:2], words[3], words[5]]  # the outcome and the features
    return " ".join(shown)


def run_demo(root: Path, patients: int | None, centers: int | None, tabular_patients: int | None = None) -> StepClock:
    clock = StepClock()
    demo_module.run_command = clock.timed(command_name, demo_module.run_command)
    for name in ("review_pending_series", "show_real_ct_results", "annotation_batch", "set_demo_targets",
                 "ensure_demo_users"):
        setattr(demo_module, name, clock.timed(lambda *a, name=name, **k: f"({name})", getattr(demo_module, name)))
    ct_ich = __import__("ctstudy.ct_ich", fromlist=["write_demo_center"])
    ct_ich.write_demo_center = clock.timed(lambda *a, **k: "(real center: write CT-ICH DICOM)",
                                           ct_ich.write_demo_center)
    from ctstudy.cli import main

    args = ["ctstudy", "--home", str(root), "demo", "--no-serve"]
    if patients:
        args += ["--patients", str(patients)]
    if centers:
        args += ["--centers", str(centers)]
    if tabular_patients is not None:
        args += ["--tabular-patients", str(tabular_patients)]
    sys.argv = args
    try:
        main(ends_process=False)
    except SystemExit as exc:
        if exc.code not in (None, 0):
            print(f"the demo stopped with status {exc.code}: the steps below are those it ran")
    return clock


def unet_threads(repeats: int = 3) -> None:
    """CPU and wall seconds per series of the phantom U-Net with 1 and 2 intra-op threads, interleaved so that
    both see the same machine load; series of a 3-patient synthetic study (27 slices of 256 x 256)."""
    import numpy as np
    import torch

    from imaging.inference import UNetSegmenter
    from imaging.model import DEFAULT_MODEL_PATH, load_model
    from imaging.volume import load_series
    from synthetic.study import generate_study

    with tempfile.TemporaryDirectory() as tmp:
        generate_study(Path(tmp) / "s", centers=1, patients=3, seed=0)
        folders = sorted({p.parent for p in (Path(tmp) / "s" / "dicom").rglob("*.dcm")})
        volumes = [load_series(sorted(f.glob("*.dcm"))) for f in folders]
    model = load_model(DEFAULT_MODEL_PATH)
    segmenters: dict[int, UNetSegmenter] = {}
    per_series: dict[int, list[tuple[float, float]]] = {1: [], 2: []}
    for _ in range(repeats):
        for threads in per_series:
            torch.set_num_threads(threads)
            if threads not in segmenters:  # traced once per segmenter, outside the timing
                segmenters[threads] = UNetSegmenter(model, torch.device("cpu"))
                segmenters[threads].segment(volumes[0])
            c0, t0 = cpu_seconds(), time.perf_counter()
            for volume in volumes:
                segmenters[threads].segment(volume)
            per_series[threads].append(((cpu_seconds() - c0) / len(volumes), (time.perf_counter() - t0) / len(volumes)))
    for threads, rows in per_series.items():
        print(f"phantom U-Net, {threads} thread(s): per series CPU {np.median([c for c, _ in rows]):.2f} s, wall "
              f"{np.median([w for _, w in rows]):.2f} s (medians of {repeats} passes over {len(volumes)} series; "
              f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")


PREPARE = """
import resource, sys, time, torch
from imaging.model import DEFAULT_MODEL_PATH, load_model
torch.set_num_threads(1)
model = load_model(DEFAULT_MODEL_PATH)
net = model.net.eval().to(memory_format=torch.channels_last)
pre = model.preprocessing
x = torch.rand(16, pre.in_channels, pre.size, pre.size).contiguous(memory_format=torch.channels_last)
r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
with torch.no_grad():
    torch.jit.freeze(torch.jit.trace(net, x, check_trace=sys.argv[1] == "1"))
r1 = resource.getrusage(resource.RUSAGE_SELF)
print(r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime, time.perf_counter() - t0)
"""


def prepare(repeats: int = 3) -> None:
    """CPU and wall seconds to trace and freeze the phantom U-Net (one thread), with and without torch's trace
    check, each in a fresh process (the check's imports are paid once per process), interleaved."""
    import statistics
    import subprocess

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    runs: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
    for _ in range(repeats):
        for check in runs:
            out = subprocess.run([sys.executable, "-c", PREPARE, "1" if check else "0"], env=env, check=True,
                                 capture_output=True, text=True).stdout.split()
            runs[check].append((float(out[0]), float(out[1])))
    for check, rows in runs.items():
        print(f"trace + freeze the phantom U-Net, check_trace={check}: CPU "
              f"{statistics.median(c for c, _ in rows):.1f} s, wall {statistics.median(w for _, w in rows):.1f} s "
              f"(medians of {repeats} processes; load average {os.getloadavg()[0]:.1f})")


def compare_tabular() -> None:
    """The whole demo twice, each in a fresh process and home: with no patients without images (the imaged study
    alone), then with the demo's default number of them; both per-step tables, then the totals and their ratio."""
    import subprocess

    totals = {}
    for n in (0, demo_module.DEMO_TABULAR_PATIENTS):
        out = subprocess.run([sys.executable, __file__, "--tabular-patients", str(n)], check=True,
                             capture_output=True, text=True).stdout
        table = out[out.index("\nstep "):]
        print(f"--- demo with {n} patients without images ---{table}")
        whole = next(line for line in table.splitlines() if line.startswith("whole demo"))
        totals[n] = [float(v) for v in whole.split()[-2:]]
        fits = [line for line in table.splitlines() if line.startswith(("prognosis", "registry import"))]
        totals[f"{n} fits"] = sum(float(line.split()[-2]) for line in fits)
    (c0, w0), (c1, w1) = totals[0], totals[demo_module.DEMO_TABULAR_PATIENTS]
    f0, f1 = totals["0 fits"], totals[f"{demo_module.DEMO_TABULAR_PATIENTS} fits"]
    print(f"whole demo CPU s: {c0:.1f} without, {c1:.1f} with {demo_module.DEMO_TABULAR_PATIENTS} patients without "
          f"images: ratio {c1 / c0:.2f} (wall {w0:.0f} s and {w1:.0f} s under the load printed above)")
    print(f"imports and prognosis steps CPU s: {f0:.1f} without, {f1:.1f} with: ratio {f1 / max(f0, 1e-9):.2f}")
    print(f"load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--patients", type=int, default=None, help="demo --patients (default: the demo's)")
    ap.add_argument("--centers", type=int, default=None, help="demo --centers (default: the demo's)")
    ap.add_argument("--tabular-patients", type=int, default=None,
                    help="demo --tabular-patients (default: the demo's)")
    ap.add_argument("--compare-tabular", action="store_true",
                    help="the demo with 0 and with its default number of patients without images, one after the other")
    ap.add_argument("--keep", type=Path, default=None, help="home folder to use and keep (default: a temporary one)")
    ap.add_argument("--prepare", action="store_true", help="only time the U-Net's trace, with and without check")
    ap.add_argument("--unet-threads", action="store_true", help="only compare the phantom U-Net's thread counts")
    a = ap.parse_args()
    if a.unet_threads:
        unet_threads()
        return
    if a.prepare:
        prepare()
        return
    if a.compare_tabular:
        compare_tabular()
        return
    load0 = os.getloadavg()
    c0, t0 = cpu_seconds(), time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        root = a.keep or Path(tmp) / "home"
        clock = run_demo(root, a.patients, a.centers, a.tabular_patients)
    cpu, wall = cpu_seconds() - c0, time.perf_counter() - t0
    load1 = os.getloadavg()
    print("\nstep                                                  CPU s    wall s")
    for name, c, w in clock.rows:
        print(f"{name:<52} {c:7.1f} {w:9.1f}")
    print(f"{'whole demo (imports and the steps above)':<52} {cpu:7.1f} {wall:9.1f}")
    print(f"load average (1 min) at start {load0[0]:.1f}, at end {load1[0]:.1f}, on {os.cpu_count()} cores")
    print(f"idle 2-core wall estimate: at most the CPU total, {cpu / 60:.1f} min; at least CPU / 2, "
          f"{cpu / 120:.1f} min")


if __name__ == "__main__":
    main()
