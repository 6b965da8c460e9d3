"""Time and size of the default demo study (5 centers, 60 patients, 256 matrix), and of a tabular-only study.

Prints figures; asserts nothing. Run: .venv/bin/python bench/synth_bench.py [--repeats N]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from synthetic.phantom import ExtraAxial, Grid, Intraventricular, SeriesSpec, hematoma, render_series
from synthetic.study import generate_study


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        times, cpu = [], []
        for i in range(args.repeats):
            out = Path(tmp) / f"demo{i}"
            c0 = time.process_time()
            s = generate_study(out, centers=5, patients=60, seed=0)
            cpu.append(time.process_time() - c0)
            times.append(s.seconds)
            size, files, series = s.bytes, s.files, s.series
            shutil.rmtree(out)
        print(f"demo study (5 centers, 60 patients, matrix 256): {series} CT series, {files} files, "
              f"{size / 1e6:.0f} MB; wall {statistics.median(times):.1f} s, CPU {statistics.median(cpu):.1f} s "
              f"(median of {args.repeats})")
        t0 = time.perf_counter()
        generate_study(Path(tmp) / "tab", patients=5000, seed=0, tabular_only=True)
        print(f"tabular-only study, 5000 patients: {time.perf_counter() - t0:.1f} s")

    spec = SeriesSpec(hematomas=(hematoma(25, "left", "frontal", shape_seed=1),))
    # Every class of the label map: the extra-axial collection and intraventricular blood cost on top.
    full = SeriesSpec(hematomas=spec.hematomas, extra_axial=ExtraAxial("right", 20.0),
                      intraventricular=Intraventricular(3.0))
    grid = Grid.centered(256, 230, 5)
    render, render_full = [], []
    for _ in range(5):  # interleaved, so both see the same machine load
        t0 = time.perf_counter()
        render_series(spec, grid, np.random.default_rng(0))
        render.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        render_series(full, grid, np.random.default_rng(0))
        render_full.append(time.perf_counter() - t0)
    a, b = statistics.median(render), statistics.median(render_full)
    print(f"render one 256x256x{grid.slices} series with a 25 mL hematoma: {a * 1000:.0f} ms; with a 20 mL "
          f"extra-axial collection and 3 mL IVH as well: {b * 1000:.0f} ms ({b / a:.2f}x; medians of 5)")


if __name__ == "__main__":
    main()
