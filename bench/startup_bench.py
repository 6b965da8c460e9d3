"""Start-up time of `ctstudy` commands, against importing every package's command line up front (as before).

Prints, for each command, the median wall time of REPEATS runs in a fresh process, and the ratio to the
eager import of every `cli.py` (what `ctstudy --help` paid before command groups loaded lazily), measured in
the same run so that the ratio holds on a loaded machine. Also the import cost from `python -X importtime`.

    python bench/startup_bench.py [--repeats N]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EAGER = ("import registry.cli, registry.users_cli, imaging.cli, biomarkers.cli, prognosis.cli, synthetic.cli, "
         "dashboard.cli, ctstudy.demo")
CTSTUDY = [sys.executable, "-c", "from ctstudy.cli import main; main()"]


def _median_seconds(argv: list[str], repeats: int, env: dict[str, str]) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _import_us(statement: str, env: dict[str, str]) -> int:
    """Cumulative import time (µs) of everything `statement` imports, from `python -X importtime`."""
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", statement], cwd=ROOT, env=env,
                         capture_output=True, text=True, check=True).stderr
    total = 0
    for line in out.splitlines():
        m = re.match(r"import time:\s+\d+\s+\|\s+(\d+)\s+\|( *)(\S+)", line)
        if m and len(m.group(2)) == 1:  # top-level imports only: their cumulative times add up to the whole
            total += int(m.group(1))
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "CTSTUDY_HOME": str(Path(tmp) / "home"), "COLUMNS": "100"}
        env.pop("CTSTUDY_DB_URL", None)
        subprocess.run([*CTSTUDY, "init"], cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
        _median_seconds([sys.executable, "-c", EAGER], 1, env)  # warm the file cache for both sides
        eager = _median_seconds([sys.executable, "-c", EAGER], args.repeats, env)
        rows = [(" ".join(["ctstudy", *words]), _median_seconds([*CTSTUDY, *words], args.repeats, env))
                for words in (["--help"], ["registry", "progress"], ["registry", "missing"], ["users", "list"],
                              ["dictionary"])]
        import_eager = _import_us(EAGER, env)
        import_lazy = _import_us("import ctstudy.cli", env)
        import_registry = _import_us("import ctstudy.cli, registry.cli", env)
    print(f"Start-up, median of {args.repeats} fresh processes (machine load inflates every figure alike):")
    print(f"  {'before: importing every cli.py up front':45s} {eager:6.2f} s")
    for name, seconds in rows:
        print(f"  {name:45s} {seconds:6.2f} s   {eager / seconds:5.1f}x faster (target < 1 s)")
    print("Import cost (python -X importtime, cumulative of top-level imports):")
    print(f"  every cli.py up front (before)   {import_eager / 1e6:6.2f} s")
    print(f"  ctstudy.cli now (--help)         {import_lazy / 1e6:6.2f} s   {import_eager / import_lazy:5.1f}x less")
    print(f"  ctstudy.cli + registry.cli       {import_registry / 1e6:6.2f} s   "
          f"{import_eager / import_registry:5.1f}x less")


if __name__ == "__main__":
    main()
