"""Start-up time of `ctstudy` commands, against importing every package's command line up front.

Prints, for each command, the median wall time of REPEATS runs in a fresh process, and the ratio to the
eager import of every `cli.py` (what `ctstudy --help` paid before command groups loaded lazily), measured in
the same run so that the ratio holds on a loaded machine. The registry commands read a filled registry
(scale_bench's synthetic rows: SERIES series of 10 centers, three users) on SQLite and, when its server
answers, on PostgreSQL: their time is start-up plus a real query. Also the import cost from
`python -X importtime`.

    python bench/startup_bench.py [--repeats N] [--series N]
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
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from scale_bench import fill, synthetic_tables  # noqa: E402

from registry.access.users import add_user  # noqa: E402
from registry.db.engine import make_engine, session_scope, upgrade  # noqa: E402
from registry.db.scratch_database import ServerUnreachable, scratch_database  # noqa: E402

EAGER = ("import registry.cli, registry.access.cli, imaging.cli, biomarkers.cli, prognosis.cli, synthetic.cli, "
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


COMMANDS = (["--help"], ["registry", "progress"], ["registry", "missing"], ["registry", "missing", "--detail"],
            ["users", "list"], ["dictionary"])


def fill_registry(db_url: str, n_series: int) -> None:
    """Schema at head, scale_bench's synthetic registry (n_series series, a fifth as many patients, 10 centers) and
    three users. PostgreSQL is loaded with COPY (scale_bench.fill); SQLite with executemany."""
    upgrade(db_url)
    engine = make_engine(db_url)
    if engine.dialect.name == "postgresql":
        fill(engine, n_series, n_series // 5, 10)
    else:
        with engine.begin() as conn:
            for table, (columns, rows) in synthetic_tables(n_series, n_series // 5, 10).items():
                names = ", ".join(f'"{c}"' for c in columns)
                conn.exec_driver_sql(f'INSERT INTO "{table}" ({names}) VALUES ({", ".join("?" * len(columns))})',
                                     rows)
    with session_scope(engine) as s:
        for name, role, center in (("coordinator_c01", "coordinator", "C01"), ("statistician", "statistician", None),
                                   ("admin", "admin", None)):
            add_user(s, name, role, "a long password 1", center_code=center)
    engine.dispose()


def command_seconds(db_url: str, home: Path, repeats: int) -> list[tuple[str, float]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CTSTUDY_HOME": str(home), "CTSTUDY_DB_URL": db_url,
           "COLUMNS": "100"}
    return [(" ".join(["ctstudy", *words]), _median_seconds([*CTSTUDY, *words], repeats, env)) for words in COMMANDS]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--series", type=int, default=5000, help="Series in the filled registry.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        env = {**os.environ, "PYTHONPATH": str(ROOT), "CTSTUDY_HOME": str(home), "COLUMNS": "100"}
        env.pop("CTSTUDY_DB_URL", None)
        subprocess.run([*CTSTUDY, "init"], cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
        sqlite_url = f"sqlite:///{home / 'registry.sqlite'}"  # what `init` made: the default database
        fill_registry(sqlite_url, args.series)
        _median_seconds([sys.executable, "-c", EAGER], 1, env)  # warm the file cache for both sides
        eager = _median_seconds([sys.executable, "-c", EAGER], args.repeats, env)
        results = {"SQLite": command_seconds(sqlite_url, home, args.repeats)}
        try:
            with scratch_database("ctstudy_startup") as pg_url:
                fill_registry(pg_url, args.series)
                results["PostgreSQL"] = command_seconds(pg_url, home, args.repeats)
        except ServerUnreachable as exc:
            print(f"{exc}; PostgreSQL skipped", file=sys.stderr)
        import_eager = _import_us(EAGER, env)
        import_lazy = _import_us("import ctstudy.cli", env)
        import_registry = _import_us("import ctstudy.cli, registry.cli", env)
    print(f"Start-up, median of {args.repeats} fresh processes (machine load inflates every figure alike; load "
          f"average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores at the end):")
    print(f"  {'before: importing every cli.py up front':45s} {eager:6.2f} s")
    print(f"  registry of {args.series:,} series, {args.series // 5:,} patients, 10 centers, 3 users:")
    print(f"  {'':45s} " + "   ".join(f"{db:>10s}" for db in results) + "   (target < 1 s)")
    for i, words in enumerate(COMMANDS):
        times = [rows[i][1] for rows in results.values()]
        print(f"  {'ctstudy ' + ' '.join(words):45s} " + "   ".join(f"{t:8.2f} s" for t in times)
              + f"   {eager / max(times):5.1f}x faster than before (slowest database)")
    print("Import cost (python -X importtime, cumulative of top-level imports):")
    print(f"  every cli.py up front (before)   {import_eager / 1e6:6.2f} s")
    print(f"  ctstudy.cli now (--help)         {import_lazy / 1e6:6.2f} s   {import_eager / import_lazy:5.1f}x less")
    print(f"  ctstudy.cli + registry.cli       {import_registry / 1e6:6.2f} s   "
          f"{import_eager / import_registry:5.1f}x less")


if __name__ == "__main__":
    main()
