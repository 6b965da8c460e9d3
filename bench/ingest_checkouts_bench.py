"""The default ingest of two checkouts of ctstudy against each other, in one run, alternated.

Each round runs, for each checkout (in turn, the order flipped every round), a fresh Python process with that
checkout first on its path: one untimed ingest (a process's first ingest pays lazy imports), then a timed
default ingest of FOLDER into a fresh home (2 readers) and the naive loop (pydicom `dcmread` + `pixel_array`
of every file, one process), in an order flipped every round. Prints, per checkout, each round's ingest wall
seconds and the medians: ingest wall, the parent's CPU, the reader processes' CPU, the naive loop, the ratio
naive / ingest (median of the rounds' ratios). With `--store`: the store phase's CPU per series instead
(`_SeriesStorer._store_one` in a one-process ingest, median of 3 after one untimed).

On a shared machine the wall follows the load; the CPU figures much less. The load average is printed.

Usage: .venv/bin/python bench/ingest_checkouts_bench.py FOLDER CHECKOUT_A CHECKOUT_B [--rounds 8] [--store]
       (FOLDER: e.g. `bench/ingest_digest.py --make FOLDER`, the ingest bench's 1,000 files)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _one_process(folder: Path, order: list[str], store: bool) -> dict[str, object]:
    """What one fresh process measures with the checkout on its path (imported here, not at the top)."""
    from unittest import mock

    import pydicom

    import registry.ingest.directory as ingest_module
    from registry.db.engine import make_engine, upgrade
    from registry.home import Home

    files = sorted(folder.rglob("*.dcm"))
    out: dict[str, object] = {}

    def ingest(workers: int = 2) -> tuple[float, float, float]:
        tmp = Path(tempfile.mkdtemp(prefix="ctstudy-checkouts-"))
        try:
            home = Home.resolve(tmp / "home")
            home.ensure()
            upgrade(home.db_url)
            engine = make_engine(home.db_url)
            before, start = os.times(), time.perf_counter()
            ingest_module.ingest_directory(engine, home, folder, actor="bench", workers=workers)
            wall, after = time.perf_counter() - start, os.times()
            engine.dispose()
        finally:
            shutil.rmtree(tmp)
        return (wall, after.user + after.system - before.user - before.system,
                after.children_user + after.children_system - before.children_user - before.children_system)

    if store:
        real = ingest_module._SeriesStorer._store_one
        per_series = []
        for _ in range(4):
            spent = [0.0, 0]

            def timed(self, *args, _spent=spent, **kwargs):  # noqa: ANN001, ANN202 - the storer's own signature
                cpu = time.process_time()
                try:
                    return real(self, *args, **kwargs)
                finally:
                    _spent[0] += time.process_time() - cpu
                    _spent[1] += 1
            with mock.patch.object(ingest_module._SeriesStorer, "_store_one", timed):
                ingest(workers=1)
            per_series.append(spent[0] / spent[1])
        return {"store": statistics.median(per_series[1:])}

    def naive() -> None:
        start, cpu = time.perf_counter(), time.process_time()
        for path in files:
            pydicom.dcmread(path).pixel_array  # noqa: B018 - decoding the pixels is the point
        out["naive"] = (time.perf_counter() - start, time.process_time() - cpu)

    ingest()
    for step in order:
        if step == "naive":
            naive()
        else:
            out["ingest"] = ingest()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("checkouts", type=Path, nargs=2)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--store", action="store_true", help="the store phase's CPU per series instead")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # the child process: the order of its steps
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(_one_process(args.folder.resolve(), args.one.split(","), args.store)))
        return
    for checkout in args.checkouts:
        if not (checkout / "registry" / "ingest" / "directory.py").is_file():
            parser.error(f"{checkout} is not a ctstudy checkout (no registry/ingest/directory.py)")
    if not any(args.folder.rglob("*.dcm")):
        parser.error(f"{args.folder} holds no .dcm files: make it with bench/ingest_digest.py --make FOLDER")
    print(f"load average {' / '.join(f'{x:.1f}' for x in os.getloadavg())}")
    runs: dict[Path, list[dict]] = {c: [] for c in args.checkouts}
    for r in range(args.rounds):
        order = "naive,ingest" if r % 2 == 0 else "ingest,naive"
        for checkout in args.checkouts if r % 2 == 0 else args.checkouts[::-1]:
            done = subprocess.run(
                [sys.executable, str(Path(__file__).resolve()), str(args.folder.resolve()), *map(str, args.checkouts),
                 "--one", order, *(["--store"] if args.store else [])],
                cwd=checkout, env={**os.environ, "PYTHONPATH": str(checkout.resolve())},
                capture_output=True, text=True, check=True)
            runs[checkout].append(json.loads(done.stdout.strip().splitlines()[-1]))
    print(f"load average now {' / '.join(f'{x:.1f}' for x in os.getloadavg())}, {args.rounds} rounds")
    for checkout, values in runs.items():
        if args.store:
            each = [1000 * v["store"] for v in values]
            print(f"{checkout}: store phase CPU per series {statistics.median(each):.2f} ms "
                  f"(rounds: {', '.join(f'{x:.2f}' for x in each)})")
            continue
        walls = [v["ingest"][0] for v in values]
        parent = statistics.median(v["ingest"][1] for v in values)
        print(f"{checkout}: ingest {statistics.median(walls):.3f} s wall (rounds: "
              f"{', '.join(f'{x:.2f}' for x in walls)}), parent CPU {parent:.3f}"
              f" s, readers' CPU {statistics.median(v['ingest'][2] for v in values):.3f} s; naive loop "
              f"{statistics.median(v['naive'][0] for v in values):.3f} s; naive / ingest "
              f"{statistics.median(v['naive'][0] / v['ingest'][0] for v in values):.2f}x")


if __name__ == "__main__":
    main()
